"""`karri storage migrate --ebs`: a stopped cloud's volumes move from files to RBD (a
throwaway Ceph cluster) and back, through real `karri up`s and boto3: the volumes and
snapshots described the same, their bytes where they were, a migrated snapshot given a
kept checkpoint on RBD (from its Walrus object) and volumes made from it holding its
bytes; encrypted volumes moved as their ciphertext and back; a migration killed midway
leaves a cloud that starts, and a second run finishes it."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from karri.config import saved_ebs
from tests import ceph
from tests.conftest import Karri, start_karri, stop_karri
from tests.integration.ebs import ZONE, new_volume, stored_bytes, wait_snapshot, wait_volume
from tests.integration.ec2_wire import unique
from tests.integration.migrations import killed_at, migrate
from tests.integration.rbd import images, keyed_io, pattern_at, qemu_io, snaps
from tests.integration.test_ebs_encryption import decrypted, passphrase

FAKE = ("--node-driver", "fake", "--no-default-images")
MIB = 1 << 20
AT = 300 * MIB  # where the known bytes are
MARK = 0x5A
LATER = 0x77  # written on RBD after the migration
KIB = 1 << 10


def _to_rbd(pool: str) -> tuple[str, ...]:
    return ("--ebs", "rbd", "--ceph-conf", str(ceph.cluster().conf), "--rbd-pool", pool)


def _volume_files(data_dir: Path) -> list[str]:
    return sorted(p.stem for p in (data_dir / "volumes").glob("vol-*"))


def _write_mark(data_dir: Path, volume_id: str) -> None:
    """Known bytes written into a detached volume's file, as a guest would."""
    fd = os.open(data_dir / "volumes" / f"{volume_id}.raw", os.O_WRONLY)
    try:
        os.pwrite(fd, bytes([MARK]) * MIB, AT)
        os.pwrite(fd, b"first block", 0)
    finally:
        os.close(fd)


def _file_has_mark(data_dir: Path, volume_id: str) -> bool:
    with open(data_dir / "volumes" / f"{volume_id}.raw", "rb") as f:
        f.seek(AT)
        return f.read(MIB) == bytes([MARK]) * MIB


def _described(karri: Karri) -> dict[str, Any]:
    """What DescribeVolumes and DescribeSnapshots say, less what changes on its own."""
    ec2 = karri.client("ec2")
    volumes = {
        v["VolumeId"]: (v["Size"], v["State"], v.get("SnapshotId", ""), v["Encrypted"])
        for v in ec2.describe_volumes()["Volumes"]
    }
    snapshots = {
        s["SnapshotId"]: (s["VolumeId"], s["VolumeSize"], s["State"], s["Progress"])
        for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    }
    return {"volumes": volumes, "snapshots": snapshots}


def _files_cloud(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, Any]]:
    """A cloud on files with a volume of known bytes, its snapshot, a volume restored
    from it and an empty one; stopped."""
    data_dir = tmp_path / "data"
    karri = start_karri(data_dir, *FAKE)
    try:
        ec2 = karri.client("ec2")
        marked = new_volume(ec2, 1)
        _write_mark(data_dir, marked)
        snap = ec2.create_snapshot(VolumeId=marked)["SnapshotId"]
        assert wait_snapshot(ec2, snap)["State"] == "completed"
        restored = ec2.create_volume(SnapshotId=snap, AvailabilityZone=ZONE, Size=2)["VolumeId"]
        wait_volume(ec2, restored)
        assert _file_has_mark(data_dir, restored)
        empty = new_volume(ec2, 1)
        ids = {"marked": marked, "snap": snap, "restored": restored, "empty": empty}
        described = _described(karri)
    finally:
        stop_karri(karri)
    return data_dir, ids, described


