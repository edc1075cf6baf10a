"""`karri storage migrate --walrus`: a stopped cloud's object bytes move to another
``BlobStore`` (files ↔ RADOS) without losing any: copy, verify, switch, then delete.

Every blob a row names (object versions, multipart parts, the segments of composed
objects) is copied to the new store under the same id, so no row changes; each copy is
read back and its size and SHA-256 compared with the original's. Only then does the data
dir's ``settings.json`` name the new store (one atomic rename: the commit point), and only
after that are the old blobs removed. ``walrus-migration.json`` in the data dir remembers
the migration until it is done. Killed at any point, the cloud starts on whichever store
``settings.json`` names, which holds every blob: before the switch the old one is
untouched, after it the new one is complete. Running the same migration again finishes it
(copies again, or only deletes when the switch had happened).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from karri.config import WALRUS_SETTINGS, save_settings, saved_walrus
from karri.db.engine import Database
from karri.walrus.blobstore import BlobStore
from karri.walrus.checksums import Digests
from karri.walrus.facade import blob_store
from karri.walrus.models import ObjectVersion, Part, Segment

STATE_FILE = "walrus-migration.json"
CHUNK = 4 * 1024 * 1024
REPORT_EVERY = 1.0  # seconds between progress lines (the first and last always print)


class MigrationError(Exception):
    """A migration that cannot go on (the message says why); nothing was switched."""


class Ticker:
    """Whether the ``done``-th of ``total`` steps is worth a progress line: the first,
    the last, and one a ``REPORT_EVERY`` in between."""

    def __init__(self) -> None:
        self._last = 0.0

    def due(self, done: int, total: int) -> bool:
        now = time.monotonic()
        if done in (1, total) or now - self._last >= REPORT_EVERY:
            self._last = now
            return True
        return False


@dataclass
class Progress:
    """How far a migration is (blobs and bytes)."""

    objects: int
    total_bytes: int
    done_objects: int = 0
    done_bytes: int = 0

    def line(self, verb: str) -> str:
        return (
            f"{verb} {self.done_objects}/{self.objects} blobs, "
            f"{self.done_bytes}/{self.total_bytes} bytes"
        )


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


class WalrusMigration:
    """One migration of ``data_dir``'s object bytes to ``target`` (settings as
    ``settings.json`` keeps them). The caller holds the data dir's lock."""

    def __init__(self, data_dir: Path, db: Database, target: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.db = db
        self.target = {k: v for k, v in target.items() if k in WALRUS_SETTINGS and v}
        self.state_path = data_dir / STATE_FILE

    def _state(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    def _save_state(self, source: dict[str, str]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"from": source, "to": self.target}, indent=2))
        tmp.replace(self.state_path)

    def run(self, report: Callable[[str], None]) -> Progress:
        """Copy, verify, switch, delete; or finish an interrupted run of the same."""
        current = current_backend(self.data_dir)
        state = self._state()
        if state is not None and not same(state.get("to", {}), self.target):
            abandoned = state.get("to", {})
            if same(current, abandoned):  # switched: only its deleting is left, do it first
                raise MigrationError(
                    f"an unfinished migration to {_name(abandoned)} is under way: "
                    "run it again to finish it first"
                )
            # Not switched: the old store is whole. The copies in the abandoned one are
            # left (no row names them; they are never read, a sweep there removes them).
            report(f"an unfinished migration to {_name(abandoned)} is abandoned")
            state = None
        switched = same(current, self.target)
        if switched and state is None:
            raise MigrationError(f"the objects are kept in {_name(current)} already")
        source = state["from"] if switched and state else current
        if not switched:
            self._save_state(source)
        sizes = named_blobs(self.db)
        progress = Progress(len(sizes), sum(sizes.values()))
        old = open_store(self.data_dir, source)
        try:
            if not switched:
                new = open_store(self.data_dir, self.target)
                try:
                    self._copy(old, new, sizes, progress, report)
                finally:
                    close_store(new)
                self._switch()
                report(f"switched to {_name(self.target)}")
            self._delete(old, source, sizes, report)
        finally:
            close_store(old)
        self.state_path.unlink(missing_ok=True)
        return progress

    def _copy(
        self,
        old: BlobStore,
        new: BlobStore,
        sizes: dict[str, int],
        progress: Progress,
        report: Callable[[str], None],
    ) -> None:
        ticker = Ticker()
        for blob_id, size in sorted(sizes.items()):
            copy_blob(old, new, blob_id, size)
            progress.done_objects += 1
            progress.done_bytes += size
            if ticker.due(progress.done_objects, progress.objects):
                report(progress.line("copied and verified"))

    def _switch(self) -> None:
        """The commit point: ``settings.json`` names the new store (an atomic rename)."""
        values = {k: self.target.get(k) for k in WALRUS_SETTINGS}
        if self.target.get("walrus_backend") == "files":
            values = {"walrus_backend": "files", "rados_pool": None}
        save_settings(self.data_dir, **values)
        _fsync_dir(self.data_dir)

    def _delete(
        self,
        old: BlobStore,
        source: dict[str, str],
        sizes: dict[str, int],
        report: Callable[[str], None],
    ) -> None:
        """Remove every blob a row names from the old store, then (files) whatever else
        is left there: the old store was the data dir's alone."""
        ticker = Ticker()
        for done, blob_id in enumerate(sorted(sizes), 1):
            old.unlink([blob_id])
            if ticker.due(done, len(sizes)):
                report(f"removed {done}/{len(sizes)} blobs from the old store")
        if source.get("walrus_backend", "files") == "files":
            old.sweep(lambda ids: set())


def same(a: dict, b: dict) -> bool:
    """Whether two object store settings name the same store."""

    def key(backend: dict) -> tuple:
        if backend.get("walrus_backend", "files") == "files":
            return ("files",)
        return ("rados", backend.get("ceph_conf"), backend.get("rados_pool", "karri-objects"))

    return key(a) == key(b)


def _name(backend: dict) -> str:
    if backend.get("walrus_backend") == "rados":
        return f"RADOS pool {backend.get('rados_pool', 'karri-objects')}"
    return "files"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
