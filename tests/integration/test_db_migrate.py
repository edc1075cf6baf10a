"""`karri db migrate-to`: a stopped single-host (SQLite) cloud moves onto PostgreSQL whole."""

from __future__ import annotations

import subprocess
from pathlib import Path

from karri.config import save_settings, saved_db_url, sqlite_url
from tests import postgres
from tests.conftest import KARRI, start_karri, stop_karri
from tests.integration.ebs import new_volume, wait_snapshot, wait_volume

FAKE = ("--node-driver", "fake", "--no-default-images")
BODIES = {"small": b"hello", "empty": b"", "big": bytes(range(256)) * 4096}


def migrate(data_dir: Path, url: str) -> subprocess.CompletedProcess:
    command = [KARRI, "db", "migrate-to", url, "--data-dir", str(data_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_a_stopped_cloud_moves_to_postgresql(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    save_settings(data_dir, db_url=sqlite_url(data_dir))  # SQLite whatever KARRI_TEST_DB says
    target = postgres.cluster().new_database()
    karri = start_karri(data_dir, *FAKE)
    try:
        refused = migrate(data_dir, target)  # not while it runs
        assert refused.returncode == 1 and "stop it" in refused.stdout, refused.stdout
        account = karri.create_account("mover")
        ec2, s3 = karri.client("ec2", account), karri.client("s3", account)
        volume_id = new_volume(ec2, size=2)
        snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
        wait_snapshot(ec2, snapshot_id)
        image_id = ec2.register_image(
            Name="moved",
            RootDeviceName="/dev/sda1",
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snapshot_id}}],
        )["ImageId"]
        ec2.create_tags(Resources=[volume_id], Tags=[{"Key": "k", "Value": "v"}])
        s3.create_bucket(Bucket="moving-bucket")
        for key, body in BODIES.items():
            s3.put_object(Bucket="moving-bucket", Key=key, Body=body, Metadata={"m": key})
        before = {
            "volumes": ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"],
            "snapshots": ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"],
            "images": ec2.describe_images(ImageIds=[image_id])["Images"],
            "objects": s3.list_objects_v2(Bucket="moving-bucket")["Contents"],
        }
    finally:
        stop_karri(karri)

    moved = migrate(data_dir, target)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert saved_db_url(data_dir) == target
    (tmp_path / "elsewhere").mkdir()
    again = migrate(data_dir, sqlite_url(tmp_path / "elsewhere"))  # and back, to SQLite
    assert again.returncode == 0, again.stdout + again.stderr
    save_settings(data_dir, db_url=target)
    refused = migrate(data_dir, sqlite_url(tmp_path / "elsewhere"))
    assert refused.returncode == 1 and "not empty" in refused.stdout, refused.stdout

    karri = start_karri(data_dir, *FAKE)
    try:
        ec2, s3 = karri.client("ec2", account), karri.client("s3", account)  # same keys
        after = {
            "volumes": ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"],
            "snapshots": ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"],
            "images": ec2.describe_images(ImageIds=[image_id])["Images"],
            "objects": s3.list_objects_v2(Bucket="moving-bucket")["Contents"],
        }
        assert after == before
        for key, body in BODIES.items():
            got = s3.get_object(Bucket="moving-bucket", Key=key)
            assert got["Body"].read() == body and got["Metadata"] == {"m": key}
        s3.put_object(Bucket="moving-bucket", Key="new", Body=b"after")  # fresh keys work
        assert s3.get_object(Bucket="moving-bucket", Key="new")["Body"].read() == b"after"
        wait_volume(ec2, new_volume(ec2))
        status = karri.cli("status", "--json").stdout
        assert '"accounts": 2' in status
    finally:
        stop_karri(karri)
