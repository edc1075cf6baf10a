"""`karri storage migrate --walrus`: a stopped cloud's object bytes move to another
``BlobStore`` (files ↔ RADOS) without losing any (``karri.migrating``: copy, verify,
switch, then delete; ``walrus-migration.json`` remembers it until it is done).

Every blob a row names (object versions, multipart parts, the segments of composed
objects) is copied to the new store under the same id, so no row changes; each copy is
read back and its size and SHA-256 compared with the original's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select

from karri.config import WALRUS_SETTINGS, saved_walrus
from karri.db.engine import Database
from karri.migrating import BackendMove, Backends, MigrationError, Progress, Report, Ticker
from karri.walrus.blobstore import BlobStore
from karri.walrus.checksums import Digests
from karri.walrus.facade import blob_store
from karri.walrus.models import ObjectVersion, Part, Segment

__all__ = ["MigrationError", "WalrusMigration", "copy_blob", "same"]

STATE_FILE = "walrus-migration.json"
CHUNK = 4 * 1024 * 1024


def current_backend(data_dir: Path) -> dict[str, str]:
    """The data dir's object store settings (files when nothing is saved)."""
    return {"walrus_backend": "files"} | saved_walrus(data_dir)


def open_store(data_dir: Path, backend: dict[str, str]) -> BlobStore:
    return blob_store(
        data_dir / "walrus",
        backend.get("walrus_backend", "files"),
        backend.get("ceph_conf"),
        backend.get("ceph_user", "admin"),
        backend.get("rados_pool", "karri-objects"),
    )


def close_store(store: BlobStore) -> None:
    """Disconnect a RADOS store (ioctx, then the cluster); files need nothing."""
    store.drain()
    close = getattr(store, "close", None)
    if close is not None:
        close()


def named_blobs(db: Database) -> dict[str, int]:
    """Every blob id a row names, with its size in bytes."""
    sizes: dict[str, int] = {}
    with db.session() as session:
        for model in (ObjectVersion, Part, Segment):
            rows = session.execute(select(model.blob, model.size).where(model.blob.is_not(None)))
            for blob_id, size in rows:
                sizes[blob_id] = max(size, sizes.get(blob_id, 0))
    return sizes


def _chunks(store: BlobStore, blob_id: str, size: int) -> Iterator[bytes]:
    blob = store.open(blob_id)
    try:
        offset = 0
        while offset < size:
            data = blob.pread(min(CHUNK, size - offset), offset)
            if not data:
                return
            yield data
            offset += len(data)
    finally:
        blob.close()


def _digest(store: BlobStore, blob_id: str, size: int) -> tuple[int, str]:
    sha, length = hashlib.sha256(), 0
    for data in _chunks(store, blob_id, size):
        sha.update(data)
        length += len(data)
    return length, sha.hexdigest()


def copy_blob(source: BlobStore, target: BlobStore, blob_id: str, size: int) -> None:
    """Copy one blob under the same id, then read the copy back: its size and SHA-256
    must be the original's (MigrationError otherwise)."""
    writer = target.writer(Digests())
    writer.blob_id = blob_id  # the same id: no row changes (set before any byte is written)
    sha, length = hashlib.sha256(), 0
    try:
        for data in _chunks(source, blob_id, size):
            sha.update(data)
            length += len(data)
            writer.write(data)
        if length != size:
            raise MigrationError(f"blob {blob_id}: {length} bytes where its rows say {size}")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    if _digest(target, blob_id, size) != (size, sha.hexdigest()):
        raise MigrationError(f"blob {blob_id}: the copy differs from the original")


OBJECT_STORES = Backends(
    "walrus_backend", "rados", "rados_pool", "karri-objects", "RADOS", WALRUS_SETTINGS
)
same = OBJECT_STORES.same  # whether two object store settings name the same store


class WalrusMigration(BackendMove):
    """One migration of ``data_dir``'s object bytes to ``target``."""

    state_file = STATE_FILE
    what = "objects"
    backends = OBJECT_STORES

    def __init__(self, data_dir: Path, db: Database, target: dict[str, str]) -> None:
        super().__init__(data_dir, target)
        self.db = db
        self.sizes: dict[str, int] = {}

    def current(self) -> dict[str, str]:
        return current_backend(self.data_dir)

    def begin(self, source: dict[str, str], switched: bool) -> Progress:
        self.sizes = named_blobs(self.db)
        return Progress(len(self.sizes), sum(self.sizes.values()))

    def copy(self, source: dict[str, str], progress: Progress, report: Report) -> None:
        old, new = open_store(self.data_dir, source), None
        try:
            new = open_store(self.data_dir, self.target)
            ticker = Ticker()
            for blob_id, size in sorted(self.sizes.items()):
                copy_blob(old, new, blob_id, size)
                progress.done_objects += 1
                progress.done_bytes += size
                if ticker.due(progress.done_objects, progress.objects):
                    report(progress.line("copied and verified"))
        finally:
            if new is not None:
                close_store(new)
            close_store(old)

    def delete(self, source: dict[str, str], report: Report) -> None:
        """Remove every blob a row names from the old store, then (files) whatever else
        is left there: the old store was the data dir's alone."""
        old = open_store(self.data_dir, source)
        try:
            ticker = Ticker()
            for done, blob_id in enumerate(sorted(self.sizes), 1):
                old.unlink([blob_id])
                if ticker.due(done, len(self.sizes)):
                    report(f"removed {done}/{len(self.sizes)} blobs from the old store")
            if source.get("walrus_backend", "files") == "files":
                old.sweep(lambda ids: set())
        finally:
            close_store(old)
