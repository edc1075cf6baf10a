"""ImportImage of disks made with qemu-img, DescribeImportImageTasks, CancelImportTask."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Creds, Karri


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


def upload(karri: Karri, creds: Creds, path: Path) -> tuple[str, str]:
    s3 = karri.client("s3", creds)
    bucket = f"import-{creds.account_id}"
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"
    s3.upload_file(str(path), bucket, path.name)
    return bucket, path.name


@pytest.mark.parametrize(("fmt", "declared"), [("qcow2", "QCOW2"), ("vmdk", "VMDK")])
def test_import_reaches_available(
    karri: Karri, other_account: Creds, tmp_path: Path, fmt: str, declared: str
) -> None:
    bucket, key = upload(karri, other_account, make_disk(tmp_path, fmt))
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


def test_import_of_a_disk_in_the_wrong_format_fails(
    karri: Karri, other_account: Creds, tmp_path: Path
) -> None:
    bucket, key = upload(karri, other_account, make_disk(tmp_path, "qcow2"))
    ec2 = karri.client("ec2", other_account)
    before = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    started = ec2.import_image(DiskContainers=[{"Format": "VMDK", "Url": f"s3://{bucket}/{key}"}])
    task = wait_task(ec2, started["ImportTaskId"])
    assert task["Status"] == "deleted" and "ClientError" in task["StatusMessage"]
    assert {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]} == before


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