def test_volumes_move_to_rbd_and_back(tmp_path: Path) -> None:
    data_dir, ids, described = _files_cloud(tmp_path)
    pool = ceph.cluster().new_pool()

    moved = migrate(data_dir, *_to_rbd(pool))
    assert moved.returncode == 0, moved.stdout + moved.stderr
    # three volumes, and a kept checkpoint for the snapshot (from its Walrus object)
    assert "copied and verified 4/4 volumes and checkpoints" in moved.stdout, moved.stdout
    assert f"switched to RBD pool {pool}" in moved.stdout
    assert saved_ebs(data_dir)["ebs_backend"] == "rbd"
    assert saved_ebs(data_dir)["rbd_pool"] == pool
    assert _volume_files(data_dir) == []  # the old files are gone
    assert images(pool) == sorted([ids["marked"], ids["restored"], ids["empty"], ids["snap"]])
    assert snaps(pool, ids["snap"]) == [ids["snap"]]
    again = migrate(data_dir, *_to_rbd(pool))
    assert again.returncode == 1 and "already" in again.stdout, again.stdout

    karri = start_karri(data_dir, *FAKE)  # the saved backend: RBD
    try:
        assert _described(karri) == described
        for volume_id in (ids["marked"], ids["restored"]):
            assert pattern_at(pool, volume_id, AT, MIB, MARK), volume_id
        ec2 = karri.client("ec2")
        from_snap = ec2.create_volume(SnapshotId=ids["snap"], AvailabilityZone=ZONE)["VolumeId"]
        wait_volume(ec2, from_snap)  # a clone of the migrated snapshot's checkpoint
        assert pattern_at(pool, from_snap, AT, MIB, MARK)
        # A snapshot taken on RBD keeps its checkpoint (a clone source), across a restart
        kept = ec2.create_snapshot(VolumeId=ids["restored"])["SnapshotId"]
        assert wait_snapshot(ec2, kept)["State"] == "completed"
        clone = ec2.create_volume(SnapshotId=kept, AvailabilityZone=ZONE)["VolumeId"]
        wait_volume(ec2, clone)
        # the next snapshot of that volume is a diff over it (only the new bytes stored)
        qemu_io(pool, ids["restored"], f"write -P {LATER} {AT + 8 * MIB} {64 * KIB}")
        later = ec2.create_snapshot(VolumeId=ids["restored"])["SnapshotId"]
        assert wait_snapshot(ec2, later)["State"] == "completed"
        assert (stored_bytes(karri, later) or MIB) < MIB
    finally:
        stop_karri(karri)
    assert kept in snaps(pool, ids["restored"])
    karri = start_karri(data_dir, *FAKE)
    try:
        assert kept in snaps(pool, ids["restored"])  # not dropped by the start
        described = _described(karri)
    finally:
        stop_karri(karri)

    back = migrate(data_dir, "--ebs", "files")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "copied and verified 5/5" in back.stdout, back.stdout
    assert saved_ebs(data_dir)["ebs_backend"] == "files"
    assert images(pool) == []  # volumes, kept checkpoints and their images all gone
    moved_back = [ids["marked"], ids["restored"], ids["empty"], from_snap, clone]
    assert _volume_files(data_dir) == sorted(moved_back)
    for volume_id in (ids["marked"], ids["restored"], from_snap, clone):
        assert _file_has_mark(data_dir, volume_id), volume_id

    karri = start_karri(data_dir, *FAKE)
    try:
        assert _described(karri) == described
        ec2 = karri.client("ec2")
        restored = ec2.create_volume(SnapshotId=kept, AvailabilityZone=ZONE)["VolumeId"]
        wait_volume(ec2, restored)
        assert _file_has_mark(data_dir, restored)
        # a file restored from the diff laid over its base: both snapshots' bytes
        from_later = ec2.create_volume(SnapshotId=later, AvailabilityZone=ZONE)["VolumeId"]
        wait_volume(ec2, from_later)
        assert _file_has_mark(data_dir, from_later)
        with open(data_dir / "volumes" / f"{from_later}.raw", "rb") as f:
            f.seek(AT + 8 * MIB)
            assert f.read(64 * KIB) == bytes([LATER]) * 64 * KIB
    finally:
        stop_karri(karri)


