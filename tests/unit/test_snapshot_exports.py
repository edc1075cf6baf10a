"""cloud/volumes/exports.py over a backend that keeps checkpoints and diffs them (local
files compared block by block here; RBD's ``diff_iterate`` in
tests/integration/test_ebs_rbd.py): later exports store only what changed, a volume from
any snapshot of the chain reads exactly its bytes, a diff that does not add up is stored
whole, and a deleted snapshot's object stays while a later diff needs it (the worker's
DeleteSnapshot job)."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, update

from karri.cloud.tags import Tags
from karri.cloud.volumes import exports, states
from karri.cloud.volumes.exports import SnapshotExports
from karri.cloud.volumes.models import Snapshot
from karri.cloud.volumes.objects import BASE, SnapshotObjects
from karri.cloud.volumes.worker import EbsWorker
from karri.db.engine import Database
from karri.db.models import Account
from karri.storage import LocalFileStorage
from karri.storage.sparse import SparseStream, content_digest, encode, records_of
from karri.walrus import Walrus

ACCOUNT = "123456789012"
VOLUME = "vol-00000001"
KIB, MIB = 1 << 10, 1 << 20
BLOCK = 64 * KIB


class DiffingStorage(LocalFileStorage):
    """Local checkpoints kept, and diffed as RBD diffs them (``lies``: a change left out)."""

    keeps_checkpoints = True
    lies = False

    def export(self, snapshot_id: str, since: str | None = None) -> SparseStream:
        whole = super().export(snapshot_id)
        if since is None or not self.has_checkpoint(since):
            return whole
        extents, zeros = [], []
        paths = self._checkpoint(snapshot_id), self._checkpoint(since)
        blocks = {
            start - start % BLOCK + step
            for path in paths
            for start, length in encode(path).records
            for step in range(0, length + start % BLOCK, BLOCK)
        }  # only where either holds data (the files are sparse)
        with paths[0].open("rb") as new, paths[1].open("rb") as old:
            for offset in sorted(blocks):
                block = os.pread(new.fileno(), BLOCK, offset)
                if block != os.pread(old.fileno(), BLOCK, offset):
                    (zeros if block == bytes(len(block)) else extents).append((offset, len(block)))
        if self.lies:
            extents = extents[1:]
        records = list(records_of(extents))
        return SparseStream(whole.path, whole.size, records, list(records_of(zeros)), since)


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.db = Database(f"sqlite:///{tmp_path / 'karri.db'}")
        with self.db.write_session() as session:
            session.add(Account(id=ACCOUNT, name="a"))
        self.storage = DiffingStorage(tmp_path / "volumes")
        self.objects = SnapshotObjects(Walrus(self.db, tmp_path / "walrus"))
        self.objects.ensure_bucket()
        self.exports = SnapshotExports(self.db, self.storage, self.objects)
        self.worker = EbsWorker(
            self.db,
            self.storage,
            self.objects,
            Tags(self.db),
            keys=None,  # type: ignore[arg-type]  # (not used by deletes)
            wakeup=threading.Event(),
            images=None,  # type: ignore[arg-type]
            resume_captures=lambda: None,
        )
        self.restored = LocalFileStorage(tmp_path / "restored")
        self.storage.create(VOLUME, 1)
        self.count = 0

    def write(self, offset: int, data: bytes) -> None:
        fd = os.open(self.storage.root / f"{VOLUME}.raw", os.O_WRONLY)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def snapshot(self) -> tuple[str, int, str]:
        """A completed snapshot of the volume: (its id, bytes stored, the volume's digest)."""
        self.count += 1
        snapshot_id = f"snap-{self.count:08x}"
        with self.db.write_session() as session:
            session.add(
                Snapshot(id=snapshot_id, account_id=ACCOUNT, volume_id=VOLUME, volume_size=1)
            )
        self.storage.checkpoint(VOLUME, snapshot_id)
        self.storage.seal_checkpoint(snapshot_id)
        stored = self.exports.upload(snapshot_id, VOLUME, lambda stream: stream)
        with self.db.write_session() as session:
            session.execute(
                update(Snapshot)
                .where(Snapshot.id == snapshot_id)
                .values(state=states.COMPLETED, stored_bytes=stored)
            )
        return snapshot_id, stored, sha(self.storage.root / f"{VOLUME}.raw")

    def restore(self, snapshot_id: str) -> str:
        volume_id = f"vol-{random.getrandbits(32):08x}"
        with self.objects.open(snapshot_id) as (reader, _length):
            self.restored.create_from(volume_id, reader, 1)
        return sha(self.restored.root / f"{volume_id}.raw")

    def base(self, snapshot_id: str) -> str | None:
        with self.db.session() as session:
            return session.get(Snapshot, snapshot_id).base_snapshot_id

    def delete(self, *snapshot_ids: str) -> None:
        """DeleteSnapshot, then the EBS worker's jobs for every snapshot ``deleting``
        (each run once per scan, as the worker's scans run them)."""
        with self.db.write_session() as session:
            session.execute(
                update(Snapshot)
                .where(Snapshot.id.in_(snapshot_ids))
                .values(state=states.SNAPSHOT_DELETING)
            )
        for _scan in range(3):
            with self.db.session() as session:
                deleting = session.scalars(
                    select(Snapshot.id).where(Snapshot.state == states.SNAPSHOT_DELETING)
                ).all()
            for snapshot_id in deleting:
                self.worker._delete_snapshot(snapshot_id, threading.Event())

    def objects_left(self) -> list[str]:
        """The snapshots with an object (or their ranges' digests) left in Walrus."""
        listing = self.objects.walrus.list_objects("karri-ebs-snapshots")
        return sorted({item.key.split(".")[0] for item in listing.objects})


def sha(path: Path) -> str:
    """The file's bytes' digest (holes read as zeros), read only where it holds data."""
    return content_digest(encode(path))


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_later_exports_store_only_the_changes_and_restore_exactly(setup: Setup) -> None:
    setup.write(0, random.randbytes(8 * MIB))
    setup.write(300 * MIB, random.randbytes(MIB))
    first, full, first_sha = setup.snapshot()
    assert full > 9 * MIB and setup.base(first) is None

    setup.write(2 * MIB, random.randbytes(BLOCK))
    setup.write(300 * MIB, bytes(MIB))  # zeroed since: a record of zeros, no data
    second, diff, second_sha = setup.snapshot()
    assert diff < BLOCK + 4 * KIB
    assert setup.base(second) == first and setup.objects.meta(second)[BASE] == first

    setup.write(600 * MIB, random.randbytes(BLOCK))  # the volume's unwritten part
    third, diff, third_sha = setup.snapshot()
    assert diff < BLOCK + 4 * KIB and setup.base(third) == second

    assert setup.restore(first) == first_sha
    assert setup.restore(second) == second_sha
    assert setup.restore(third) == third_sha

    # the first's object outlives its snapshot while the diffs over it exist; so does
    # the second's, and with it its own base's (the first)
    setup.delete(first)
    assert setup.restore(third) == third_sha
    assert setup.objects_left() == [first, second, third]
    setup.delete(second)
    assert setup.restore(third) == third_sha
    assert setup.objects_left() == [first, second, third]
    setup.delete(third)  # then the kept ones go with it
    assert setup.objects_left() == []
    with setup.db.session() as session:
        assert session.scalars(select(Snapshot.id)).all() == []


def test_a_diff_that_does_not_verify_is_stored_whole(setup: Setup) -> None:
    setup.write(0, random.randbytes(MIB))
    setup.snapshot()
    setup.write(0, random.randbytes(BLOCK))
    setup.write(MIB, random.randbytes(BLOCK))
    setup.storage.lies = True
    second, stored, second_sha = setup.snapshot()
    assert stored > MIB and setup.base(second) is None
    assert BASE not in setup.objects.meta(second)
    assert setup.restore(second) == second_sha


def test_without_a_kept_checkpoint_or_too_deep_the_export_is_whole(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "MAX_CHAIN", 3)
    setup.write(0, random.randbytes(MIB))
    first, _, _ = setup.snapshot()
    setup.storage.drop_checkpoint(first)
    second, stored, _ = setup.snapshot()
    assert stored > MIB and setup.base(second) is None
    for _ in range(exports.MAX_CHAIN):
        setup.write(0, random.randbytes(KIB))
        deepest, stored, deepest_sha = setup.snapshot()
        assert stored < BLOCK + 4 * KIB
    setup.write(0, random.randbytes(KIB))
    last, stored, _ = setup.snapshot()
    assert stored > MIB and setup.base(last) is None
    assert setup.restore(deepest) == deepest_sha


def test_ranges_check_a_diff_without_reading_the_chain_whole(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each export keeps its ranges' digests; a diff over a snapshot that has them is
    checked range by range (only the ranges it touches are read back), and a change the
    diff left out is caught where it is: in a range the diff does not touch (its digest is
    not its base's), or in one it does (read back, it differs)."""
    whole_reads: list[str] = []
    verified = SnapshotExports._verified
    monkeypatch.setattr(
        SnapshotExports,
        "_verified",
        lambda self, snapshot_id, digest: (
            whole_reads.append(snapshot_id) or verified(self, snapshot_id, digest)
        ),
    )
    setup.write(0, random.randbytes(8 * MIB))
    first, _, _ = setup.snapshot()
    assert setup.objects.ranges(first) is not None
    setup.write(5 * MIB, random.randbytes(BLOCK))
    second, stored, second_sha = setup.snapshot()
    assert stored < BLOCK + 4 * KIB and setup.base(second) == first and whole_reads == []
    assert setup.restore(second) == second_sha

    setup.storage.lies = True  # the first change is left out of the diff
    setup.write(0, random.randbytes(BLOCK))  # a range the diff does not touch
    setup.write(100 * MIB, random.randbytes(BLOCK))
    third, stored, third_sha = setup.snapshot()
    assert stored > 8 * MIB and setup.base(third) is None
    setup.write(100 * MIB, random.randbytes(BLOCK))  # the same range as what it keeps
    setup.write(101 * MIB, random.randbytes(BLOCK))
    fourth, stored, fourth_sha = setup.snapshot()
    assert stored > 8 * MIB and setup.base(fourth) is None
    assert whole_reads == []
    assert setup.restore(third) == third_sha and setup.restore(fourth) == fourth_sha


def test_a_base_without_ranges_has_its_chain_read_back_whole(setup: Setup) -> None:
    """A snapshot exported before ranges were kept: a diff over it is checked by reading
    the stored chain back whole, and keeps its own ranges from then on."""
    setup.write(0, random.randbytes(MIB))
    first, _, _ = setup.snapshot()
    setup.objects.walrus.delete_object("karri-ebs-snapshots", f"{first}.ranges")
    assert setup.objects.ranges(first) is None
    setup.write(0, random.randbytes(BLOCK))
    second, stored, second_sha = setup.snapshot()
    assert stored < BLOCK + 4 * KIB and setup.base(second) == first
    assert setup.objects.ranges(second) is not None
    assert setup.restore(second) == second_sha
    setup.delete(first, second)
    assert setup.objects_left() == []
