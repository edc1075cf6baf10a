"""EBS volumes in real QEMU guests of the default image: hot-plug with the volume id as the
disk's serial, a marker written by one guest read by another, consistent snapshots of a
volume in use, volumes that outlive their instance, SIGKILL during an attach, an
encrypted volume whose file never holds what the guest wrote and whose unwritten blocks
read as zeros (new, restored, grown), and the attach/detach errors AWS gives."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Karri, start_karri
from tests.integration.ebs import (
    ZONE,
    error_code,
    new_volume,
    volume,
    volume_file,
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
    tiny_image,
    wait_console,
    wait_state,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")

# The guest's disk whose serial is the volume id (prints its /dev name, or nothing).
FIND = (
    'for d in /sys/block/vd*; do [ "$(cat $d/serial 2>/dev/null)" = "{vol}" ] '
    "&& echo /dev/${{d##*/}}; done; true"
)


def disk_of(cloud: dict[str, Any], instance_id: str, volume_id: str) -> str:
    ec2 = cloud["karri"].client("ec2")
    address = instance(ec2, instance_id)["PublicIpAddress"]
    return ssh(cloud["key"], address, FIND.format(vol=volume_id)).strip()


def in_guest(cloud: dict[str, Any], instance_id: str, command: str) -> str:
    ec2 = cloud["karri"].client("ec2")
    return ssh(cloud["key"], instance(ec2, instance_id)["PublicIpAddress"], command)


def nonzero_bytes(cloud: dict[str, Any], instance_id: str, device: str, skip_mib: int) -> int:
    """How many bytes are not zero in 4 MiB of the guest's ``device`` after ``skip_mib``."""
    command = f"dd if={device} bs=1M skip={skip_mib} count=4 2>/dev/null | tr -d '\\000' | wc -c"
    return int(in_guest(cloud, instance_id, command).strip())


def attachment_state(ec2: Any, volume_id: str) -> str:
    attachments = volume(ec2, volume_id)["Attachments"]
    return attachments[0]["State"] if attachments else "detached"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("ebs-guests")
    karri = start_karri(base / "data", "--stop-instances-on-exit")
    state: dict[str, Any] = {"karri": karri, "base": base}
    try:
        ec2 = karri.client("ec2")
        image_id = tiny_image(karri, ec2)
        key = key_file(ec2, base, "ebs")
        open_port(ec2, 22)  # ssh from the host
        reservation = ec2.run_instances(
            ImageId=image_id, MinCount=2, MaxCount=2, InstanceType="t1.micro", KeyName="ebs"
        )
        ids = [i["InstanceId"] for i in reservation["Instances"]]
        for instance_id in ids:
            wait_state(ec2, instance_id, "running", 300)
            wait_console(ec2, instance_id, "karri-tiny: boot complete")
        state.update(ids=ids, key=key, image_id=image_id)
        yield state
    finally:
        end_cloud(state["karri"])


def test_marker_travels_between_guests(cloud: dict[str, Any]) -> None:
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    first, second = cloud["ids"]
    volume_id = new_volume(ec2)
    answer = ec2.attach_volume(VolumeId=volume_id, InstanceId=first, Device="/dev/sdf")
    assert answer["State"] == "attaching" and answer["Device"] == "/dev/sdf"
    wait_until(lambda: attachment_state(ec2, volume_id) == "attached", 120)
    described = volume(ec2, volume_id)
    assert described["State"] == "in-use"
    assert described["Attachments"][0]["InstanceId"] == first
    assert described["Attachments"][0]["DeleteOnTermination"] is False
    listed = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [first]}])[
        "Volumes"
    ]
    assert [v["VolumeId"] for v in listed] == [volume_id]

    device = wait_until(lambda: disk_of(cloud, first, volume_id), 60, 1)
    in_guest(cloud, first, f"printf 'EBS-MARKER-{volume_id}' > {device}; sync")

    # a snapshot of the volume in use holds what the guest wrote
    snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    assert wait_snapshot(ec2, snap_id)["State"] == "completed"
    copy = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, copy)
    with open(volume_file(karri, copy), "rb") as f:
        assert f.read(len(f"EBS-MARKER-{volume_id}")) == f"EBS-MARKER-{volume_id}".encode()

    detached = ec2.detach_volume(VolumeId=volume_id)
    assert detached["State"] == "detaching" and detached["InstanceId"] == first
    wait_volume(ec2, volume_id, "available")
    assert disk_of(cloud, first, volume_id) == ""

    ec2.attach_volume(VolumeId=volume_id, InstanceId=second, Device="/dev/sdg")
    wait_until(lambda: attachment_state(ec2, volume_id) == "attached", 120)
    device = wait_until(lambda: disk_of(cloud, second, volume_id), 60, 1)
    marker = in_guest(cloud, second, f"head -c {len(f'EBS-MARKER-{volume_id}')} {device}")
    assert marker == f"EBS-MARKER-{volume_id}"
    cloud["shared_volume"] = volume_id


