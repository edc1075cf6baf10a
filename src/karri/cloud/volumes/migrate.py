"""`karri storage migrate --ebs`: a stopped cloud's volumes move to another Storage
Controller backend (files ↔ RBD) without losing any (``karri.migrating``: copy, verify,
switch, then delete; ``ebs-migration.json`` remembers it until it is done).

What moves is what the backend holds: every volume (under the same id, so no row
changes), and the checkpoints of snapshots still pending (a snapshot's point-in-time copy
not yet in Walrus). A completed snapshot's bytes are in Walrus, which stays where it is:
RBD's kept checkpoints of completed snapshots are dropped going to files (which keeps
none); going to a backend that keeps them, each completed plain snapshot gets one, from
the old backend's or from its Walrus object (``keptcheckpoints``), so that volumes from it
are clones there as for snapshots taken on it. Each copy is read back: its size and
``sparse.content_digest`` (SHA-256 of the bytes, whether they are holes or written zeros)
must be the original's. An encrypted volume moves as its ciphertext (the same encrypted
qcow2 file on both backends: ``storage.rbdluks``), never decrypted.

Refused, with nothing changed: a volume attached to an instance that is not stopped or
terminated (its QEMU may still have it open: guests outlive ``karri up``), and, moving to
RBD, volumes encrypted as raw LUKS files (legacy, from before qcow2; RBD holds qcow2 only).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import select

from karri.cloud.instances import states as instance_states
from karri.cloud.instances.models import Instance
from karri.cloud.volumes import states
from karri.cloud.volumes.keptcheckpoints import has_copy, keep, snapshot_objects
from karri.cloud.volumes.models import Snapshot, VolumeAttachment
from karri.cloud.volumes.objects import SnapshotObjects
from karri.config import EBS_SETTINGS, saved_ebs
from karri.db.engine import Database
from karri.migrating import BackendMove, Backends, MigrationError, Progress, Report, Ticker
from karri.storage import GIB, StorageController, luks, open_storage
from karri.storage.sparse import SparseStream, StreamReader, content_digest, without_zeros

STATE_FILE = "ebs-migration.json"
SETTLED = (instance_states.STOPPED, instance_states.TERMINATED)  # no guest has the volume

Opener = Callable[[Path, dict[str, str]], StorageController]


def current_backend(data_dir: Path) -> dict[str, str]:
    """The data dir's volume backend settings (files when nothing is saved)."""
    return {"ebs_backend": "files"} | saved_ebs(data_dir)


def open_backend(data_dir: Path, backend: dict[str, str]) -> StorageController:
    return open_storage(
        data_dir,
        backend.get("ebs_backend", "files"),
        backend.get("ceph_conf"),
        backend.get("ceph_user", "admin"),
        backend.get("rbd_pool", "karri-volumes"),
    )


def close_backend(storage: StorageController | None) -> None:
    """Disconnect an RBD backend; files need nothing."""
    close = getattr(storage, "close", None)
    if close is not None:
        close()


VOLUME_BACKENDS = Backends("ebs_backend", "rbd", "rbd_pool", "karri-volumes", "RBD", EBS_SETTINGS)


@dataclass
class Item:
    """A volume or a snapshot's checkpoint, with its bytes as a stream of the old backend;
    ``kept``: a completed snapshot's checkpoint made from its Walrus object. A volume's
    size as its guest sees it, and whether it is encrypted (its stream: ciphertext)."""

    kind: Literal["volume", "checkpoint", "kept"]
    id: str
    stream: SparseStream | None
    data_bytes: int = 0
    volume_bytes: int = 0
    encrypted: bool = False

    def __post_init__(self) -> None:
        if self.stream is not None:
            self.data_bytes = self.stream.data_bytes


