"""ImportImage of disks made with qemu-img into EBS-backed EMIs, DescribeImportImageTasks,
CancelImportTask, and a guest booted from an imported image."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from karri.node.guestimage import ensure_built
from tests.conftest import Creds, Karri
from tests.integration.guests import tiny_image, wait_console, wait_state


def make_disk(tmp_path: Path, fmt: str, size: str = "64M") -> Path:
    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "create", "-f", "raw", str(raw), size], check=True)
    with open(raw, "r+b") as handle:
        handle.write(b"karri-import-marker" * 100)
    out = tmp_path / f"disk.{fmt}"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, str(raw), str(out)], check=True)
    return out


def wait_task(ec2: Any, task_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = ec2.describe_import_image_tasks(ImportTaskIds=[task_id])["ImportImageTasks"][0]
        if task["Status"] not in ("active", "deleting") or time.monotonic() > deadline:
            return task
        time.sleep(0.3)


def upload(karri: Karri, creds: Creds, path: Path, *, multipart: bool = False) -> tuple[str, str]:
    """Put a disk in a bucket of ``creds``; ``multipart`` as `aws s3 cp` does for big files."""
    s3 = karri.client("s3", creds)
    bucket = f"import-{creds.account_id}"
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"
    config = TransferConfig(multipart_threshold=1 if multipart else 1 << 30)
    s3.upload_file(str(path), bucket, path.name, Config=config)
    return bucket, path.name


@pytest.mark.parametrize(
    ("fmt", "declared", "multipart"), [("qcow2", "QCOW2", False), ("vmdk", "VMDK", True)]
)
def test_import_reaches_available(
    karri: Karri, other_account: Creds, tmp_path: Path, fmt: str, declared: str, multipart: bool
) -> None:
    bucket, key = upload(karri, other_account, make_disk(tmp_path, fmt), multipart=multipart)
    ec2 = karri.client("ec2", other_account)
    started = ec2.import_image(
        Description=f"a {fmt} disk",
        DiskContainers=[{"Format": declared, "UserBucket": {"S3Bucket": bucket, "S3Key": key}}],
    )
    assert started["Status"] == "active"
    task = wait_task(ec2, started["ImportTaskId"])
    assert task["Status"] == "completed", task
    image = ec2.describe_images(ImageIds=[task["ImageId"]])["Images"][0]
    assert image["State"] == "available" and image["ImageType"] == "machine"
    assert image["OwnerId"] == other_account.account_id
    check_ebs_backed(ec2, task, image, declared)


def check_ebs_backed(ec2: Any, task: dict[str, Any], image: dict[str, Any], fmt: str) -> str:
    """The image's root device is a volume from a completed snapshot of the importer's,
    which the task reports as AWS does; the snapshot's id."""
    assert image["RootDeviceType"] == "ebs" and image["RootDeviceName"] == "/dev/sda1"
    (root,) = [m for m in image["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sda1"]
    snapshot_id = root["Ebs"]["SnapshotId"]
    (detail,) = task["SnapshotDetails"]
    assert detail["SnapshotId"] == snapshot_id and detail["Format"] == fmt
    assert detail["Status"] == "completed" and detail["DiskImageSize"] > 0
    snapshot = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    assert snapshot["State"] == "completed"
    assert snapshot["OwnerId"] == image["OwnerId"]
    assert snapshot["VolumeSize"] == root["Ebs"]["VolumeSize"]
    with pytest.raises(ClientError) as caught:  # the image keeps it
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    assert caught.value.response["Error"]["Code"] == "InvalidSnapshot.InUse"
    return snapshot_id


def test_import_of_a_disk_in_the_wrong_format_fails(
    karri: Karri, other_account: Creds, tmp_path: Path
) -> None:
    bucket, key = upload(karri, other_account, make_disk(tmp_path, "qcow2"))
    ec2 = karri.client("ec2", other_account)
    before = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    started = ec2.import_image(DiskContainers=[{"Format": "VMDK", "Url": f"s3://{bucket}/{key}"}])
    task = wait_task(ec2, started["ImportTaskId"])
    assert task["Status"] == "deleted" and "ClientError" in task["StatusMessage"]
    assert "/proc/" not in task["StatusMessage"], task["StatusMessage"]
    assert {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]} == before