def test_attach_errors(cloud: dict[str, Any]) -> None:
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    first, second = cloud["ids"]
    attached = cloud["shared_volume"]  # attached to the second instance at /dev/sdg
    spare = new_volume(ec2)
    attach = ec2.attach_volume
    assert error_code(attach, VolumeId=attached, InstanceId=first, Device="/dev/sdh") == (
        "VolumeInUse"
    )
    assert error_code(attach, VolumeId=spare, InstanceId=second, Device="/dev/sdg") == (
        "InvalidParameterValue"
    )
    assert error_code(attach, VolumeId=spare, InstanceId=second, Device="/dev/sda1") == (
        "InvalidParameterValue"
    )
    assert error_code(ec2.delete_volume, VolumeId=attached) == "VolumeInUse"
    assert error_code(ec2.detach_volume, VolumeId=attached, InstanceId=first) == (
        "InvalidAttachment.NotFound"
    )

    other = karri.create_account("ebs-guests-b")
    theirs = karri.client("ec2", other)
    their_volume = new_volume(theirs)
    assert (
        error_code(theirs.attach_volume, VolumeId=spare, InstanceId=first, Device="/dev/sdh")
        == "InvalidVolume.NotFound"
    )
    assert (
        error_code(theirs.attach_volume, VolumeId=their_volume, InstanceId=first, Device="/dev/sdh")
        == "InvalidInstanceID.NotFound"
    )
    assert error_code(theirs.detach_volume, VolumeId=attached) == "InvalidVolume.NotFound"
    assert error_code(theirs.create_snapshot, VolumeId=attached) == "InvalidVolume.NotFound"
    assert volume(ec2, spare)["State"] == "available"
    ec2.delete_volume(VolumeId=spare)


def test_sigkill_during_attach(cloud: dict[str, Any]) -> None:
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    first = cloud["ids"][0]
    volume_id = new_volume(ec2)
    ec2.attach_volume(VolumeId=volume_id, InstanceId=first, Device="/dev/sdi")
    karri.process.kill()
    karri.process.wait()
    karri = cloud["karri"] = start_karri(karri.data_dir, "--stop-instances-on-exit")
    ec2 = karri.client("ec2")
    assert wait_state(ec2, first, "running", 300)
    wait_until(lambda: attachment_state(ec2, volume_id) == "attached", 120)
    assert wait_until(lambda: disk_of(cloud, first, volume_id), 60, 1).startswith("/dev/vd")
    assert volume_file(karri, volume_id).exists()
    cloud["killed_volume"] = volume_id


def test_encrypted_volume_holds_no_plaintext(cloud: dict[str, Any]) -> None:
    """An encrypted volume hot-plugged with its account's key reads zeros where nothing
    was written, as a new EBS volume does; what the guest writes is not in the file, nor
    in the snapshot taken while it is in use; the volume restored from that snapshot reads
    it back in another guest, zeros beyond it, and grows in use."""
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    first, second = cloud["ids"]
    volume_id = new_volume(ec2, Encrypted=True)
    ec2.attach_volume(VolumeId=volume_id, InstanceId=first, Device="/dev/sdj")
    wait_until(lambda: attachment_state(ec2, volume_id) == "attached", 120)
    marker = f"ENCRYPTED-MARKER-{volume_id}"
    device = wait_until(lambda: disk_of(cloud, first, volume_id), 60, 1)
    assert nonzero_bytes(cloud, first, device, 0) == 0
    assert nonzero_bytes(cloud, first, device, 1020) == 0  # its last 4 MiB
    in_guest(cloud, first, f"printf '{marker}' > {device}; sync")
    assert nonzero_bytes(cloud, first, device, 0) == len(marker)  # the count counts

    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]  # a backup job
    snapshot = wait_snapshot(ec2, snapshot_id)
    assert (snapshot["State"], snapshot["Encrypted"]) == ("completed", True), snapshot
    ec2.detach_volume(VolumeId=volume_id)
    wait_volume(ec2, volume_id, "available")
    files = karri.data_dir / "volumes"
    assert (files / f"{volume_id}.qcow2").read_bytes()[:4] == b"QFI\xfb"
    assert marker.encode() not in (files / f"{volume_id}.qcow2").read_bytes()

    restored = ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, restored)
    assert volume(ec2, restored)["Encrypted"] is True
    assert marker.encode() not in (files / f"{restored}.qcow2").read_bytes()
    ec2.attach_volume(VolumeId=restored, InstanceId=second, Device="/dev/sdj")
    wait_until(lambda: attachment_state(ec2, restored) == "attached", 120)
    device = wait_until(lambda: disk_of(cloud, second, restored), 60, 1)
    assert in_guest(cloud, second, f"head -c {len(marker)} {device}") == marker
    # beyond the marker, as on the volume it was taken from: zeros
    assert nonzero_bytes(cloud, second, device, 0) == len(marker)
    assert nonzero_bytes(cloud, second, device, 4) == 0
    ec2.modify_volume(VolumeId=restored, Size=2)  # grown in use: QEMU grows the qcow2 file
    sectors = f"cat /sys/block/{device.removeprefix('/dev/')}/size"
    wait_until(lambda: int(in_guest(cloud, second, sectors)) * 512 == 2 << 30, 180, 2)
    assert nonzero_bytes(cloud, second, device, 2044) == 0  # the new part reads zeros
    assert in_guest(cloud, second, f"head -c {len(marker)} {device}") == marker
    ec2.detach_volume(VolumeId=restored)
    wait_volume(ec2, restored, "available")
    for volume_id_ in (volume_id, restored):
        ec2.delete_volume(VolumeId=volume_id_)
    cloud["encrypted_snapshot"] = (snapshot_id, marker)