def test_encrypted_volumes_move_to_rbd_and_back(tmp_path: Path) -> None:
    """An encrypted volume moves as its ciphertext (the same qcow2 file in the image), opens
    there with the account's key, and its snapshot (in Walrus, encrypted) restores on RBD;
    moved back, it opens on files as before."""
    data_dir = tmp_path / "data"
    karri = start_karri(data_dir, *FAKE)
    try:
        account = karri.create_account(unique("mig-enc"))
        ec2 = karri.client("ec2", account)
        key = passphrase(karri, account.account_id)
        encrypted = new_volume(ec2, 2, Encrypted=True)
        decrypted(data_dir / "volumes" / f"{encrypted}.qcow2", key, f"write -P {MARK} {AT} {MIB}")
        snap = ec2.create_snapshot(VolumeId=encrypted)["SnapshotId"]
        assert wait_snapshot(ec2, snap)["Encrypted"] is True
        plain = new_volume(ec2, 1)
        described = _described(karri)
    finally:
        stop_karri(karri)
    pool = ceph.cluster().new_pool()
    moved = migrate(data_dir, *_to_rbd(pool))
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "copied and verified 2/2" in moved.stdout, moved.stdout
    assert images(pool) == sorted([plain, encrypted]) and _volume_files(data_dir) == []
    keyed_io(pool, encrypted, f"read -P {MARK} {AT} {MIB}", key)
    assert "2 GiB" in keyed_io(pool, encrypted, "length", key)

    karri = start_karri(data_dir, *FAKE)
    try:
        assert _described(karri) == described
        ec2 = karri.client("ec2", account)
        restored = new_volume(ec2, 3, SnapshotId=snap)  # from Walrus, grown by its key
        keyed_io(pool, restored, f"read -P {MARK} {AT} {MIB}", key)
        described = _described(karri)
    finally:
        stop_karri(karri)
    back = migrate(data_dir, "--ebs", "files")
    assert back.returncode == 0, back.stdout + back.stderr
    assert images(pool) == []
    assert _volume_files(data_dir) == sorted([plain, encrypted, restored])
    for volume_id in (encrypted, restored):
        decrypted(data_dir / "volumes" / f"{volume_id}.qcow2", key, f"read -P {MARK} {AT} {MIB}")
    karri = start_karri(data_dir, *FAKE)
    try:
        assert _described(karri) == described
    finally:
        stop_karri(karri)


@pytest.mark.parametrize("kill_after", ["copied and verified 1/", "removed 1/"])
def test_a_killed_migration_leaves_a_cloud_that_starts(tmp_path: Path, kill_after: str) -> None:
    data_dir, ids, described = _files_cloud(tmp_path)
    pool = ceph.cluster().new_pool()

    returncode = killed_at(data_dir, kill_after, *_to_rbd(pool))
    if returncode == -signal.SIGKILL:
        switched = kill_after.startswith("removed")
        assert saved_ebs(data_dir).get("ebs_backend", "files") == ("rbd" if switched else "files")

    karri = start_karri(data_dir, *FAKE)  # on whichever backend the data dir names
    try:
        assert _described(karri) == described
    finally:
        stop_karri(karri)

    finished = migrate(data_dir, *_to_rbd(pool))
    if returncode == 0:
        assert finished.returncode == 1 and "already" in finished.stdout, finished.stdout
    else:
        assert finished.returncode == 0, finished.stdout + finished.stderr
    assert saved_ebs(data_dir)["ebs_backend"] == "rbd"
    assert _volume_files(data_dir) == []
    assert images(pool) == sorted([ids["marked"], ids["restored"], ids["empty"], ids["snap"]])
    karri = start_karri(data_dir, *FAKE)
    try:
        assert _described(karri) == described
        assert pattern_at(pool, ids["restored"], AT, MIB, MARK)
    finally:
        stop_karri(karri)
