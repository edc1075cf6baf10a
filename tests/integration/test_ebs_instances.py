"""EBS-backed instances of the default karri-tiny-ebs image in real QEMU guests: the root
volume made from the image's snapshot, stop and start keeping what the guest wrote,
DeleteOnTermination per mapping, attaching to a stopped instance, and the snapshot an image
uses that cannot be deleted."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Karri, start_karri
from tests.integration.ebs import error_code, new_volume, volume, wait_until, wait_volume
from tests.integration.ec2_wire import race
from tests.integration.guests import (
    available_image,
    end_cloud,
    instance,
    key_file,
    open_port,
    ssh,
    wait_console,
    wait_for,
    wait_state,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")


def launch(ec2: Any, image_id: str, **extra: Any) -> dict[str, Any]:
    """One t1.micro instance of ``image_id``, once running (its RunInstances record)."""
    run = ec2.run_instances(
        ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t1.micro", **extra
    )["Instances"][0]
    wait_state(ec2, run["InstanceId"], "running", 300)
    return run


def mappings(ec2: Any, instance_id: str) -> dict[str, dict[str, Any]]:
    return {m["DeviceName"]: m["Ebs"] for m in instance(ec2, instance_id)["BlockDeviceMappings"]}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("ebs-instances")
    karri = start_karri(base / "data", "--stop-instances-on-exit")
    state: dict[str, Any] = {"karri": karri, "base": base}
    try:
        ec2 = karri.client("ec2")
        key = key_file(ec2, base, "ebs")
        open_port(ec2, 22)  # ssh from the host
        state.update(key=key, image=available_image(ec2, "karri-tiny-ebs", 900))
        yield state
    finally:
        end_cloud(karri)


def test_the_default_ebs_image(cloud: dict[str, Any]) -> None:
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    image = cloud["image"]
    assert image["RootDeviceType"] == "ebs" and image["RootDeviceName"] == "/dev/sda1"
    assert image["Public"] is True
    root = image["BlockDeviceMappings"][0]
    assert root["DeviceName"] == "/dev/sda1"
    assert root["Ebs"]["DeleteOnTermination"] is True
    snapshot_id = root["Ebs"]["SnapshotId"]
    assert ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"] == (
        "completed"
    )
    assert error_code(ec2.delete_snapshot, SnapshotId=snapshot_id) == "InvalidSnapshot.InUse"


def test_stop_and_start_keep_the_root_volume(cloud: dict[str, Any]) -> None:
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    run = launch(ec2, cloud["image"]["ImageId"], KeyName="ebs")
    instance_id = run["InstanceId"]
    assert run["RootDeviceType"] == "ebs"
    wait_console(ec2, instance_id, f"karri-tiny: instance {instance_id} boot 1")
    root = mappings(ec2, instance_id)["/dev/sda1"]
    root_volume = root["VolumeId"]
    assert root["DeleteOnTermination"] is True
    assert wait_until(lambda: volume(ec2, root_volume)["State"] == "in-use")
    assert (
        volume(ec2, root_volume)["SnapshotId"]
        == cloud["image"]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    )

    address = instance(ec2, instance_id)["PublicIpAddress"]
    ssh(cloud["key"], address, "echo kept-across-stop > /root/marker; sync")

    ec2.stop_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "stopped", 180)
    assert volume(ec2, root_volume)["State"] == "in-use"  # still attached while stopped
    karri.cli("vmtype", "set", "x9.roomy", "--cpu", "4096", "--memory", "256", "--disk", "1")
    ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "x9.roomy"})
    assert error_code(ec2.start_instances, InstanceIds=[instance_id]) == (
        "InsufficientInstanceCapacity"
    )  # more vCPUs than the node has: once started anyway, over-committing it
    assert instance(ec2, instance_id)["State"]["Name"] == "stopped"
    ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "m1.small"})
    extra = new_volume(ec2)
    attach = lambda: ec2.attach_volume(  # noqa: E731
        VolumeId=extra, InstanceId=instance_id, Device="/dev/sdf"
    )
    outcomes = race([attach] * 8)  # once two passed the check and one failed with a 500
    assert sorted(outcomes) == ["VolumeInUse"] * 7 + ["ok"], outcomes
    wait_until(lambda: volume(ec2, extra)["Attachments"][0]["State"] == "attached", 60)

    ec2.start_instances(InstanceIds=[instance_id])
    running = wait_state(ec2, instance_id, "running", 300)
    assert running["InstanceId"] == instance_id and running["InstanceType"] == "m1.small"
    wait_console(ec2, instance_id, f"karri-tiny: instance {instance_id} boot 2")
    address = running["PublicIpAddress"]
    assert ssh(cloud["key"], address, "cat /root/marker").strip() == "kept-across-stop"
    serials = ssh(cloud["key"], address, "cat /sys/block/vd*/serial")
    assert extra in serials and root_volume in serials

    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated", 180)
    wait_volume(ec2, extra, "available")
    wait_until(
        lambda: root_volume not in {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]},
        60,
    )
    assert not (karri.data_dir / "volumes" / f"{root_volume}.raw").exists()
    ec2.delete_volume(VolumeId=extra)


def test_delete_on_termination_per_mapping(cloud: dict[str, Any]) -> None:
    ec2 = cloud["karri"].client("ec2")
    instance_id = launch(
        ec2,
        cloud["image"]["ImageId"],
        BlockDeviceMappings=[
            {"DeviceName": "/dev/sda1", "Ebs": {"DeleteOnTermination": False}},
            {"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 2}},
        ],
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "from", "Value": "run"}]}],
    )["InstanceId"]
    devices = wait_until(
        lambda: len(mappings(ec2, instance_id)) == 2 and mappings(ec2, instance_id)
    )
    root, extra = devices["/dev/sda1"]["VolumeId"], devices["/dev/sdb"]["VolumeId"]
    assert devices["/dev/sda1"]["DeleteOnTermination"] is False
    assert devices["/dev/sdb"]["DeleteOnTermination"] is True
    assert volume(ec2, extra)["Size"] == 2
    assert {"Key": "from", "Value": "run"} in volume(ec2, root)["Tags"]
    attribute = ec2.describe_instance_attribute(
        InstanceId=instance_id, Attribute="blockDeviceMapping"
    )["BlockDeviceMappings"]
    assert {m["DeviceName"] for m in attribute} == {"/dev/sda1", "/dev/sdb"}
    ec2.modify_instance_attribute(
        InstanceId=instance_id,
        BlockDeviceMappings=[{"DeviceName": "/dev/sdb", "Ebs": {"DeleteOnTermination": False}}],
    )
    assert mappings(ec2, instance_id)["/dev/sdb"]["DeleteOnTermination"] is False
    assert error_code(ec2.detach_volume, VolumeId=root) == "OperationNotPermitted"

    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated", 180)
    wait_volume(ec2, root, "available")
    wait_volume(ec2, extra, "available")
    for volume_id in (root, extra):
        ec2.delete_volume(VolumeId=volume_id)


def test_terminated_means_its_volumes_are_free(cloud: dict[str, Any]) -> None:
    """In the first answer that says ``terminated``, the kept volumes are already
    ``available`` and can be deleted at once (they were ``in-use`` for 1-5 s more)."""
    ec2 = cloud["karri"].client("ec2")
    instance_id = launch(
        ec2,
        cloud["image"]["ImageId"],
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"DeleteOnTermination": False}}],
    )["InstanceId"]
    root = mappings(ec2, instance_id)["/dev/sda1"]["VolumeId"]
    extra = new_volume(ec2)
    ec2.attach_volume(VolumeId=extra, InstanceId=instance_id, Device="/dev/sdg")
    wait_until(lambda: volume(ec2, extra)["Attachments"][0]["State"] == "attached", 120)
    ec2.stop_instances(InstanceIds=[instance_id])
    stopped = wait_state(ec2, instance_id, "stopped", 180)
    assert {m["Ebs"]["Status"] for m in stopped["BlockDeviceMappings"]} == {"attached"}
    ec2.start_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "running", 300)

    ec2.terminate_instances(InstanceIds=[instance_id])
    while (seen := instance(ec2, instance_id))["State"]["Name"] != "terminated":
        assert seen["State"]["Name"] in ("running", "shutting-down"), seen["State"]
        time.sleep(0.05)
    assert seen["BlockDeviceMappings"] == []
    for volume_id in (root, extra):
        kept = volume(ec2, volume_id)
        assert (kept["State"], kept["Attachments"]) == ("available", []), kept
        ec2.delete_volume(VolumeId=volume_id)


def _wait_image(ec2: Any, image_id: str) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        return image if image["State"] != "pending" else None

    return wait_for(f"image {image_id}", settled, 600)


@pytest.mark.parametrize("no_reboot", [False, True])
def test_create_image_from_an_ebs_instance(cloud: dict[str, Any], no_reboot: bool) -> None:
    ec2 = cloud["karri"].client("ec2")
    source = launch(ec2, cloud["image"]["ImageId"], KeyName="ebs")["InstanceId"]
    wait_console(ec2, source, "karri-tiny: boot complete")
    marker = f"made-before-createimage-{no_reboot}"
    address = instance(ec2, source)["PublicIpAddress"]
    ssh(cloud["key"], address, f"echo {marker} > /root/image-marker; sync")

    name = f"from-{source}"
    evil_tag = [{"ResourceType": "snapshot", "Tags": [{"Key": "aws:evil", "Value": "v"}]}]
    for refused in (
        {"Name": "bad!name"},
        {"Name": f"{name}-tags", "TagSpecifications": evil_tag},
        {"Name": f"{name}-long", "Description": "d" * 256},
    ):  # refused before the instance is stopped or copied
        assert error_code(ec2.create_image, InstanceId=source, **refused) == (
            "InvalidParameterValue"
        )
    assert instance(ec2, source)["State"]["Name"] == "running"
    assert not ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "description", "Values": [f"*CreateImage({source})*"]}]
    )["Snapshots"]
    image_id = ec2.create_image(InstanceId=source, Name=name, NoReboot=no_reboot)["ImageId"]
    assert image_id.startswith("emi-")
    assert error_code(ec2.create_image, InstanceId=source, Name=name) == "InvalidAMIName.Duplicate"
    image = _wait_image(ec2, image_id)
    assert image["State"] == "available", image
    assert image["RootDeviceType"] == "ebs" and image["Name"] == name
    snapshot_id = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    described = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    assert image_id in described["Description"]
    # the source keeps running (again, after the reboot CreateImage makes by default)
    wait_state(ec2, source, "running", 300)
    if not no_reboot:
        wait_console(ec2, source, f"karri-tiny: instance {source} boot 2")

    copy = launch(ec2, image_id, KeyName="ebs")["InstanceId"]
    wait_console(ec2, copy, "karri-tiny: boot complete")
    address = instance(ec2, copy)["PublicIpAddress"]
    assert ssh(cloud["key"], address, "cat /root/image-marker").strip() == marker

    assert error_code(ec2.delete_snapshot, SnapshotId=snapshot_id) == "InvalidSnapshot.InUse"
    ec2.terminate_instances(InstanceIds=[source, copy])
    for instance_id in (source, copy):
        wait_state(ec2, instance_id, "terminated", 300)
    ec2.deregister_image(ImageId=image_id)
    ec2.delete_snapshot(SnapshotId=snapshot_id)


def test_create_image_errors(cloud: dict[str, Any]) -> None:
    ec2 = cloud["karri"].client("ec2")
    assert error_code(ec2.create_image, InstanceId="i-0badf00d", Name="x-image") == (
        "InvalidInstanceID.NotFound"
    )
    assert error_code(ec2.create_image, InstanceId="bad", Name="x-image") == (
        "InvalidInstanceID.Malformed"
    )
