"""EBS-backed launches on Ceph RBD copy nothing: with ``karri up --ebs-backend rbd`` (and
the fake node driver: no guest boots), ten instances of the default karri-tiny-ebs image
each get a root volume that is an RBD clone of the image's snapshot, which holds no data
of its own; terminating them removes the clones and leaves the snapshot. A CreateImage
of one is an RBD snapshot of its root, and a launch of that image a clone again. Launches
from an encrypted snapshot get encrypted roots (qcow2 with LUKS in the image) that are
clones of its kept checkpoint too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import stop_karri
from tests.integration.ebs import wait_snapshot, wait_until
from tests.integration.guests import available_image, instance, wait_state
from tests.integration.rbd import images, info, keyed_spec, qemu_io, rbd, spec, start_rbd_karri
from tests.integration.test_ebs_encryption import passphrase
from tests.qemu_keys import run_keyed

LAUNCHES = 10


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("ebs-rbd-launch")
    karri, pool = start_rbd_karri(base / "data", "--node-driver", "fake")
    try:
        image = available_image(karri.client("ec2"), "karri-tiny-ebs", 900)
        yield {"karri": karri, "pool": pool, "image": image}
    finally:
        stop_karri(karri)


def used_bytes(pool: str, image: str) -> int:
    """What the image itself holds (``rbd du``, without its parent's)."""
    listed = json.loads(rbd("du", "--format", "json", f"{pool}/{image}"))["images"]
    return sum(entry["used_size"] for entry in listed if "snapshot" not in entry)


def root_volume(ec2: Any, instance_id: str) -> str:
    mappings = instance(ec2, instance_id)["BlockDeviceMappings"]
    return next(m["Ebs"]["VolumeId"] for m in mappings if m["DeviceName"] == "/dev/sda1")


def test_ten_launches_clone_the_image_snapshot(cloud: dict[str, Any]) -> None:
    ec2 = cloud["karri"].client("ec2")
    pool = cloud["pool"]
    image = cloud["image"]
    snapshot_id = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert snapshot_id in images(pool)  # the default image's disk: an image of its own
    run = ec2.run_instances(
        ImageId=image["ImageId"], MinCount=LAUNCHES, MaxCount=LAUNCHES, InstanceType="t1.micro"
    )
    ids = [i["InstanceId"] for i in run["Instances"]]
    for instance_id in ids:
        wait_state(ec2, instance_id, "running", 300)
    roots = [root_volume(ec2, instance_id) for instance_id in ids]
    for volume_id in roots:
        parent = info(pool, volume_id)["parent"]
        assert (parent["image"], parent["snapshot"]) == (snapshot_id, snapshot_id)
        assert used_bytes(pool, volume_id) == 0  # nothing was copied into it
    # the guest's writes go to its clone only
    qemu_io(pool, roots[0], "write -P 0x33 0 4096")
    assert used_bytes(pool, roots[0]) > 0 and used_bytes(pool, roots[1]) == 0

    # CreateImage of one: an RBD snapshot of its root; its launches clone that one
    created = ec2.create_image(InstanceId=ids[0], Name="from-rbd", NoReboot=True)["ImageId"]
    new_image = available_image(ec2, "from-rbd", 300)
    assert new_image["ImageId"] == created
    new_snapshot = new_image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert wait_snapshot(ec2, new_snapshot)["State"] == "completed"
    again = ec2.run_instances(ImageId=created, MinCount=1, MaxCount=1, InstanceType="t1.micro")
    launched = again["Instances"][0]["InstanceId"]
    wait_state(ec2, launched, "running", 300)
    parent = info(pool, root_volume(ec2, launched))["parent"]
    assert (parent["image"], parent["snapshot"]) == (roots[0], new_snapshot)

    ec2.terminate_instances(InstanceIds=[*ids, launched])
    for instance_id in [*ids, launched]:
        wait_state(ec2, instance_id, "terminated", 300)
    # the roots went (the first kept as gone.: the new image's snapshot still needs it)
    wait_until(lambda: [i for i in images(pool) if i.startswith("vol-")] == [], 120, 0.5)
    assert snapshot_id in images(pool) and f"gone.{roots[0]}" in images(pool)


def test_launches_from_an_encrypted_snapshot_clone_an_encrypted_root(
    cloud: dict[str, Any],
) -> None:
    """An image whose root snapshot is an encrypted copy of the default image's: each
    launch's root is an encrypted volume that is a clone of the copy's kept checkpoint
    (nothing of its own: the same ciphertext) holding the default image's disk, as its
    guest reads it with the account's key."""
    karri = cloud["karri"]
    ec2 = karri.client("ec2")
    pool = cloud["pool"]
    plain = cloud["image"]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    copy_id = ec2.copy_snapshot(SourceSnapshotId=plain, SourceRegion=karri.region, Encrypted=True)[
        "SnapshotId"
    ]
    assert wait_snapshot(ec2, copy_id)["Encrypted"] is True
    image_id = ec2.register_image(
        Name="encrypted-root",
        Architecture="x86_64",
        RootDeviceName="/dev/sda1",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": copy_id}}],
    )["ImageId"]
    run = ec2.run_instances(ImageId=image_id, MinCount=3, MaxCount=3, InstanceType="t1.micro")
    ids = [i["InstanceId"] for i in run["Instances"]]
    for launched in ids:
        wait_state(ec2, launched, "running", 300)
    roots = [root_volume(ec2, launched) for launched in ids]
    for root in roots:
        assert ec2.describe_volumes(VolumeIds=[root])["Volumes"][0]["Encrypted"] is True
        parent = info(pool, root)["parent"]
        assert (parent["image"], parent["snapshot"]) == (copy_id, copy_id)
        assert used_bytes(pool, root) == 0  # nothing was copied into it
    key = passphrase(
        karri, ec2.describe_snapshots(SnapshotIds=[copy_id])["Snapshots"][0]["OwnerId"]
    )
    original = spec(pool, f"{plain}@{plain}")  # the default image's disk
    run_keyed(["qemu-img", "compare", "-F", "raw", keyed_spec(pool, roots[0]), original], key)
    ec2.terminate_instances(InstanceIds=ids)
    for launched in ids:
        wait_state(ec2, launched, "terminated", 300)
    ec2.deregister_image(ImageId=image_id)
    ec2.delete_snapshot(SnapshotId=copy_id)
    wait_until(lambda: not set(roots) & set(images(pool)), 120, 0.5)
    wait_until(lambda: copy_id not in images(pool), 120, 0.5)  # its checkpoint went too
