"""ModifyVolume on a volume a running guest uses: the guest sees the new size at once
(QMP block_resize), and the new type's limits are set on its disk live."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import start_karri
from tests.integration.ebs import new_volume, volume, wait_until
from tests.integration.guests import (
    end_cloud,
    ssh_guest,
)
from tests.integration.test_ebs_guests import FIND
from tests.integration.test_ebs_modify import wait_modified

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")
SECTOR = 512


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("ebs-modify")
    karri = start_karri(base / "data", "--stop-instances-on-exit")
    state: dict[str, Any] = {"karri": karri}
    try:
        ec2 = karri.client("ec2")
        instance_id, run = ssh_guest(karri, ec2, base, "modify", "t1.micro")
        state.update(ec2=ec2, instance_id=instance_id, run=run)
        yield state
    finally:
        end_cloud(state["karri"])


def test_a_volume_grown_in_use_shows_its_new_size_in_the_guest(guest: dict[str, Any]) -> None:
    ec2, run = guest["ec2"], guest["run"]
    volume_id = new_volume(ec2, size=1, VolumeType="gp3")
    ec2.attach_volume(VolumeId=volume_id, InstanceId=guest["instance_id"], Device="/dev/sdf")
    wait_until(lambda: volume(ec2, volume_id)["State"] == "in-use", 120)
    device = wait_until(lambda: run(FIND.format(vol=volume_id)).strip(), 60, 1)
    name = device.removeprefix("/dev/")

    def sectors() -> int:
        return int(run(f"cat /sys/block/{name}/size").strip())

    assert sectors() * SECTOR == 1 << 30
    run(f"printf KEEP-ME > {device}; sync")
    ec2.modify_volume(VolumeId=volume_id, Size=8, Iops=3500, Throughput=200)
    done = wait_modified(ec2, volume_id, 120)
    assert (done["TargetSize"], done["TargetIops"], done["TargetThroughput"]) == (8, 3500, 200)
    assert wait_until(lambda: sectors() * SECTOR == 8 << 30, 30, 1)
    assert run(f"head -c 7 {device}") == "KEEP-ME"  # grown, not replaced
    described = volume(ec2, volume_id)
    assert (described["Size"], described["State"]) == (8, "in-use")

    # another type on the same disk, still in use: io2 at a few hundred IOPS
    ec2.modify_volume(VolumeId=volume_id, Size=9, VolumeType="io2", Iops=400)
    wait_modified(ec2, volume_id, 120)
    assert wait_until(lambda: sectors() * SECTOR == 9 << 30, 30, 1)
    assert run(f"head -c 7 {device}") == "KEEP-ME"
    described = volume(ec2, volume_id)
    assert (described["VolumeType"], described["Iops"]) == ("io2", 400)
    ec2.detach_volume(VolumeId=volume_id)
    wait_until(lambda: volume(ec2, volume_id)["State"] == "available", 120)
    ec2.delete_volume(VolumeId=volume_id)
