"""A snapshot's export to Walrus: whole, or incremental where the backend keeps checkpoints.

With kept checkpoints (RBD) a volume's latest completed snapshot usually still has its
checkpoint, so only the extents changed since it are exported (``export(since=…)``): the
object is a diff naming its base (``objects.BASE``), read back whole by laying it over
the base (``objects.open``). Nothing is lost: the whole checkpoint is read once for its
``ContentDigest`` (recorded with the diff; every later read of the chain checks it) and its
``RangeDigests`` (a SHA-256 per 4 MiB), and the snapshot completes only if the stored chain
reads as the checkpoint (a mismatch stores the whole snapshot instead). That check needs
no whole read of the chain: each snapshot keeps its ranges' digests (``objects.ranges``,
made while it was stored, from the checkpoint's bytes), so a range the diff does not touch
must have its base's digest (the chain reads the base's bytes there, which the base was
checked to hold), and only the ranges it touches are read back from the stored chain and
compared. A base without kept digests (exported before them) has its chain read back
whole, as before. A diff's base object stays while a snapshot row names it
(``base_snapshot_id``), even once its own snapshot is deleted (AWS keeps the blocks a
later snapshot needs): the deleted snapshot's row stays ``deleting`` (hidden) until then,
so a base of a base is kept the same way and a crash loses track of nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from karri.cloud.volumes import states
from karri.cloud.volumes.models import Snapshot
from karri.cloud.volumes.objects import BASE, DEPTH, DIGEST, SnapshotObjects
from karri.cloud.volumes.snapshots import NO_VOLUME
from karri.db.engine import Database
from karri.storage import StorageController
from karri.storage.sparse import (
    DIGEST_RANGE,
    EMPTY_RANGE,
    CorruptStream,
    RangeDigests,
    SparseStream,
    content_digest,
    range_count,
    range_digests,
    ranges_of,
    tapped,
)

log = logging.getLogger("karri.ebs")

MAX_CHAIN = 16  # diffs over one whole snapshot: the next export is whole again

Send = Callable[[SparseStream], Iterable[bytes]]  # a stream's chunks, as they are stored


class SnapshotExports:
    def __init__(self, db: Database, storage: StorageController, objects: SnapshotObjects):
        self.db = db
        self.storage = storage
        self.objects = objects

    def upload(self, snapshot_id: str, volume_id: str, send: Send) -> int:
        """Store the snapshot's checkpoint in Walrus; returns the bytes stored."""
        base = self._base(snapshot_id, volume_id)
        stream = self.storage.export(snapshot_id, since=base)
        if stream.since is not None:
            stored = self._diff(snapshot_id, volume_id, stream, send)
            if stored is not None:
                return stored
            stream = self.storage.export(snapshot_id)
        if base is not None:
            self._record_base(snapshot_id, None)
        if not self.storage.keeps_checkpoints:  # never a diff's base: no ranges needed
            return self._put(snapshot_id, volume_id, stream, send)
        ranges = RangeDigests(stream.size, whole=False)  # of the bytes as they are stored
        stored = self._put(snapshot_id, volume_id, tapped(stream, ranges.write), send)
        self.objects.put_ranges(snapshot_id, ranges.ranges())
        return stored

    def _diff(
        self, snapshot_id: str, volume_id: str, stream: SparseStream, send: Send
    ) -> int | None:
        """Store a diff with the whole checkpoint's digest; None when it does not read
        back as the checkpoint (the caller stores it whole over it)."""
        assert stream.since is not None
        digest, ranges = range_digests(self.storage.export(snapshot_id))
        depth = int(self.objects.meta(stream.since).get(DEPTH, "0")) + 1
        diff = {BASE: stream.since, DIGEST: digest, DEPTH: str(depth)}
        below = self.objects.ranges(stream.since)
        touched = ranges_of([*stream.records, *stream.zeros])
        if below is not None and not _untouched_agree(ranges, below, touched):
            log.warning("ebs: %s changed outside its diff over %s", snapshot_id, stream.since)
            return None
        stored = self._put(snapshot_id, volume_id, stream, send, diff)
        if below is None:
            verified = self._verified(snapshot_id, digest)
        else:
            verified = self._verified_ranges(snapshot_id, ranges, touched)
        if verified:
            self.objects.put_ranges(snapshot_id, ranges.ranges())
            log.info("ebs: %s stored as a diff over %s", snapshot_id, stream.since)
            return stored
        log.warning(
            "ebs: %s's diff over %s does not verify: stored whole", snapshot_id, stream.since
        )
        return None

    def _put(
        self,
        snapshot_id: str,
        volume_id: str,
        stream: SparseStream,
        send: Send,
        diff: dict[str, str] | None = None,
    ) -> int:
        meta = {"volume-id": volume_id, "virtual-size": str(stream.size), **(diff or {})}
        return self.objects.put(snapshot_id, send(stream), meta)

    def _verified(self, snapshot_id: str, digest: str) -> bool:
        """Whether the stored chain reads back as the checkpoint's bytes."""
        try:
            with self.objects.stream(snapshot_id) as stream:
                return content_digest(stream) == digest
        except (CorruptStream, LookupError) as error:
            log.warning("ebs: reading %s back failed: %s", snapshot_id, error)
            return False

    def _verified_ranges(self, snapshot_id: str, ranges: RangeDigests, touched: set[int]) -> bool:
        """Whether the stored chain reads as the checkpoint in the ranges its diff touches
        (read back from Walrus: the base's bytes there with the diff's over them)."""
        try:
            with self.objects.stream(snapshot_id) as stored:
                for index in sorted(touched):
                    start = index * DIGEST_RANGE
                    length = min(DIGEST_RANGE, stored.size - start)
                    check = RangeDigests(stored.size, whole=False)
                    check.write(stored.read_at(length, start), start)
                    if check.range_digest(index) != ranges.range_digest(index):
                        return False
        except (CorruptStream, LookupError) as error:
            log.warning("ebs: reading %s back failed: %s", snapshot_id, error)
            return False
        return True

    def _base(self, snapshot_id: str, volume_id: str) -> str | None:
        """The snapshot to export a diff from: the volume's latest completed one with a
        kept checkpoint, not too deep a diff itself; recorded on the snapshot's row (its
        object is kept from then on: its row is locked until then, so a DeleteSnapshot
        either comes first, and it is not chosen, or sees the record)."""
        if not self.storage.keeps_checkpoints or volume_id == NO_VOLUME:
            return None
        with self.db.write_session() as session:
            base = session.scalar(
                select(Snapshot.id)
                .where(
                    Snapshot.volume_id == volume_id,
                    Snapshot.id != snapshot_id,
                    Snapshot.state == states.COMPLETED,
                    Snapshot.source_snapshot_id.is_(None),
                )
                .order_by(Snapshot.started_at.desc(), Snapshot.id.desc())
                .limit(1)
                .with_for_update()
            )
            _set_base(session, snapshot_id, base)
        if base is None:
            return None
        usable = self.storage.has_checkpoint(base)
        if usable:
            try:
                usable = int(self.objects.meta(base).get(DEPTH, "0")) < MAX_CHAIN
            except LookupError:
                usable = False
        if not usable:
            self._record_base(snapshot_id, None)
            return None
        return base

    def _record_base(self, snapshot_id: str, base: str | None) -> None:
        with self.db.write_session() as session:
            _set_base(session, snapshot_id, base)

    # -- deleting ---------------------------------------------------------------------------

    @staticmethod
    def needed(session: Session, snapshot_id: str) -> bool:
        """Whether a snapshot's object is the base of another's diff (then a deleted
        snapshot's row stays, hidden, until that one is deleted too)."""
        return (
            session.scalar(
                select(Snapshot.id).where(Snapshot.base_snapshot_id == snapshot_id).limit(1)
            )
            is not None
        )


def _untouched_agree(ranges: RangeDigests, below: list[bytes], touched: set[int]) -> bool:
    """Whether every range a diff does not touch holds what it held in the diff's base
    (``below``: the base's digests; past its end, a grown volume's zeros)."""
    for index in range(range_count(ranges.size)):
        if index in touched:
            continue
        before = below[index] if index < len(below) else EMPTY_RANGE
        if ranges.range_digest(index) != before:
            return False
    return True


def _set_base(session: Session, snapshot_id: str, base: str | None) -> None:
    session.execute(
        update(Snapshot).where(Snapshot.id == snapshot_id).values(base_snapshot_id=base)
    )
