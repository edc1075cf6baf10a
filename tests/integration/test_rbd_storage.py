"""EBS's Ceph RBD backend against the tests' throwaway Ceph cluster (tests/ceph.py):
thin volumes, snapshots kept as RBD snapshots and exported as snapshot streams, clones
(instant, flattened in the background, or not), deletes that keep what clones need, and
the node's target. librbd runs in this process: every image, I/O context and cluster is
closed in order (the fixture's ``close``), and no asynchronous call is used. Encrypted
volumes: images holding the local backend's encrypted qcow2 files, opened by QEMU over its
rbd driver, their snapshot streams restoring on either backend."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from karri.cloud.volumes.targets import node_target
from karri.node import RbdTarget
from karri.node.disks import protocol_node
from karri.storage import GIB, LocalFileStorage, StorageError
from karri.storage.rbd import FLATTEN_KEY, GONE, RbdPool, RbdStorage
from karri.storage.sparse import StreamReader, content_digest, encode
from karri.storage.sparsechain import chain, layer
from tests import ceph
from tests.integration.rbd import keyed_io as rbd_keyed_io
from tests.qemu_keys import run_keyed

VOL, OTHER, THIRD = "vol-0000000a", "vol-0000000b", "vol-0000000c"
FOURTH, FIFTH = "vol-0000000d", "vol-0000000e"
SNAP, SNAP2 = "snap-0000000a", "snap-0000000b"


@pytest.fixture
def storage() -> Iterator[RbdStorage]:
    cluster = ceph.cluster()
    backend = RbdStorage(RbdPool(str(cluster.conf), pool=cluster.new_pool(), timeout=10))
    yield backend
    backend.close()


def write(storage: RbdStorage, name: str, writes: dict[int, bytes]) -> None:
    with storage._image(name, by_id=False) as image:
        for offset, data in writes.items():
            image.write(data, offset)


def read(storage: RbdStorage, name: str, offset: int, length: int) -> bytes:
    with storage._image(name, by_id=False) as image:
        return image.read(offset, length)


def parent(storage: RbdStorage, name: str) -> str | None:
    import rbd

    with storage._image(name, by_id=False) as image:
        try:
            return image.parent_info()[1]
        except rbd.ImageNotFound:
            return None


def stream_bytes(storage: RbdStorage, snapshot_id: str) -> bytes:
    return b"".join(storage.export(snapshot_id))


WRITES = {0: b"boot" * 1024, 5 * GIB // 4: os.urandom(70_000), GIB - 4096: b"z" * 4096}


def test_volumes_are_thin_images_the_node_opens_with_rbd(storage: RbdStorage) -> None:
    storage.create(VOL, 1)
    assert storage.exists(VOL) and storage.volume_ids() == {VOL}
    target = storage.target(VOL)
    assert (target.driver, target.format, target.size_bytes) == ("rbd", "raw", GIB)
    node = node_target(target)
    assert node == RbdTarget(storage.ceph.pool, VOL, "admin", Path(storage.ceph.conf or ""))
    assert protocol_node(node) | {"conf": "-"} == {
        "driver": "rbd",
        "pool": storage.ceph.pool,
        "image": VOL,
        "user": "admin",
        "conf": "-",
        "discard": "unmap",
    }
    storage.resize(VOL, 3)
    storage.resize(VOL, 2)  # never shrinks
    assert storage.target(VOL).size_bytes == 3 * GIB
    storage.delete(VOL)
    storage.delete(VOL)  # gone already: fine
    assert not storage.exists(VOL)
    with pytest.raises(StorageError, match="does not exist"):
        storage.target(VOL)


def test_snapshots_are_kept_and_export_the_point_in_time_bytes(storage: RbdStorage) -> None:
    storage.create(VOL, 2)
    writes = {0: b"a" * 4096, GIB + 512: os.urandom(9000)}
    write(storage, VOL, writes)
    storage.checkpoint(VOL, SNAP)
    assert storage.has_checkpoint(SNAP) and storage.checkpoint_ids() == {SNAP}
    write(storage, VOL, {0: b"b" * 4096})  # after the checkpoint: not in it
    exported = stream_bytes(storage, SNAP)
    # restored through the stream (what a snapshot copied from Walrus goes through)
    storage.create_from(OTHER, io.BytesIO(exported), 3)
    for offset, data in writes.items():
        assert read(storage, OTHER, offset, len(data)) == data
    assert storage.target(OTHER).size_bytes == 3 * GIB
    with pytest.raises(StorageError, match="more than"):
        storage.create_from(THIRD, io.BytesIO(exported), 1)
    assert not storage.exists(THIRD)
    assert storage.sweep() == 0


def test_a_later_checkpoint_exports_what_changed_since_an_earlier_one(
    storage: RbdStorage,
) -> None:
    """``export(since=…)``: the extents written since, the ranges discarded since as
    zeros; laid over the earlier export it reads as the later checkpoint whole."""
    storage.create(VOL, 1)
    write(storage, VOL, {0: os.urandom(8 << 20)})
    storage.checkpoint(VOL, SNAP)
    write(storage, VOL, {4096: b"c" * 4096, 600 << 20: b"d" * 8192})
    with storage._image(VOL, by_id=False) as image:
        image.discard(4 << 20, 4 << 20)
    storage.checkpoint(VOL, SNAP2)
    diff = storage.export(SNAP2, since=SNAP)
    assert diff.since == SNAP and diff.data_bytes < 64 << 10
    assert diff.zeros == [(4 << 20, 4 << 20)]
    assert storage.export(SNAP2, since="snap-0000dead").since is None  # not its image's

    layers = [layer(_reader(b"".join(s)), s.length) for s in (storage.export(SNAP), diff)]
    whole = chain(SNAP2, layers, content_digest(storage.export(SNAP2)))
    assert content_digest(whole) == whole.digest


def _reader(data: bytes):
    return lambda length, position: data[position : position + length]


def test_clones_share_blocks_and_flatten_in_the_background(storage: RbdStorage) -> None:
    storage.create(VOL, 1)
    write(storage, VOL, {4096: b"parent" * 100})
    storage.checkpoint(VOL, SNAP)
    assert storage.clone_checkpoint(SNAP, OTHER, 2, flatten=False)
    assert parent(storage, OTHER) == VOL  # a launch's root: stays a clone
    assert storage.clone_checkpoint(SNAP, THIRD, 1, flatten=True)
    storage.flattener.wait_idle()
    assert parent(storage, THIRD) is None
    with storage._image(THIRD, by_id=False) as image:
        assert FLATTEN_KEY not in dict(image.metadata_list())
    for name in (OTHER, THIRD):
        assert read(storage, name, 4096, 600) == b"parent" * 100
    assert storage.target(OTHER).size_bytes == 2 * GIB
    assert not storage.clone_checkpoint(SNAP2, "vol-0000000d", 1, flatten=True)


def test_a_deleted_volume_keeps_its_snapshots_until_they_go(storage: RbdStorage) -> None:
    storage.create(VOL, 1)
    write(storage, VOL, {0: b"kept" * 1024})
    storage.checkpoint(VOL, SNAP)
    storage.checkpoint(VOL, SNAP2)
    assert storage.clone_checkpoint(SNAP, OTHER, 1, flatten=False)
    storage.delete(VOL)
    assert not storage.exists(VOL) and storage.volume_ids() == {OTHER}
    assert GONE + VOL in storage._names()
    assert storage.has_checkpoint(SNAP) and stream_bytes(storage, SNAP)
    assert storage.clone_checkpoint(SNAP2, THIRD, 1, flatten=False)
    storage.drop_checkpoint(SNAP)  # its clone is flattened first
    assert parent(storage, OTHER) is None
    assert read(storage, OTHER, 0, 4096) == b"kept" * 1024
    assert GONE + VOL in storage._names()  # SNAP2 still keeps it
    storage.drop_checkpoint(SNAP2)
    assert GONE + VOL not in storage._names()
    assert read(storage, THIRD, 0, 4096) == b"kept" * 1024
    assert storage.checkpoint_ids() == set()
    storage.drop_checkpoint(SNAP2)  # gone already: fine


def test_a_file_checkpoint_is_an_image_of_its_own(storage: RbdStorage, tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
        f.seek(1 << 20)
        f.write(b"image" * 1000)
    storage.checkpoint_file(SNAP, disk)
    assert storage.has_checkpoint(SNAP)
    assert storage.clone_checkpoint(SNAP, VOL, 1, flatten=False)
    assert read(storage, VOL, 1 << 20, 5000) == b"image" * 1000
    assert storage.target(VOL).size_bytes == GIB
    storage.drop_checkpoint(SNAP)
    assert storage._names() == [VOL] and parent(storage, VOL) is None


def test_a_migrated_checkpoint_and_a_volume_read_as_streams(
    storage: RbdStorage, tmp_path: Path
) -> None:
    """What `karri storage migrate --ebs` uses: a checkpoint written from a snapshot
    stream (an image of its own, clones come from it), a volume read as a stream (a
    clone's through its parent), the same digest as the file they came from."""
    disk = tmp_path / "disk.raw"
    with open(disk, "wb") as f:
        f.truncate(GIB)
        for offset, data in WRITES.items():
            f.seek(offset % GIB)
            f.write(data)
    source = encode(disk)
    storage.checkpoint_from(SNAP, StreamReader(source))
    assert storage.has_checkpoint(SNAP)
    assert content_digest(storage.export(SNAP)) == content_digest(source)
    assert storage.clone_checkpoint(SNAP, VOL, 1, flatten=False)
    clone = storage.volume_stream(VOL)
    assert clone.size == GIB and content_digest(clone) == content_digest(source)
    with pytest.raises(StorageError, match="snapshot stream"):
        storage.checkpoint_from(SNAP2, io.BytesIO(b"".join(source)[:-30]))
    assert not storage.has_checkpoint(SNAP2) and SNAP2 not in storage._names()


def test_sweep_removes_leftovers_and_resumes_flattening(storage: RbdStorage) -> None:
    import rbd

    storage.create(VOL, 1)
    storage.checkpoint(VOL, SNAP)
    storage.delete(VOL)
    storage.drop_checkpoint(SNAP)
    rbd.RBD().create(storage._io(), "tmp.vol-0000000e", GIB)
    storage.create(OTHER, 1)
    storage.checkpoint(OTHER, SNAP2)
    assert storage.clone_checkpoint(SNAP2, THIRD, 1, flatten=False)
    with storage._image(THIRD, by_id=False) as image:
        image.metadata_set(FLATTEN_KEY, "1")  # as a restart finds an unfinished one
    assert storage.sweep() == 1
    storage.flattener.wait_idle()
    assert parent(storage, THIRD) is None
    assert sorted(storage._names()) == [OTHER, THIRD]


MIB = 1 << 20
PASSPHRASE = b"c2VjcmV0LWtleS1vZi10aGUtYWNjb3VudA=="
PATTERN, PLAINTEXT = "0x6b", b"k" * 64  # what qemu-io writes: 1 MiB of "k"
QCOW2_MAGIC = b"QFI\xfb"


def keyed_io(storage: RbdStorage, name: str, command: str, key: bytes = PASSPHRASE) -> str:
    return rbd_keyed_io(storage.ceph.pool, name, command, key)


def image_bytes(storage: RbdStorage, name: str) -> bytes:
    with storage._image(name, by_id=False) as image:
        return image.read(0, image.size())


def test_encrypted_volumes_hold_qcow2_files_qemu_opens_over_rbd(
    storage: RbdStorage, tmp_path: Path
) -> None:
    """CreateVolume Encrypted: a qcow2 (LUKS) file in the image, no plaintext in it; its
    snapshot's stream is ciphertext that restores (grown through the passphrase) here and
    on the file backend, and a file-backend encrypted snapshot's stream restores here."""
    storage.create(VOL, 1, PASSPHRASE)
    target = storage.target(VOL)
    assert (target.driver, target.format, target.size_bytes) == ("rbd", "qcow2-luks", GIB)
    keyed_io(storage, VOL, f"write -P {PATTERN} {3 * MIB} {MIB}")
    keyed_io(storage, VOL, f"read -P 0 0 {3 * MIB}")  # a new volume reads zeros
    held = image_bytes(storage, VOL)
    assert held.startswith(QCOW2_MAGIC) and PLAINTEXT not in held
    stored = b"".join(storage.volume_stream(VOL))  # what karri storage migrate copies
    assert stored.find(QCOW2_MAGIC) >= 0 and PLAINTEXT not in stored

    storage.checkpoint(VOL, SNAP)
    stream = stream_bytes(storage, SNAP)
    assert stream.find(QCOW2_MAGIC) >= 0 and PLAINTEXT not in stream
    assert not storage.clone_checkpoint(SNAP, OTHER, 2, flatten=False)  # never a plain one
    storage.create_from(OTHER, io.BytesIO(stream), 2, encrypted=True, passphrase=PASSPHRASE)
    assert storage.target(OTHER).format == "qcow2-luks"
    assert storage.target(OTHER).size_bytes == 2 * GIB
    keyed_io(storage, OTHER, f"read -P {PATTERN} {3 * MIB} {MIB}")
    keyed_io(storage, OTHER, f"read -P 0 {GIB} {4 * MIB}")  # the grown part
    with pytest.raises(subprocess.CalledProcessError):  # another passphrase opens nothing
        keyed_io(storage, OTHER, "read 0 512", b"another-accounts-passphrase")
    with pytest.raises(StorageError, match="passphrase"):  # its size is in its header
        storage.resize(OTHER, 3)
    storage.resize(OTHER, 3, PASSPHRASE)
    storage.resize(OTHER, 2, PASSPHRASE)  # never shrinks
    assert storage.target(OTHER).size_bytes == 3 * GIB
    keyed_io(storage, OTHER, f"read -P {PATTERN} {3 * MIB} {MIB}")
    with pytest.raises(StorageError, match="more than"):
        storage.create_from(THIRD, io.BytesIO(stream), 0, encrypted=True)
    assert not storage.exists(THIRD) and storage.sweep() == 0

    files = LocalFileStorage(tmp_path / "volumes")  # the same stream on the file backend
    files.create_from(THIRD, io.BytesIO(stream), 1, encrypted=True)
    assert files.target(THIRD).format == "qcow2-luks"
    run_keyed(["qemu-io", "--image-opts", _opened(files, THIRD), "-c",
               f"read -P {PATTERN} {3 * MIB} {MIB}"], PASSPHRASE)  # fmt: skip
    files.checkpoint(THIRD, SNAP2)
    storage.create_from(THIRD, io.BytesIO(b"".join(files.export(SNAP2))), 1, encrypted=True)
    keyed_io(storage, THIRD, f"read -P {PATTERN} {3 * MIB} {MIB}")
    for volume_id in (VOL, OTHER, THIRD):
        storage.delete(volume_id)
    storage.drop_checkpoint(SNAP)
    assert _images(storage) == []


def test_encrypted_volumes_from_a_kept_checkpoint_are_clones(storage: RbdStorage) -> None:
    """An encrypted volume from an encrypted one's checkpoint: a clone holding the same
    qcow2 file (nothing of its own), grown through the passphrase when larger (its header
    and tables only), flattened in the background or not. Refused (the caller restores
    instead) as a plain volume or from a plain checkpoint; a wrong key leaves nothing."""
    storage.create(VOL, 1, PASSPHRASE)
    keyed_io(storage, VOL, f"write -P {PATTERN} {3 * MIB} {MIB}")
    storage.checkpoint(VOL, SNAP)
    keyed_io(storage, VOL, f"write -P 0x11 {3 * MIB} {MIB}")  # after the checkpoint
    assert storage.clone_checkpoint(SNAP, OTHER, 1, flatten=False, passphrase=PASSPHRASE)
    assert parent(storage, OTHER) == VOL and own_extents(storage, OTHER) == []
    target = storage.target(OTHER)
    assert (target.format, target.size_bytes) == ("qcow2-luks", GIB)
    keyed_io(storage, OTHER, f"read -P {PATTERN} {3 * MIB} {MIB}")
    assert storage.clone_checkpoint(SNAP, THIRD, 3, flatten=True, passphrase=PASSPHRASE)
    assert storage.target(THIRD).size_bytes == 3 * GIB
    storage.flattener.wait_idle()
    assert parent(storage, THIRD) is None
    keyed_io(storage, THIRD, f"read -P {PATTERN} {3 * MIB} {MIB}")
    keyed_io(storage, THIRD, f"read -P 0 {2 * GIB} {4 * MIB}")  # the grown part
    with pytest.raises(StorageError):  # another key cannot grow it: nothing is left
        storage.clone_checkpoint(SNAP, FOURTH, 2, flatten=False, passphrase=b"another key")
    assert not storage.exists(FOURTH) and storage.sweep() == 0

    storage.create(FOURTH, 1)
    storage.checkpoint(FOURTH, SNAP2)
    assert not storage.clone_checkpoint(SNAP2, FIFTH, 1, flatten=False, passphrase=PASSPHRASE)
    assert not storage.exists(FIFTH)
    storage.delete(VOL)  # kept as gone. while its checkpoint is
    storage.drop_checkpoint(SNAP)  # its clone flattened first
    assert parent(storage, OTHER) is None
    keyed_io(storage, OTHER, f"read -P {PATTERN} {3 * MIB} {MIB}")
    for volume_id in (OTHER, THIRD, FOURTH):
        storage.delete(volume_id)
    storage.drop_checkpoint(SNAP2)
    assert _images(storage) == []


def own_extents(storage: RbdStorage, name: str) -> list[tuple[int, int]]:
    """What the image holds of its own (a clone's parent left out)."""
    found: list[tuple[int, int]] = []
    with storage._image(name, by_id=False) as image:
        size = image.size()
        image.diff_iterate(0, size, None, lambda o, n, _e: found.append((o, n)), False)
    return found


def test_a_plain_snapshot_restores_and_copies_encrypted(storage: RbdStorage) -> None:
    """CreateVolume Encrypted from a plain snapshot, CopySnapshot Encrypted: QEMU encrypts
    the plain stream's blocks into a new encrypted file in the image; what the snapshot
    did not hold reads as zeros."""
    storage.create(VOL, 1)
    write(storage, VOL, {3 * MIB: PLAINTEXT * (MIB // len(PLAINTEXT))})
    storage.checkpoint(VOL, SNAP)
    plain = stream_bytes(storage, SNAP)
    storage.create_from(OTHER, io.BytesIO(plain), 2, passphrase=PASSPHRASE)
    assert storage.target(OTHER).format == "qcow2-luks"
    assert PLAINTEXT not in image_bytes(storage, OTHER)
    keyed_io(storage, OTHER, f"read -P {PATTERN} {3 * MIB} {MIB}")
    keyed_io(storage, OTHER, f"read -P 0 {4 * MIB} {60 * MIB}")

    storage.encrypted_checkpoint(SNAP2, io.BytesIO(plain), PASSPHRASE)
    assert storage.has_checkpoint(SNAP2)
    copied = stream_bytes(storage, SNAP2)
    assert copied.find(QCOW2_MAGIC) >= 0 and PLAINTEXT not in copied
    storage.create_from(THIRD, io.BytesIO(copied), 1, encrypted=True)
    keyed_io(storage, THIRD, f"read -P {PATTERN} {3 * MIB} {MIB}")
    with pytest.raises(StorageError):  # a broken stream: no checkpoint, no image left
        storage.encrypted_checkpoint("snap-0000000c", io.BytesIO(plain[:-9]), PASSPHRASE)
    assert not storage.has_checkpoint("snap-0000000c")
    assert "snap-0000000c" not in _images(storage) and storage.sweep() == 0


def _opened(files: LocalFileStorage, volume_id: str) -> str:
    return f"driver=qcow2,encrypt.key-secret=k,file.filename={files.target(volume_id).path}"


def _images(storage: RbdStorage) -> list[str]:
    return sorted(storage._names())