def test_encrypted_volumes_open_at_boot(cloud: dict[str, Any]) -> None:
    """An EBS-backed guest whose root is encrypted (from the image's plain snapshot) and
    with a volume restored from an encrypted snapshot boots with them opened (the node
    hands QEMU the key in a file, not on its command line) and reads what was written;
    stopped, it takes another encrypted volume and starts again with them all."""
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    snapshot_id, marker = cloud["encrypted_snapshot"]
    image = available_image(ec2, "karri-tiny-ebs", 900)
    mappings = [
        {"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": snapshot_id}},
        {"DeviceName": image["RootDeviceName"], "Ebs": {"Encrypted": True}},  # from a plain one
    ]
    instance_id = ec2.run_instances(
        ImageId=image["ImageId"],
        MinCount=1,
        MaxCount=1,
        KeyName="ebs",
        BlockDeviceMappings=mappings,
    )["Instances"][0]["InstanceId"]
    try:
        wait_state(ec2, instance_id, "running", 300)
        wait_console(ec2, instance_id, "karri-tiny: boot complete")
        booted = instance(ec2, instance_id)["BlockDeviceMappings"]
        volumes = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in booted}
        root_id, volume_id = volumes[image["RootDeviceName"]], volumes["/dev/sdf"]
        assert all(volume(ec2, v)["Encrypted"] for v in (root_id, volume_id))
        files = karri.data_dir / "volumes"
        for volume_id_ in (root_id, volume_id):
            assert (files / f"{volume_id_}.qcow2").read_bytes()[:4] == b"QFI\xfb"
        device = wait_until(lambda: disk_of(cloud, instance_id, volume_id), 60, 1)
        assert in_guest(cloud, instance_id, f"head -c {len(marker)} {device}") == marker

        ec2.stop_instances(InstanceIds=[instance_id])
        wait_state(ec2, instance_id, "stopped", 300)
        extra = new_volume(ec2, Encrypted=True)
        ec2.attach_volume(VolumeId=extra, InstanceId=instance_id, Device="/dev/sdg")
        wait_until(lambda: attachment_state(ec2, extra) == "attached", 120)
        ec2.start_instances(InstanceIds=[instance_id])
        wait_state(ec2, instance_id, "running", 300)
        wait_console(ec2, instance_id, "karri-tiny: boot complete")
        device = wait_until(lambda: disk_of(cloud, instance_id, volume_id), 60, 1)
        assert in_guest(cloud, instance_id, f"head -c {len(marker)} {device}") == marker
        extra_device = wait_until(lambda: disk_of(cloud, instance_id, extra), 60, 1)
        assert extra_device.startswith("/dev/vd")
        assert nonzero_bytes(cloud, instance_id, extra_device, 0) == 0  # opened at boot: zeros
        secrets = karri.data_dir / "node" / "instances" / instance_id / "secrets"
        assert not secrets.exists()  # QEMU read them at its start: gone since
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
        wait_state(ec2, instance_id, "terminated", 300)


def test_volumes_outlive_their_instance(cloud: dict[str, Any]) -> None:
    ec2 = cloud["karri"].client("ec2")
    second = cloud["ids"][1]
    volume_id = cloud["shared_volume"]
    ec2.terminate_instances(InstanceIds=[second])
    wait_state(ec2, second, "terminated", 300)
    wait_volume(ec2, volume_id, "available")
    assert volume(ec2, volume_id)["Attachments"] == []
