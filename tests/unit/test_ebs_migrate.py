"""cloud/volumes/migrate.py's run over two local-file backends (the "rbd" one is a second
directory here; the real RBD pass is tests/integration/test_ebs_migrate.py): volumes and
pending snapshots' checkpoints copied under their ids and verified, the data dir switched,
the old copy removed; refusals that change nothing; a run cut short finished by the next.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from karri.cloud.instances.models import Instance, Reservation
from karri.cloud.volumes.migrate import EbsMigration
from karri.cloud.volumes.models import Snapshot, Volume, VolumeAttachment
from karri.config import saved_ebs
from karri.db.engine import Database
from karri.db.models import Account
from karri.migrating import MigrationError
from karri.storage import GIB, LocalFileStorage, encode
from karri.storage.sparse import SparseStream, StreamReader, content_digest, without_zeros
from tests.qemu_keys import opened, run_keyed

ACCOUNT = "123456789012"
TO_RBD = {"ebs_backend": "rbd", "rbd_pool": "p", "ceph_conf": "/c"}
MIB = 1 << 20
KEY = b"c2VjcmV0LWtleS1vZi10aGUtYWNjb3VudA=="


class Cloud:
    """A stopped cloud's database and its two backends (files, and a "pool")."""

    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path / "data"
        self.data_dir.mkdir()
        self.db = Database(f"sqlite:///{self.data_dir / 'karri.db'}")
        self.files = LocalFileStorage(self.data_dir / "volumes")
        self.pool = LocalFileStorage(tmp_path / "pool")
        self.fail_after: int | None = None  # creates in the pool before one fails
        self.created: list[str] = []
        with self.db.write_session() as session:
            session.add(Account(id=ACCOUNT, name="a"))
            session.flush()
            session.add(Reservation(id="r-00000001", account_id=ACCOUNT))

    def opener(self, data_dir: Path, backend: dict[str, str]) -> LocalFileStorage:
        assert data_dir == self.data_dir
        if backend.get("ebs_backend") != "rbd":
            return self.files
        cloud = self

        class Pool(LocalFileStorage):
            def create_from(self, volume_id, stream, size_gib, progress=None, **kw):
                if cloud.fail_after is not None and len(cloud.created) >= cloud.fail_after:
                    raise OSError("the pool went away")
                cloud.created.append(volume_id)
                super().create_from(volume_id, stream, size_gib, progress, **kw)

        return Pool(self.pool.root)

    def migration(self, target: dict[str, str]) -> EbsMigration:
        return EbsMigration(self.data_dir, self.db, target, self.opener)

    def volume(self, volume_id: str, data: dict[int, bytes], **row: object) -> None:
        self.files.create(volume_id, 1)
        path = self.files.root / f"{volume_id}.raw"
        fd = os.open(path, os.O_WRONLY)
        try:
            for offset, chunk in data.items():
                os.pwrite(fd, chunk, offset)
        finally:
            os.close(fd)
        with self.db.write_session() as session:
            session.add(
                Volume(id=volume_id, account_id=ACCOUNT, size_gib=1, zone="z", **row)
            )  # fmt: skip

    def instance(self, instance_id: str, state: str, volume_id: str) -> None:
        with self.db.write_session() as session:
            session.add(
                Instance(
                    id=instance_id, reservation_id="r-00000001", account_id=ACCOUNT,
                    image_id="emi-00000001", instance_type="t1.micro", vcpus=1,
                    memory_mib=256, disk_gib=1, zone="z", root_device_type="ebs",
                    state=state, desired=state,
                )
            )  # fmt: skip
            session.flush()
            session.add(
                VolumeAttachment(
                    volume_id=volume_id, instance_id=instance_id, device="/dev/sdf",
                    state="attached",
                )
            )  # fmt: skip

    def pending_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        self.files.checkpoint(volume_id, snapshot_id)
        with self.db.write_session() as session:
            session.add(
                Snapshot(
                    id=snapshot_id, account_id=ACCOUNT, volume_id=volume_id, volume_size=1,
                    state="pending", checkpointed=True,
                )
            )  # fmt: skip


def _same(a: SparseStream, b: SparseStream) -> bool:
    return a.size == b.size and content_digest(a) == content_digest(b)


def _lines() -> tuple[list[str], object]:
    lines: list[str] = []
    return lines, lines.append


def test_volumes_and_pending_checkpoints_move_and_back(tmp_path: Path) -> None:
    cloud = Cloud(tmp_path)
    cloud.volume("vol-00000001", {0: b"boot", 300 * MIB: os.urandom(MIB)})
    cloud.volume("vol-00000002", {})
    cloud.pending_snapshot("snap-00000001", "vol-00000001")
    cloud.instance("i-00000001", "stopped", "vol-00000002")  # stopped: its volume moves
    before = {v: encode(cloud.files.root / f"{v}.raw") for v in ("vol-00000001", "vol-00000002")}
    digests = {v: content_digest(s) for v, s in before.items()}
    checkpoint = content_digest(cloud.files.export("snap-00000001"))

    lines, report = _lines()
    progress = cloud.migration(TO_RBD).run(report)
    assert progress.done_objects == 3 and progress.unit == "volumes and checkpoints"
    assert any(line.startswith("copied and verified 1/3") for line in lines), lines
    assert "switched to RBD pool p" in lines
    assert saved_ebs(cloud.data_dir) == TO_RBD
    assert not (cloud.data_dir / "ebs-migration.json").exists()
    assert cloud.files.volume_ids() == set() and cloud.files.checkpoint_ids() == set()
    assert cloud.pool.volume_ids() == {"vol-00000001", "vol-00000002"}
    for volume_id, digest in digests.items():
        assert content_digest(cloud.pool.volume_stream(volume_id)) == digest
        assert cloud.pool.target(volume_id).size_bytes == GIB
    assert content_digest(cloud.pool.export("snap-00000001")) == checkpoint

    with pytest.raises(MigrationError, match="kept in RBD pool p already"):
        cloud.migration(TO_RBD).run(report)

    cloud.migration({"ebs_backend": "files"}).run(report)
    assert saved_ebs(cloud.data_dir)["ebs_backend"] == "files"
    assert "rbd_pool" not in saved_ebs(cloud.data_dir)
    assert cloud.pool.volume_ids() == set() and cloud.pool.checkpoint_ids() == set()
    for volume_id, digest in digests.items():
        assert content_digest(cloud.files.volume_stream(volume_id)) == digest
    assert content_digest(cloud.files.export("snap-00000001")) == checkpoint