class EbsMigration(BackendMove):
    """One migration of ``data_dir``'s volumes to ``target``; ``opener`` opens a backend
    from its settings."""

    state_file = STATE_FILE
    what = "volumes"
    backends = VOLUME_BACKENDS

    def __init__(
        self,
        data_dir: Path,
        db: Database,
        target: dict[str, str],
        opener: Opener = open_backend,
    ) -> None:
        super().__init__(data_dir, target)
        self.db = db
        self.opener = opener
        self.old: StorageController | None = None
        self.new: StorageController | None = None
        self.items: list[Item] = []

    def current(self) -> dict[str, str]:
        return current_backend(self.data_dir)

    # -- what moves ------------------------------------------------------------------------

    def begin(self, source: dict[str, str], switched: bool) -> Progress:
        self.old = old = self.opener(self.data_dir, source)
        if switched:
            return Progress(len(old.volume_ids()), 0, "volumes and checkpoints")
        to_rbd = self.target.get("ebs_backend") == "rbd"
        targets = {v: old.target(v) for v in sorted(old.volume_ids())}
        legacy = [v for v, t in targets.items() if t.format == luks.LEGACY_FORMAT]
        refused = self._in_use() + (
            [f"{v}: encrypted as raw LUKS (made before qcow2)" for v in legacy] if to_rbd else []
        )
        if refused:
            lines = "\n".join(f"  {line}" for line in refused)
            raise MigrationError(
                f"nothing was moved: these must be settled first\n{lines}\n"
                "(stop or terminate the instances; raw LUKS volumes stay on files)"
            )
        self.new = self.opener(self.data_dir, self.target)  # connects at its first use
        self.items = [
            Item("volume", v, old.volume_stream(v), 0, t.size_bytes, t.format != "raw")
            for v, t in targets.items()
        ]
        for snapshot_id in self._pending(old):
            self.items.append(Item("checkpoint", snapshot_id, old.export(snapshot_id)))
        if self.new.keeps_checkpoints:
            for snapshot_id, stored in self._completed():
                if old.has_checkpoint(snapshot_id):
                    self.items.append(Item("checkpoint", snapshot_id, old.export(snapshot_id)))
                else:
                    self.items.append(Item("kept", snapshot_id, None, stored))
        total = sum(item.data_bytes for item in self.items)
        return Progress(len(self.items), total, "volumes and checkpoints")

    def _in_use(self) -> list[str]:
        """Volumes attached to an instance a guest may still run (not stopped/terminated)."""
        with self.db.session() as session:
            rows = session.execute(
                select(VolumeAttachment.volume_id, Instance.id, Instance.state)
                .join(Instance, Instance.id == VolumeAttachment.instance_id)
                .where(Instance.state.not_in(SETTLED))
                .order_by(VolumeAttachment.volume_id)
            ).all()
        return [f"{v}: attached to {i} ({state})" for v, i, state in rows]

    def _pending(self, old: StorageController) -> list[str]:
        """Pending snapshots whose checkpoint the old backend holds (a checkpoint lost to
        a reboot is not moved: the snapshot fails there as it would have here)."""
        with self.db.session() as session:
            pending = set(
                session.scalars(select(Snapshot.id).where(Snapshot.state == states.PENDING))
            )
        return [s for s in sorted(pending & old.checkpoint_ids()) if old.has_checkpoint(s)]

    def _completed(self) -> list[tuple[str, int]]:
        """Completed plain snapshots (a backend that keeps checkpoints gets theirs)."""
        with self.db.session() as session:
            rows = session.execute(
                select(Snapshot.id, Snapshot.stored_bytes)
                .where(Snapshot.state == states.COMPLETED, Snapshot.encrypted.is_(False))
                .order_by(Snapshot.id)
            ).all()
        return [(snapshot_id, stored or 0) for snapshot_id, stored in rows]

    # -- copy and delete -------------------------------------------------------------------

    def copy(self, source: dict[str, str], progress: Progress, report: Report) -> None:
        new = self.new
        assert new is not None
        ticker = Ticker()
        with contextlib.ExitStack() as stack:
            objects: SnapshotObjects | None = None
            for item in self.items:
                base = progress.done_bytes

                def moved(written: int, base: int = base) -> None:
                    progress.done_bytes = base + written
                    if ticker.due(0, progress.objects):  # time-based within an item
                        report(progress.line("copying"))

                if item.kind != "kept":
                    copy_item(item, new, moved)
                else:
                    if objects is None:
                        objects = stack.enter_context(snapshot_objects(self.data_dir, self.db))
                    self._keep(objects, new, item, moved, report)
                progress.done_objects += 1
                progress.done_bytes = base + item.data_bytes
                if ticker.due(progress.done_objects, progress.objects):
                    report(progress.line("copied and verified"))

    @staticmethod
    def _keep(
        objects: SnapshotObjects,
        new: StorageController,
        item: Item,
        moved: Callable[[int], None],
        report: Report,
    ) -> None:
        try:
            if not keep(objects, new, item.id, moved):
                raise MigrationError(f"checkpoint {item.id}: the copy differs from its object")
        except LookupError as error:  # a snapshot without its object: restored as before
            report(f"note: {error}; it gets no checkpoint")

    def delete(self, source: dict[str, str], report: Report) -> None:
        """Every volume and checkpoint of the old backend removed (checkpoints newest
        first: on RBD a clone's own checkpoints go before the one it was cloned from, so
        nothing is flattened only to be removed), then what a crash left there."""
        old = self.old
        assert old is not None
        volume_ids = sorted(old.volume_ids())
        ticker = Ticker()
        for done, volume_id in enumerate(volume_ids, 1):
            old.delete(volume_id)
            if ticker.due(done, len(volume_ids)):
                report(f"removed {done}/{len(volume_ids)} volumes from the old backend")
        for snapshot_id in self._newest_first(old.checkpoint_ids()):
            old.drop_checkpoint(snapshot_id)
        old.sweep()

    def _newest_first(self, snapshot_ids: set[str]) -> list[str]:
        with self.db.session() as session:
            started = dict(
                session.execute(
                    select(Snapshot.id, Snapshot.started_at).where(Snapshot.id.in_(snapshot_ids))
                ).all()
            )
        unknown = sorted(snapshot_ids - started.keys())  # records no row names: leftovers
        return unknown + sorted(started, key=lambda s: started[s], reverse=True)

    def end(self) -> None:
        close_backend(self.new)
        close_backend(self.old)
        self.new = self.old = None


def copy_item(item: Item, new: StorageController, progress: Callable[[int], None]) -> None:
    """Copy a volume or checkpoint to ``new`` under the same id, unless a verified copy is
    there already (a run interrupted before); then its size and digest must match."""
    assert item.stream is not None
    item.stream, digest = without_zeros(item.stream)  # what is copied: no zero blocks
    if item.kind == "volume":
        if not _matches(item, new, digest):
            size_gib = max(1, math.ceil(item.volume_bytes / GIB))
            reader = StreamReader(item.stream)  # an encrypted volume's: its file, as it is
            new.create_from(item.id, reader, size_gib, progress, encrypted=item.encrypted)
    elif not _matches(item, new, digest):
        new.checkpoint_from(item.id, StreamReader(item.stream), progress)
    if not _matches(item, new, digest):
        raise MigrationError(f"{item.kind} {item.id}: the copy differs from the original")


def _matches(item: Item, new: StorageController, digest: str) -> bool:
    """Whether ``new`` holds the item with the same size and bytes."""
    assert item.stream is not None
    if item.kind != "volume":
        return has_copy(new, item.id, item.stream.size, digest)
    if not new.exists(item.id):
        return False
    copied = new.volume_stream(item.id)
    return copied.size == item.stream.size and content_digest(copied) == digest
