"""EBS on Ceph RBD in a real QEMU guest (TCG) of ``karri up --ebs-backend rbd``: the
guest boots from a root volume that is an RBD clone of karri-tiny-ebs's snapshot (QEMU,
in the host's network namespace with its tap passed in, opens it with its rbd driver), a
hot-plugged RBD volume takes a marker, a snapshot of it in use holds the marker, a clone
of that snapshot plugged into the same guest reads it back, and ModifyVolume grows a
plugged-in volume as the guest sees it; the same for an encrypted volume (qcow2 with LUKS
over rbd, no write cache in the guest's disk)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Karri
from tests.integration.ebs import (
    GIB,
    ZONE,
    new_volume,
    volume,
    wait_snapshot,
    wait_until,
    wait_volume,
)
from tests.integration.guests import (
    available_image,
    end_cloud,
    instance,
    key_file,
    open_port,
    ssh,
    wait_console,
    wait_state,
)
from tests.integration.rbd import info, keyed_io, spec, start_rbd_karri
from tests.integration.test_ebs_encryption import passphrase
from tests.integration.test_ebs_guests import FIND

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("ebs-rbd-guests")
    karri, pool = start_rbd_karri(base / "data", "--stop-instances-on-exit")
    state: dict[str, Any] = {"karri": karri, "pool": pool}
    try:
        ec2 = karri.client("ec2")
        key = key_file(ec2, base, "rbd")
        open_port(ec2, 22)
        image = available_image(ec2, "karri-tiny-ebs", 900)
        run = ec2.run_instances(
            ImageId=image["ImageId"], MinCount=1, MaxCount=1, InstanceType="t1.micro", KeyName="rbd"
        )
        instance_id = run["Instances"][0]["InstanceId"]
        wait_state(ec2, instance_id, "running", 300)
        wait_console(ec2, instance_id, "karri-tiny: boot complete")
        state.update(key=key, image=image, instance_id=instance_id)
        yield state
    finally:
        end_cloud(state["karri"])


def in_guest(cloud: dict[str, Any], command: str) -> str:
    ec2 = cloud["karri"].client("ec2")
    address = instance(ec2, cloud["instance_id"])["PublicIpAddress"]
    return ssh(cloud["key"], address, command)


def attach(cloud: dict[str, Any], volume_id: str, device: str) -> str:
    """Attach and wait until the guest sees it: its /dev name."""
    ec2 = cloud["karri"].client("ec2")
    ec2.attach_volume(VolumeId=volume_id, InstanceId=cloud["instance_id"], Device=device)
    wait_volume(ec2, volume_id, "in-use")
    return wait_until(lambda: in_guest(cloud, FIND.format(vol=volume_id)).strip(), 120, 1)


def test_the_root_is_a_clone_of_the_image_snapshot(cloud: dict[str, Any]) -> None:
    ec2 = cloud["karri"].client("ec2")
    mappings = instance(ec2, cloud["instance_id"])["BlockDeviceMappings"]
    root = next(m["Ebs"]["VolumeId"] for m in mappings if m["DeviceName"] == "/dev/sda1")
    snapshot_id = cloud["image"]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert info(cloud["pool"], root)["parent"]["snapshot"] == snapshot_id


def test_a_marker_travels_through_a_snapshot_clone(cloud: dict[str, Any], tmp_path: Path) -> None:
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    volume_id = new_volume(ec2, 1)
    device = attach(cloud, volume_id, "/dev/sdf")
    marker = f"RBD-MARKER-{volume_id}"
    in_guest(cloud, f"printf '{marker}' > {device}; sync")

    snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]  # in use: live
    assert wait_snapshot(ec2, snap_id)["State"] == "completed"
    copy = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, copy)
    head = tmp_path / "head.raw"
    subprocess.run(
        ["qemu-img", "dd", "-f", "raw", "-O", "raw", "bs=4096", "count=1",
         f"if={spec(cloud['pool'], copy)}", f"of={head}"],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert head.read_bytes().startswith(marker.encode())

    copy_device = attach(cloud, copy, "/dev/sdg")
    assert in_guest(cloud, f"head -c {len(marker)} {copy_device}") == marker

    ec2.modify_volume(VolumeId=volume_id, Size=2)
    wait_until(lambda: volume(ec2, volume_id)["Size"] == 2, 120, 1)
    name = device.rsplit("/", 1)[1]
    sectors = lambda: int(in_guest(cloud, f"cat /sys/block/{name}/size").strip())  # noqa: E731
    wait_until(lambda: sectors() * 512 == 2 * GIB, 60, 1)


def test_a_hot_plugged_interface_reaches_the_guest(cloud: dict[str, Any]) -> None:
    """QEMU outside the VPC's namespace gets a hot-plugged card's tap as a descriptor
    (QMP ``getfd``): the guest sees the card and gets its address over it."""
    ec2 = cloud["karri"].client("ec2")
    subnet_id = instance(ec2, cloud["instance_id"])["SubnetId"]
    eni = ec2.create_network_interface(SubnetId=subnet_id)["NetworkInterface"]
    ec2.attach_network_interface(
        NetworkInterfaceId=eni["NetworkInterfaceId"],
        InstanceId=cloud["instance_id"],
        DeviceIndex=1,
    )
    mac = wait_until(
        lambda: in_guest(cloud, "cat /sys/class/net/eth1/address 2>/dev/null; true").strip(),
        120,
        1,
    )
    assert mac == eni["MacAddress"]
    in_guest(cloud, "ip link set eth1 up; udhcpc -i eth1 -n -q -s /etc/udhcpc/default.script")
    address = eni["PrivateIpAddress"]
    assert address in in_guest(cloud, "ip -4 addr show eth1")


def test_an_encrypted_volume_in_the_guest(cloud: dict[str, Any]) -> None:
    """An encrypted RBD volume hot-plugged (qcow2 with LUKS over rbd, the account's key):
    the guest sees a disk without a write cache, writes to it; a snapshot of it in use is
    encrypted and a volume restored from it, plugged into the same guest, reads what was
    written; ModifyVolume grows it as the guest sees it."""
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    volume_id = new_volume(ec2, 1, Encrypted=True)
    device = attach(cloud, volume_id, "/dev/sdh")
    name = device.rsplit("/", 1)[1]
    assert in_guest(cloud, f"cat /sys/block/{name}/queue/write_cache").strip() == "write through"
    in_guest(cloud, f"head -c 65536 /dev/zero | tr '\\000' k > {device}; sync")

    snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]  # in use: live
    taken = wait_snapshot(ec2, snap_id)
    assert (taken["State"], taken["Encrypted"]) == ("completed", True), taken
    copy = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, copy)
    key = passphrase(karri, taken["OwnerId"])
    keyed_io(cloud["pool"], copy, "read -P 0x6b 0 65536", key)
    copy_device = attach(cloud, copy, "/dev/sdi")
    assert in_guest(cloud, f"head -c 8 {copy_device}") == "k" * 8

    ec2.modify_volume(VolumeId=volume_id, Size=2)
    wait_until(lambda: volume(ec2, volume_id)["Size"] == 2, 120, 1)
    sectors = lambda: int(in_guest(cloud, f"cat /sys/block/{name}/size").strip())  # noqa: E731
    wait_until(lambda: sectors() * 512 == 2 * GIB, 60, 1)