def test_volumes_in_use_or_raw_luks_are_refused_and_nothing_changes(tmp_path: Path) -> None:
    cloud = Cloud(tmp_path)
    cloud.volume("vol-00000001", {0: b"data"})
    cloud.volume("vol-00000002", {})
    cloud.instance("i-00000001", "running", "vol-00000002")
    legacy = cloud.files.root / "vol-00000003.luks"  # encrypted before qcow2: raw LUKS
    options = ["-o", "key-secret=k,iter-time=10"]
    run_keyed(["qemu-img", "create", "-q", "-f", "luks", *options, str(legacy), "1M"], KEY)
    lines, report = _lines()
    with pytest.raises(MigrationError) as refused:
        cloud.migration(TO_RBD).run(report)
    message = str(refused.value)
    assert "vol-00000002: attached to i-00000001 (running)" in message
    assert "vol-00000003: encrypted as raw LUKS" in message and "vol-00000001" not in message
    assert saved_ebs(cloud.data_dir) == {}
    assert not (cloud.data_dir / "ebs-migration.json").exists()
    assert cloud.pool.volume_ids() == set() and len(cloud.files.volume_ids()) == 3
    assert lines == []


def test_encrypted_volumes_move_as_their_ciphertext(tmp_path: Path) -> None:
    """An encrypted volume's file is copied as it is (never decrypted: no key is needed),
    and opens there as before with its size."""
    cloud = Cloud(tmp_path)
    cloud.files.create("vol-00000001", 2, KEY)
    path = cloud.files.target("vol-00000001").path
    run_keyed(["qemu-io", "--image-opts", opened(path), "-c", "write -P 0x6b 3M 1M"], KEY)
    with cloud.db.write_session() as session:
        session.add(Volume(id="vol-00000001", account_id=ACCOUNT, size_gib=2, zone="z"))
    digest = content_digest(encode(Path(path)))
    cloud.migration(TO_RBD).run(_lines()[1])
    moved = cloud.pool.target("vol-00000001")
    assert (moved.format, moved.size_bytes) == ("qcow2-luks", 2 * GIB)
    assert content_digest(cloud.pool.volume_stream("vol-00000001")) == digest
    run_keyed(["qemu-io", "--image-opts", opened(moved.path), "-c", "read -P 0x6b 3M 1M"], KEY)
    assert cloud.files.volume_ids() == set()


def test_a_run_cut_short_is_finished_by_the_next(tmp_path: Path) -> None:
    cloud = Cloud(tmp_path)
    for n in range(1, 4):
        cloud.volume(f"vol-0000000{n}", {n * MIB: bytes([n]) * 4096})
    cloud.fail_after = 2
    _, report = _lines()
    with pytest.raises(OSError, match="went away"):
        cloud.migration(TO_RBD).run(report)
    assert saved_ebs(cloud.data_dir) == {}  # not switched: the files are whole
    assert json.loads((cloud.data_dir / "ebs-migration.json").read_text())["to"] == TO_RBD
    assert len(cloud.files.volume_ids()) == 3

    cloud.fail_after, cloud.created = None, []
    cloud.migration(TO_RBD).run(report)
    assert cloud.created == ["vol-00000003"]  # the two verified copies were kept
    assert saved_ebs(cloud.data_dir)["ebs_backend"] == "rbd"
    assert cloud.files.volume_ids() == set() and len(cloud.pool.volume_ids()) == 3


def test_content_digest_is_the_same_for_holes_and_written_zeros(tmp_path: Path) -> None:
    sparse_file, dense_file = tmp_path / "sparse", tmp_path / "dense"
    data = os.urandom(5000)
    with open(sparse_file, "wb") as f:
        f.truncate(8 * MIB)
        f.seek(3 * MIB + 17)
        f.write(data)
    dense = bytearray(8 * MIB)
    dense[3 * MIB + 17 : 3 * MIB + 17 + len(data)] = data
    dense_file.write_bytes(bytes(dense))
    assert _same(encode(sparse_file), encode(dense_file))
    copied, digest = without_zeros(encode(dense_file))  # written zeros: holes in a copy
    assert copied.records == [(3 * MIB, MIB)] and digest == content_digest(encode(sparse_file))
    dense[5 * MIB] = 1
    dense_file.write_bytes(bytes(dense))
    assert not _same(encode(sparse_file), encode(dense_file))
    stream = encode(sparse_file)
    assert StreamReader(stream).read() == b"".join(encode(sparse_file))
    reader = StreamReader(stream)
    assert b"".join(iter(lambda: reader.read(7), b"")) == io.BytesIO(b"".join(stream)).read()