HOST_SECRET = b"karri-host-secret" * 64


def disk_naming_a_host_file(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A disk whose conversion would read ``secret``, a file of karri's host."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * (1 << 20))
    disk = tmp_path / f"{kind}.img"
    if kind == "backing":
        options = ["-b", str(secret), "-F", "raw"]
    else:  # creating the qcow2 writes its data file: the secret is written after
        options = ["-o", f"data_file={secret},data_file_raw=on"]
    if kind == "vmdk-extent":
        disk.write_text(
            "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"
            'createType="monolithicFlat"\n'
            f'RW 2048 FLAT "{secret}" 0\n'
        )
    else:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", *options, str(disk), "1M"])
    secret.write_bytes(HOST_SECRET.ljust(1 << 20, b"\0"))
    return disk, "VMDK" if kind == "vmdk-extent" else "QCOW2"


@pytest.mark.parametrize("kind", ["backing", "data-file", "vmdk-extent"])
def test_a_disk_naming_host_files_is_refused(
    karri: Karri, other_account: Creds, tmp_path: Path, kind: str
) -> None:
    """qemu-img follows a backing file, a qcow2 external data file or VMDK extents to any
    path: the import would copy a file of karri's host into the importer's image."""
    disk, declared = disk_naming_a_host_file(tmp_path, kind)
    bucket, key = upload(karri, other_account, disk)
    ec2 = karri.client("ec2", other_account)
    before = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    started = ec2.import_image(DiskContainers=[{"Format": declared, "Url": f"s3://{bucket}/{key}"}])
    task = wait_task(ec2, started["ImportTaskId"])
    assert task["Status"] == "deleted", task
    assert "Disk validation failed" in task["StatusMessage"]
    assert {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]} == before


def test_a_client_token_starts_one_task(karri: Karri, other_account: Creds, tmp_path: Path) -> None:
    bucket, key = upload(karri, other_account, make_disk(tmp_path, "qcow2", "8M"))
    ec2 = karri.client("ec2", other_account)
    container = {"Format": "QCOW2", "Url": f"s3://{bucket}/{key}"}
    token = f"import-{time.time()}"
    first = ec2.import_image(DiskContainers=[container], ClientToken=token)["ImportTaskId"]
    again = ec2.import_image(DiskContainers=[container], ClientToken=token)["ImportTaskId"]
    assert again == first
    with pytest.raises(ClientError) as caught:
        ec2.import_image(DiskContainers=[{**container, "Format": "RAW"}], ClientToken=token)
    assert caught.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
    assert wait_task(ec2, first)["Status"] == "completed"


def test_import_needs_a_readable_object(karri: Karri, other_account: Creds) -> None:
    ec2 = karri.client("ec2", other_account)
    with pytest.raises(ClientError) as caught:
        ec2.import_image(DiskContainers=[{"Format": "RAW", "Url": "s3://nobody/nothing.raw"}])
    assert caught.value.response["Error"]["Code"] == "InvalidParameter"


def test_cancel_import_task(karri: Karri, other_account: Creds, tmp_path: Path) -> None:
    bucket, key = upload(karri, other_account, make_disk(tmp_path, "qcow2", "256M"))
    ec2 = karri.client("ec2", other_account)
    started = ec2.import_image(
        DiskContainers=[{"Format": "QCOW2", "UserBucket": {"S3Bucket": bucket, "S3Key": key}}]
    )
    task_id = started["ImportTaskId"]
    try:
        cancelled = ec2.cancel_import_task(ImportTaskId=task_id)
    except ClientError as error:  # it may have finished already on a fast machine
        assert error.response["Error"]["Code"] == "IncorrectState"
        return
    assert cancelled["State"] == "deleting"
    task = wait_task(ec2, task_id)
    assert task["Status"] == "deleted"
    assert not task.get("ImageId")
    assert not task["SnapshotDetails"][0].get("SnapshotId")
    assert not ec2.describe_images(Owners=["self"])["Images"]
    live = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert all(s["State"] != "completed" for s in live)  # none left (or one being deleted)


