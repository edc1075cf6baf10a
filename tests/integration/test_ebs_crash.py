"""SIGKILL of `karri up` in the middle of EBS work: after a restart every volume and
snapshot reaches a consistent state, the interrupted work resumes, and no volume is lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Karri, start_karri, stop_karri
from tests.integration.ebs import (
    ZONE,
    digest,
    fill_random,
    new_volume,
    snapshot,
    volume,
    volume_file,
    wait_snapshot,
    wait_until,
    wait_volume,
)

MIB = 1 << 20
DATA = 768 * MIB


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[list[Karri]]:
    """A cloud of the test's own, in a list so that a restart can replace it."""
    holder = [start_karri(tmp_path / "data", "--no-default-images")]
    yield holder
    stop_karri(holder[0])


def _kill_and_restart(holder: list[Karri]) -> Karri:
    old = holder[0]
    old.process.kill()
    old.process.wait()
    holder[0] = start_karri(old.data_dir, "--no-default-images")
    return holder[0]


def _no_leftovers(karri: Karri) -> None:
    volumes = karri.data_dir / "volumes"
    wait_until(lambda: not list((volumes / "tmp").iterdir()))
    wait_until(lambda: not list((volumes / "checkpoints").iterdir()))


def test_sigkill_during_snapshot_upload(cloud: list[Karri]) -> None:
    karri = cloud[0]
    ec2 = karri.client("ec2")
    volume_id = new_volume(ec2, size=1)
    fill_random(volume_file(karri, volume_id), DATA)
    expected = digest(volume_file(karri, volume_id))
    snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]

    def uploading() -> bool:
        current = snapshot(ec2, snap_id)
        assert current["State"] == "pending", "finished before it could be interrupted"
        return current["Progress"] != "0%"

    wait_until(uploading, timeout=120, step=0.05)
    seen = snapshot(ec2, snap_id)["Progress"]
    assert 0 < int(seen.rstrip("%")) < 100

    karri = _kill_and_restart(cloud)
    ec2 = karri.client("ec2")
    assert volume(ec2, volume_id)["State"] == "available"
    assert snapshot(ec2, snap_id)["State"] in ("pending", "completed")
    done = wait_snapshot(ec2, snap_id)
    assert done["State"] == "completed" and done["Progress"] == "100%"
    assert digest(volume_file(karri, volume_id)) == expected  # the volume is untouched

    restored = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, restored)
    assert digest(volume_file(karri, restored)) == expected
    _no_leftovers(karri)


def test_sigkill_during_volume_restore(cloud: list[Karri]) -> None:
    karri = cloud[0]
    ec2 = karri.client("ec2")
    source = new_volume(ec2, size=1)
    fill_random(volume_file(karri, source), DATA)
    expected = digest(volume_file(karri, source))
    snap_id = ec2.create_snapshot(VolumeId=source)["SnapshotId"]
    assert wait_snapshot(ec2, snap_id)["State"] == "completed"

    restored = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=ZONE)["VolumeId"]
    tmp = karri.data_dir / "volumes" / "tmp"
    wait_until(lambda: any(tmp.iterdir()) or volume(ec2, restored)["State"] != "creating", 60, 0.02)
    karri = _kill_and_restart(cloud)
    ec2 = karri.client("ec2")
    assert volume(ec2, restored)["State"] in ("creating", "available")
    wait_volume(ec2, restored)
    assert digest(volume_file(karri, restored)) == expected
    assert digest(volume_file(karri, source)) == expected
    _no_leftovers(karri)


def test_sigkill_before_the_checkpoint(cloud: list[Karri]) -> None:
    """Killed right after CreateSnapshot and DeleteVolume: the snapshot still gets the
    volume's bytes, and only then does the volume go."""
    karri = cloud[0]
    ec2 = karri.client("ec2")
    volume_id = new_volume(ec2, size=1)
    fill_random(volume_file(karri, volume_id), 64 * MIB)
    expected = digest(volume_file(karri, volume_id))
    snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    ec2.delete_volume(VolumeId=volume_id)
    karri = _kill_and_restart(cloud)
    ec2 = karri.client("ec2")
    assert wait_snapshot(ec2, snap_id)["State"] == "completed"
    wait_until(lambda: not volume_file(karri, volume_id).exists())
    restored = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, restored)
    assert digest(volume_file(karri, restored)) == expected
    _no_leftovers(karri)
