"""SIGKILL of `karri up` while CreateImage (without NoReboot) has the instance stopping:
after a restart on the same data dir the image completes and the instance runs again,
started once, with nothing else changed. And the user's own StopInstances meanwhile
keeps it stopped."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Karri, start_karri
from tests.integration.ebs import wait_until
from tests.integration.guests import (
    available_image,
    console,
    end_cloud,
    instance,
    state,
    wait_console,
    wait_for,
    wait_state,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")

NAME = "made-across-a-crash"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[list[Karri]]:
    """A cloud of the test's own, in a list so that a restart can replace it."""
    holder = [start_karri(tmp_path / "data", "--stop-instances-on-exit")]
    yield holder
    end_cloud(holder[0])


def _what_must_not_change(ec2: Any, instance_id: str) -> dict[str, Any]:
    described = instance(ec2, instance_id)
    return {
        "instance": {
            key: described.get(key)
            for key in ("ImageId", "InstanceType", "PrivateIpAddress", "RootDeviceName")
        },
        "mappings": [
            (m["DeviceName"], m["Ebs"]["VolumeId"]) for m in described["BlockDeviceMappings"]
        ],
        "volumes": sorted(
            (v["VolumeId"], v["State"], v["Size"]) for v in ec2.describe_volumes()["Volumes"]
        ),
    }


def _own_snapshots(ec2: Any) -> set[str]:
    return {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def _own_images(ec2: Any) -> set[str]:
    return {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}


def _running_ebs_instance(ec2: Any) -> str:
    image = available_image(ec2, "karri-tiny-ebs", 900)
    source = ec2.run_instances(
        ImageId=image["ImageId"], MinCount=1, MaxCount=1, InstanceType="t1.micro"
    )["Instances"][0]["InstanceId"]
    wait_state(ec2, source, "running", 300)
    wait_console(ec2, source, "karri-tiny: boot complete")
    return source


def _settled(ec2: Any, image_id: str) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        found = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        return found if found["State"] != "pending" else None

    return wait_for(f"image {image_id}", settled, 600)


def test_sigkill_while_createimage_stops_the_instance(cloud: list[Karri]) -> None:
    karri = cloud[0]
    ec2 = karri.client("ec2")
    source = _running_ebs_instance(ec2)
    before = _what_must_not_change(ec2, source)
    snapshots, images = _own_snapshots(ec2), _own_images(ec2)

    image_id = ec2.create_image(InstanceId=source, Name=NAME)["ImageId"]
    assert state(ec2, source) in ("stopping", "stopped")
    karri.process.kill()  # while the guest powers off for the image
    karri.process.wait()
    karri = cloud[0] = start_karri(karri.data_dir, "--stop-instances-on-exit")
    ec2 = karri.client("ec2")

    made = _settled(ec2, image_id)
    assert made["State"] == "available", made
    assert made["Name"] == NAME and made["RootDeviceType"] == "ebs"
    wait_state(ec2, source, "running", 300)
    wait_console(ec2, source, f"karri-tiny: instance {source} boot 2")

    # nothing else changed: the same instance and volumes, one new snapshot per volume
    # (the image's), no other image
    assert _what_must_not_change(ec2, source) == before
    image_snapshots = {m["Ebs"]["SnapshotId"] for m in made["BlockDeviceMappings"] if "Ebs" in m}
    assert len(image_snapshots) == len(before["mappings"])
    wait_until(lambda: _own_snapshots(ec2) == snapshots | image_snapshots, 60)
    assert _own_images(ec2) == images | {image_id}
    # started once: still running, no third boot
    assert state(ec2, source) == "running"
    assert f"instance {source} boot 3" not in console(ec2, source)


def test_the_users_stop_during_createimage_wins(cloud: list[Karri]) -> None:
    ec2 = cloud[0].client("ec2")
    source = _running_ebs_instance(ec2)
    image_id = ec2.create_image(InstanceId=source, Name=NAME)["ImageId"]
    ec2.stop_instances(InstanceIds=[source])  # the user wants it stopped, image or not
    assert _settled(ec2, image_id)["State"] == "available"
    wait_state(ec2, source, "stopped", 300)
    time.sleep(6)  # an EBS worker scan: still not started again
    assert state(ec2, source) == "stopped"
