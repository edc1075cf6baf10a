"""The Storage Controller's local-file backend and its snapshot stream, on real files."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from karri.storage import GIB, LocalFileStorage, StorageError, sparse
from tests.qemu_keys import opened, run_keyed

MIB = 1 << 20


def _extents(path: str | Path) -> list[tuple[int, int]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return list(sparse.data_extents(fd, os.fstat(fd).st_size))
    finally:
        os.close(fd)


@pytest.fixture
def storage(tmp_path: Path) -> LocalFileStorage:
    return LocalFileStorage(tmp_path / "volumes")


def _write(storage: LocalFileStorage, volume_id: str, writes: dict[int, bytes]) -> None:
    fd = os.open(storage.target(volume_id).path, os.O_WRONLY)
    try:
        for offset, data in writes.items():
            os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def test_blank_volume_is_sparse_raw(storage: LocalFileStorage) -> None:
    storage.create("vol-00000001", 2)
    target = storage.target("vol-00000001")
    assert (target.driver, target.format, target.size_bytes) == ("file", "raw", 2 * GIB)
    assert os.stat(target.path).st_blocks == 0
    assert storage.volume_ids() == {"vol-00000001"}


def test_snapshot_round_trip_keeps_bytes_and_holes(storage: LocalFileStorage) -> None:
    storage.create("vol-00000001", 1)
    _write(
        storage,
        "vol-00000001",
        {
            123: b"start",
            300 * MIB: os.urandom(9 * MIB + 7),
            500 * MIB: bytes(2 * MIB),  # written zeros: skipped like holes
            GIB - 3: b"end",
        },
    )
    storage.checkpoint("vol-00000001", "snap-00000001")
    stream = storage.export("snap-00000001")
    data = b"".join(stream)
    assert len(data) == stream.length
    assert stream.data_bytes < 12 * MIB + 2 * 4096 * 3
    storage.create_from("vol-00000002", io.BytesIO(data), 2)
    restored = storage.target("vol-00000002")
    assert restored.size_bytes == 2 * GIB
    original = storage.target("vol-00000001").path
    extents = _extents(restored.path)
    assert extents and all(offset + length <= GIB for offset, length in extents)
    # the restored file has data only where the original has non-zero data, and the same
    with open(original, "rb") as a, open(restored.path, "rb") as b:
        for offset, length in _extents(original):
            a.seek(offset)
            b.seek(offset)
            assert a.read(length) == b.read(length)
    assert os.stat(restored.path).st_blocks * 512 < 16 * MIB


def test_checkpoint_is_point_in_time(storage: LocalFileStorage) -> None:
    storage.create("vol-00000001", 1)
    _write(storage, "vol-00000001", {0: b"before"})
    storage.checkpoint("vol-00000001", "snap-00000001")
    _write(storage, "vol-00000001", {0: b"after!"})
    storage.delete("vol-00000001")
    storage.create_from("vol-00000002", io.BytesIO(b"".join(storage.export("snap-00000001"))), 1)
    with open(storage.target("vol-00000002").path, "rb") as f:
        assert f.read(6) == b"before"


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic"])
def test_damaged_streams_are_refused(storage: LocalFileStorage, damage: str) -> None:
    storage.create("vol-00000001", 1)
    _write(storage, "vol-00000001", {4096: os.urandom(MIB)})
    storage.checkpoint("vol-00000001", "snap-00000001")
    data = bytearray(b"".join(storage.export("snap-00000001")))
    if damage == "truncate":
        data = data[:-1]
    elif damage == "flip":
        data[sparse.HEADER.size + sparse.RECORD.size + 10] ^= 1
    else:
        data[0:8] = b"NOTASNAP"
    with pytest.raises(StorageError):
        storage.create_from("vol-00000002", io.BytesIO(bytes(data)), 1)
    assert not storage.exists("vol-00000002")
    assert list(storage.tmp.iterdir()) == []


def test_stream_larger_than_volume_is_refused(storage: LocalFileStorage) -> None:
    storage.create("vol-00000001", 2)
    storage.checkpoint("vol-00000001", "snap-00000001")
    with pytest.raises(StorageError):
        storage.create_from(
            "vol-00000002", io.BytesIO(b"".join(storage.export("snap-00000001"))), 1
        )


def test_checkpoint_from_another_boot_is_not_trusted(storage: LocalFileStorage) -> None:
    storage.create("vol-00000001", 1)
    storage.checkpoint("vol-00000001", "snap-00000001")
    assert storage.has_checkpoint("snap-00000001")
    (storage.checkpoints / "snap-00000001.json").write_text('{"boot_id": "another boot"}')
    assert not storage.has_checkpoint("snap-00000001")
    with pytest.raises(StorageError):
        storage.export("snap-00000001")
    storage.drop_checkpoint("snap-00000001")
    assert storage.checkpoint_ids() == set()


def test_ids_never_become_paths(storage: LocalFileStorage) -> None:
    for bad in ("../etc/passwd", "vol-../../x", "snap-00000001"):
        with pytest.raises(StorageError):
            storage.create(bad, 1)
    with pytest.raises(StorageError):
        storage.checkpoint("vol-00000001", "../../x")


def test_resize_grows_only_and_sweep_clears_leftovers(storage: LocalFileStorage) -> None:
    storage.create("vol-00000001", 1)
    storage.resize("vol-00000001", 3)
    storage.resize("vol-00000001", 2)
    assert storage.target("vol-00000001").size_bytes == 3 * GIB
    (storage.tmp / "vol-00000002.raw.leftover").write_bytes(b"x")
    assert storage.sweep() == 1
    storage.delete("vol-00000001")
    storage.delete("vol-00000001")
    assert not storage.exists("vol-00000001")


PASSPHRASE = b"c2VjcmV0LWtleS1vZi10aGUtYWNjb3VudA=="
PATTERN, PLAINTEXT = "0x6b", b"k" * 64  # what qemu-io writes: 1 MiB of "k"
QCOW2_MAGIC, LUKS_MAGIC = b"QFI\xfb", b"LUKS\xba\xbe"


def _qemu_io(path: str, command: str, passphrase: bytes = PASSPHRASE) -> str:
    """Read or write an encrypted volume as a guest would, through QEMU (``read -P``
    exits 1 unless every byte matches)."""
    return run_keyed(["qemu-io", "--image-opts", opened(path), "-c", command], passphrase)


needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-io") is None or shutil.which("qemu-storage-daemon") is None,
    reason="needs qemu-utils and qemu-system-common",
)


@needs_qemu
def test_an_encrypted_volume_holds_no_plaintext_and_its_snapshot_restores(
    storage: LocalFileStorage,
) -> None:
    storage.create("vol-00000001", 1, PASSPHRASE)
    target = storage.target("vol-00000001")
    assert (target.format, target.size_bytes) == ("qcow2-luks", GIB)
    assert target.path.endswith("vol-00000001.qcow2")
    assert Path(target.path).read_bytes()[:4] == QCOW2_MAGIC
    assert storage.volume_ids() == {"vol-00000001"}
    _qemu_io(target.path, f"read -P 0 0 {GIB}")  # a new volume reads zeros, as on AWS
    _qemu_io(target.path, f"write -P {PATTERN} 3M 1M")
    assert PLAINTEXT not in Path(target.path).read_bytes()
    # only the headers and what was written take space
    assert sum(length for _start, length in _extents(target.path)) < 4 * MIB

    storage.checkpoint("vol-00000001", "snap-00000001")
    stream = b"".join(storage.export("snap-00000001"))
    assert PLAINTEXT not in stream
    storage.create_from(
        "vol-00000002", io.BytesIO(stream), 2, encrypted=True, passphrase=PASSPHRASE
    )
    restored = storage.target("vol-00000002")
    assert (restored.format, restored.size_bytes) == ("qcow2-luks", 2 * GIB)
    assert restored.path.endswith("vol-00000002.qcow2")
    _qemu_io(restored.path, f"read -P {PATTERN} 3M 1M")
    _qemu_io(restored.path, "read -P 0 0 3M")  # zeros around what was written
    _qemu_io(restored.path, f"read -P 0 4M {2 * GIB - 4 * MIB}")  # the grown part too
    with pytest.raises(subprocess.CalledProcessError):  # another passphrase opens nothing
        _qemu_io(restored.path, "read 0 512", b"another-accounts-passphrase")

    with pytest.raises(StorageError):  # its size is in the (encrypted) header
        storage.resize("vol-00000002", 3)
    storage.resize("vol-00000002", 3, PASSPHRASE)
    storage.resize("vol-00000002", 2, PASSPHRASE)  # never shrinks
    assert storage.target("vol-00000002").size_bytes == 3 * GIB
    _qemu_io(restored.path, f"read -P {PATTERN} 3M 1M")
    with pytest.raises(StorageError):  # the volume is larger than the one asked for
        storage.create_from("vol-00000003", io.BytesIO(stream), 0, encrypted=True)
    assert not storage.exists("vol-00000003")
    storage.delete("vol-00000002")
    assert storage.volume_ids() == {"vol-00000001"}


@needs_qemu
def test_restoring_an_encrypted_snapshot_follows_no_backing_file(
    storage: LocalFileStorage, tmp_path: Path
) -> None:
    """A stream whose qcow2 names a backing file (never one of karri's) is refused."""
    secret = tmp_path / "plain.raw"
    secret.write_bytes(PLAINTEXT * 1024)
    hostile = tmp_path / "hostile.qcow2"
    options = "encrypt.format=luks,encrypt.key-secret=k,encrypt.iter-time=10"
    backed = ["-b", str(secret), "-F", "raw", "-o", options]
    run_keyed(["qemu-img", "create", "-q", "-f", "qcow2", *backed, str(hostile)], PASSPHRASE)
    storage.checkpoint_file("snap-00000001", hostile)
    stream = b"".join(storage.export("snap-00000001"))
    with pytest.raises(StorageError):
        storage.create_from("vol-00000001", io.BytesIO(stream), 1, encrypted=True)
    assert not storage.exists("vol-00000001")


@needs_qemu
def test_legacy_raw_luks_volumes_keep_working(storage: LocalFileStorage) -> None:
    """Volumes encrypted before qcow2 are raw LUKS files (``.luks``): they open, grow,
    snapshot and restore as such; their snapshots restore as raw LUKS too."""
    legacy = storage.root / "vol-00000001.luks"
    options = ["-o", "key-secret=k,iter-time=10"]
    run_keyed(
        ["qemu-img", "create", "-q", "-f", "luks", *options, str(legacy), str(GIB)], PASSPHRASE
    )
    target = storage.target("vol-00000001")
    assert (target.path, target.format, target.size_bytes) == (str(legacy), "luks", GIB)
    _qemu_io(target.path, f"write -P {PATTERN} 3M 1M")
    storage.resize("vol-00000001", 2)
    assert storage.target("vol-00000001").size_bytes == 2 * GIB
    storage.checkpoint("vol-00000001", "snap-00000001")
    stream = b"".join(storage.export("snap-00000001"))
    assert stream.find(LUKS_MAGIC) >= 0 and PLAINTEXT not in stream
    storage.create_from(
        "vol-00000002", io.BytesIO(stream), 3, encrypted=True, passphrase=PASSPHRASE
    )
    restored = storage.target("vol-00000002")
    assert restored.path.endswith("vol-00000002.luks")
    assert (restored.format, restored.size_bytes) == ("luks", 3 * GIB)
    _qemu_io(restored.path, f"read -P {PATTERN} 3M 1M")
    assert storage.volume_ids() == {"vol-00000001", "vol-00000002"}
    with pytest.raises(StorageError):  # larger than the volume asked for
        storage.create_from("vol-00000003", io.BytesIO(stream), 1, encrypted=True)
    for volume_id in ("vol-00000001", "vol-00000002"):
        storage.delete(volume_id)
    assert storage.volume_ids() == set()


@needs_qemu
def test_a_plain_snapshot_restores_encrypted(storage: LocalFileStorage) -> None:
    """CreateVolume Encrypted from an unencrypted snapshot: QEMU encrypts the blocks on
    their way into the new file; no plaintext lands anywhere in the storage dir, and what
    the snapshot did not hold reads as zeros."""
    storage.create("vol-00000001", 1)
    _write(storage, "vol-00000001", {3 * MIB: PLAINTEXT * (MIB // len(PLAINTEXT))})
    storage.checkpoint("vol-00000001", "snap-00000001")
    stream = b"".join(storage.export("snap-00000001"))
    storage.create_from("vol-00000002", io.BytesIO(stream), 2, passphrase=PASSPHRASE)
    restored = storage.target("vol-00000002")
    assert (restored.format, restored.size_bytes) == ("qcow2-luks", 2 * GIB)
    data = Path(restored.path).read_bytes()
    assert data.startswith(QCOW2_MAGIC) and PLAINTEXT not in data
    _qemu_io(restored.path, f"read -P {PATTERN} 3M 1M")
    _qemu_io(restored.path, f"read -P 0 4M {2 * GIB - 4 * MIB}")
    assert sum(length for _start, length in _extents(restored.path)) < 4 * MIB
    leftovers = [p for p in storage.root.rglob("*") if p.is_file() and "vol-00000002" in p.name]
    assert [p.name for p in leftovers] == ["vol-00000002.qcow2"]
    with pytest.raises(StorageError):  # larger than the volume: nothing left behind
        storage.create_from("vol-00000003", io.BytesIO(stream), 0, passphrase=PASSPHRASE)
    assert not storage.exists("vol-00000003")


@needs_qemu
def test_a_plain_snapshot_copies_encrypted(storage: LocalFileStorage) -> None:
    """CopySnapshot Encrypted from an unencrypted snapshot: the plain stream becomes an
    encrypted checkpoint, whose stream is an encrypted snapshot's (restored as one)."""
    storage.create("vol-00000001", 1)
    _write(storage, "vol-00000001", {3 * MIB: PLAINTEXT * (MIB // len(PLAINTEXT))})
    storage.checkpoint("vol-00000001", "snap-00000001")
    plain = b"".join(storage.export("snap-00000001"))
    storage.encrypted_checkpoint("snap-00000002", io.BytesIO(plain), PASSPHRASE)
    assert storage.has_checkpoint("snap-00000002")
    stream = b"".join(storage.export("snap-00000002"))
    assert PLAINTEXT not in stream
    storage.create_from("vol-00000002", io.BytesIO(stream), 1, encrypted=True)
    restored = storage.target("vol-00000002")
    assert Path(restored.path).read_bytes().startswith(QCOW2_MAGIC)
    _qemu_io(restored.path, f"read -P {PATTERN} 3M 1M")
    _qemu_io(restored.path, f"read -P 0 4M {GIB - 4 * MIB}")
    with pytest.raises(StorageError):  # a corrupt stream: no checkpoint, no temp file
        storage.encrypted_checkpoint("snap-00000003", io.BytesIO(plain[:-100]), PASSPHRASE)
    assert not any("snap-00000003" in p.name for p in storage.root.rglob("*"))
