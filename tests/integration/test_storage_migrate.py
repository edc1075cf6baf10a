"""`karri storage migrate --walrus`: a stopped cloud's object bytes move between files and
RADOS (a throwaway Ceph cluster) and back, every object reading the same bytes and ETags;
a migration killed midway leaves a cloud that starts, and a second run finishes it."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest

from karri.config import save_settings, saved_walrus
from tests import ceph
from tests.conftest import start_karri, stop_karri
from tests.integration.migrations import killed_at, migrate

FAKE = ("--node-driver", "fake", "--no-default-images")
BUCKET = "moving-objects"
MIB = 1024 * 1024


def _bodies() -> dict[str, bytes]:
    """Small inline ones, empty, one striped over several RADOS objects."""
    return {
        "small": b"hello",
        "empty": b"",
        "striped": os.urandom(9 * MIB + 123),
        **{f"many/{n}": os.urandom(300 * 1024) for n in range(12)},
    }


def _fill(karri, account) -> dict[str, tuple[bytes, str]]:
    """Objects put with boto3 (one of them multipart): key -> (bytes, ETag)."""
    s3 = karri.client("s3", account)
    s3.create_bucket(Bucket=BUCKET)
    bodies = _bodies()
    for key, body in bodies.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), b"tail"]
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="multipart")["UploadId"]
    done = [
        {"PartNumber": n, "ETag": s3.upload_part(
            Bucket=BUCKET, Key="multipart", UploadId=upload, PartNumber=n, Body=part
        )["ETag"]}
        for n, part in enumerate(parts, 1)
    ]  # fmt: skip
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="multipart", UploadId=upload, MultipartUpload={"Parts": done}
    )
    bodies["multipart"] = b"".join(parts)
    return {
        key: (body, s3.head_object(Bucket=BUCKET, Key=key)["ETag"]) for key, body in bodies.items()
    }


def _check(karri, account, expected: dict[str, tuple[bytes, str]]) -> None:
    s3 = karri.client("s3", account)
    for key, (body, etag) in expected.items():
        got = s3.get_object(Bucket=BUCKET, Key=key)
        data = got["Body"].read()
        assert hashlib.sha256(data).digest() == hashlib.sha256(body).digest(), key
        assert got["ETag"] == etag, key


def _blob_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "walrus" / "blobs").glob("*/*")]


def _pool_objects(pool: str) -> int:
    cluster = ceph.cluster().client()
    try:
        ioctx = cluster.open_ioctx(pool)
        try:
            ioctx.set_namespace("walrus")
            return sum(1 for _ in ioctx.list_objects())
        finally:
            ioctx.close()
    finally:
        cluster.shutdown()


def _files_cloud(tmp_path: Path):
    data_dir = tmp_path / "data"
    save_settings(data_dir, walrus_backend="files")  # files whatever KARRI_TEST_WALRUS says
    karri = start_karri(data_dir, *FAKE)
    return data_dir, karri


def test_objects_move_to_rados_and_back(tmp_path: Path) -> None:
    data_dir, karri = _files_cloud(tmp_path)
    pool = ceph.cluster().new_pool()
    to_rados = ("--walrus", "rados", "--ceph-conf", str(ceph.cluster().conf), "--rados-pool", pool)
    try:
        refused = migrate(data_dir, *to_rados)  # not while it runs
        assert refused.returncode == 1 and "stop it" in refused.stdout, refused.stdout
        account = karri.create_account("mover")
        expected = _fill(karri, account)
    finally:
        stop_karri(karri)
    assert _blob_files(data_dir)

    moved = migrate(data_dir, *to_rados)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "bytes" in moved.stdout and "switched to RADOS" in moved.stdout
    assert saved_walrus(data_dir)["walrus_backend"] == "rados"
    assert saved_walrus(data_dir)["rados_pool"] == pool
    assert not _blob_files(data_dir)  # the old blobs are gone
    assert _pool_objects(pool) > 0
    again = migrate(data_dir, *to_rados)
    assert again.returncode == 1 and "already" in again.stdout, again.stdout

    karri = start_karri(data_dir, *FAKE)  # the saved backend: RADOS
    try:
        _check(karri, account, expected)
        s3 = karri.client("s3", account)
        s3.put_object(Bucket=BUCKET, Key="written-on-rados", Body=b"new")
        expected["written-on-rados"] = (
            b"new",
            s3.head_object(Bucket=BUCKET, Key="written-on-rados")["ETag"],
        )
    finally:
        stop_karri(karri)

    back = migrate(data_dir, "--walrus", "files")
    assert back.returncode == 0, back.stdout + back.stderr
    assert saved_walrus(data_dir)["walrus_backend"] == "files"
    assert _pool_objects(pool) == 0
    karri = start_karri(data_dir, *FAKE)
    try:
        _check(karri, account, expected)
    finally:
        stop_karri(karri)


@pytest.mark.parametrize("kill_after", ["copied and verified 1/", "removed 1/"])
def test_a_killed_migration_leaves_a_cloud_that_starts(tmp_path: Path, kill_after: str) -> None:
    data_dir, karri = _files_cloud(tmp_path)
    pool = ceph.cluster().new_pool()
    to_rados = ("--walrus", "rados", "--ceph-conf", str(ceph.cluster().conf), "--rados-pool", pool)
    try:
        account = karri.create_account("mover")
        expected = _fill(karri, account)
    finally:
        stop_karri(karri)

    returncode = killed_at(data_dir, kill_after, *to_rados)

    if returncode == -signal.SIGKILL:
        switched = kill_after.startswith("removed")
        assert saved_walrus(data_dir)["walrus_backend"] == ("rados" if switched else "files")
        # Another migration: refused while a switched one is left to delete, else the
        # unfinished one is abandoned (here: files to files, refused as no move at all).
        other = migrate(data_dir, "--walrus", "files")
        assert other.returncode == 1, other.stdout
        assert ("unfinished" if switched else "already") in other.stdout, other.stdout

    karri = start_karri(data_dir, *FAKE)  # on whichever backend the data dir names
    try:
        _check(karri, account, expected)
    finally:
        stop_karri(karri)

    finished = migrate(data_dir, *to_rados)
    if returncode == 0:
        assert finished.returncode == 1 and "already" in finished.stdout, finished.stdout
    else:
        assert finished.returncode == 0, finished.stdout + finished.stderr
        assert "switched" in finished.stdout or kill_after.startswith("removed")
    assert saved_walrus(data_dir)["walrus_backend"] == "rados"
    assert not _blob_files(data_dir)
    karri = start_karri(data_dir, *FAKE)
    try:
        _check(karri, account, expected)
    finally:
        stop_karri(karri)
