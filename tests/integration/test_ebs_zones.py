"""A volume from another availability zone: karri restarted under another region name keeps
its volumes in the old zone, and AttachVolume refuses them with InvalidVolume.ZoneMismatch.
The instance runs on the fake node driver: no guest is needed to check the zone."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import start_karri, stop_karri
from tests.integration.ebs import ZONE, error_code, new_volume, volume
from tests.integration.guests import tiny_image, wait_state


def test_attach_across_zones(tmp_path: Path) -> None:
    karri = start_karri(tmp_path / "data", "--node-driver", "fake")
    try:
        volume_id = new_volume(karri.client("ec2"))
    finally:
        stop_karri(karri)
    karri = start_karri(tmp_path / "data", "--node-driver", "fake", "--region", "elsewhere")
    try:
        ec2 = karri.client("ec2")
        assert volume(ec2, volume_id)["AvailabilityZone"] == ZONE
        image_id = tiny_image(karri, ec2)
        run = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
        instance_id = run["Instances"][0]["InstanceId"]
        assert run["Instances"][0]["Placement"]["AvailabilityZone"] == "elsewhere-1a"
        wait_state(ec2, instance_id, "running")
        assert (
            error_code(
                ec2.attach_volume, VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf"
            )
            == "InvalidVolume.ZoneMismatch"
        )
        assert error_code(ec2.create_volume, Size=1, AvailabilityZone=ZONE) == (
            "InvalidParameterValue"
        )
        assert volume(ec2, volume_id)["State"] == "available"
    finally:
        stop_karri(karri)