def test_cancel_once_the_image_is_registered(
    karri: Karri, other_account: Creds, tmp_path: Path
) -> None:
    """Cancelled while its snapshot uploads: the pending image and the snapshot go."""
    raw = tmp_path / "disk.raw"
    raw.write_bytes(os.urandom(384 << 20))  # incompressible, so the upload takes a while
    disk = tmp_path / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(disk)], check=True
    )
    s3 = karri.client("s3", other_account)
    bucket = f"late-{other_account.account_id}"
    s3.create_bucket(Bucket=bucket)
    with open(disk, "rb") as body:  # one part: ImportImage cannot read multipart objects
        s3.put_object(Bucket=bucket, Key=disk.name, Body=body)
    ec2 = karri.client("ec2", other_account)
    task_id = ec2.import_image(
        DiskContainers=[{"Format": "QCOW2", "Url": f"s3://{bucket}/{disk.name}"}]
    )["ImportTaskId"]
    deadline = time.monotonic() + 180
    while True:
        task = ec2.describe_import_image_tasks(ImportTaskIds=[task_id])["ImportImageTasks"][0]
        if task.get("ImageId") or task["Status"] != "active" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert task["Status"] == "active" and task["ImageId"], task
    image_id = task["ImageId"]
    snapshot_id = task["SnapshotDetails"][0]["SnapshotId"]
    try:
        ec2.cancel_import_task(ImportTaskId=task_id)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "IncorrectState"
        pytest.skip("the snapshot completed before the import could be cancelled")
    task = wait_task(ec2, task_id)
    assert task["Status"] == "deleted" and task["StatusMessage"] == "User requested cancel"
    assert not task.get("ImageId")
    for call, ids in (
        (ec2.describe_images, {"ImageIds": [image_id]}),
        (ec2.describe_snapshots, {"SnapshotIds": [snapshot_id]}),
    ):
        with pytest.raises(ClientError) as caught:
            call(**ids)
        assert caught.value.response["Error"]["Code"].endswith("NotFound")


@pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")
def test_launch_an_imported_image(karri: Karri, other_account: Creds, tmp_path: Path) -> None:
    """The default image's root file system, imported as a qcow2, boots with the default
    kernel and ramdisk from a volume of the import's snapshot."""
    rootfs = ensure_built() / "rootfs.img"
    disk = tmp_path / "tiny-root.qcow2"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(rootfs), str(disk)], check=True
    )
    bucket, key = upload(karri, other_account, disk)
    ec2 = karri.client("ec2", other_account)
    started = ec2.import_image(
        DiskContainers=[{"Format": "QCOW2", "UserBucket": {"S3Bucket": bucket, "S3Key": key}}]
    )
    task = wait_task(ec2, started["ImportTaskId"])
    assert task["Status"] == "completed", task
    image = ec2.describe_images(ImageIds=[task["ImageId"]])["Images"][0]
    check_ebs_backed(ec2, task, image, "QCOW2")
    tiny = ec2.describe_images(ImageIds=[tiny_image(karri, ec2)])["Images"][0]
    run = ec2.run_instances(
        ImageId=image["ImageId"],
        KernelId=tiny["KernelId"],
        RamdiskId=tiny["RamdiskId"],
        MinCount=1,
        MaxCount=1,
        InstanceType="t1.micro",
    )
    instance_id = run["Instances"][0]["InstanceId"]
    try:
        assert run["Instances"][0]["RootDeviceType"] == "ebs"
        wait_state(ec2, instance_id, "running", 300)
        wait_console(ec2, instance_id, f"karri-tiny: instance {instance_id} boot 1")
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
        wait_state(ec2, instance_id, "terminated", 300)
