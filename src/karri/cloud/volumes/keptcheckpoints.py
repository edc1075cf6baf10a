"""Checkpoints made from completed snapshots' Walrus objects, for a backend that keeps
them (RBD: volumes from a snapshot with a kept checkpoint are clones). `karri storage
migrate --ebs rbd` gives them to snapshots taken on files, which kept none."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from karri.cloud.volumes.objects import SnapshotObjects
from karri.db.engine import Database
from karri.storage import StorageController
from karri.storage.sparse import ContentDigest, content_digest, decode_into, read_header
from karri.walrus import Walrus
from karri.walrus.migrate import close_store, current_backend, open_store


@contextlib.contextmanager
def snapshot_objects(data_dir: Path, db: Database) -> Iterator[SnapshotObjects]:
    """The snapshots' objects of a stopped cloud, in whichever store its Walrus uses."""
    blobs = open_store(data_dir, current_backend(data_dir))
    try:
        yield SnapshotObjects(Walrus(db, data_dir / "walrus", blobs))
    finally:
        close_store(blobs)


def object_digest(objects: SnapshotObjects, snapshot_id: str) -> tuple[int, str]:
    """The virtual size and ``ContentDigest`` of a snapshot's object (``LookupError``
    when it has none)."""
    with objects.open(snapshot_id) as (reader, _length):
        size = read_header(reader.read)
        digest = ContentDigest(size)
        decode_into(reader.read, digest.write, size)
    return size, digest.hexdigest()


def has_copy(new: StorageController, snapshot_id: str, size: int, digest: str) -> bool:
    """Whether ``new`` holds a checkpoint of the snapshot with these bytes."""
    if not new.has_checkpoint(snapshot_id):
        return False
    copied = new.export(snapshot_id)
    return copied.size == size and content_digest(copied) == digest


def keep(
    objects: SnapshotObjects,
    new: StorageController,
    snapshot_id: str,
    progress: Callable[[int], None],
) -> bool:
    """A checkpoint of the snapshot in ``new`` from its object, verified; False when its
    copy differs (an existing verified one is kept)."""
    size, digest = object_digest(objects, snapshot_id)
    if not has_copy(new, snapshot_id, size, digest):
        with objects.open(snapshot_id) as (reader, _length):
            new.checkpoint_from(snapshot_id, reader, progress)
    return has_copy(new, snapshot_id, size, digest)
