"""The Storage Controller's local-file backend and its snapshot stream, on real files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from karri.storage import GIB, LocalFileStorage, StorageError, sparse

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
    assert target.blockdev("n0")["file"] == {"driver": "file", "filename": target.path}
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
