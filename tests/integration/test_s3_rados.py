"""`karri up --walrus-backend rados`: object bytes in a pool of the tests' Ceph cluster
(tests/ceph.py), driven with boto3. Multipart parts become the object without a copy; a
SIGKILL mid-upload loses no acknowledged part; a cluster that stops gives S3's retryable
errors, and the cloud recovers by itself when it returns."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests import ceph
from tests.conftest import Karri, start_karri, stop_karri
from tests.integration.test_s3_crash import streaming_put

MiB = 1024 * 1024


@pytest.fixture
def rados_karri(tmp_path: Path) -> Iterator[Callable[[], Karri]]:
    """Starts (and restarts) a cloud of this test's own on a new pool, by the CLI flags."""
    cluster = ceph.cluster()
    pool = cluster.new_pool()
    instances: list[Karri] = []

    def start() -> Karri:
        flags = ["--walrus-backend", "rados", "--ceph-conf", str(cluster.conf)]
        instance = start_karri(
            tmp_path / "data", "--no-default-images", *flags, "--rados-pool", pool
        )
        instances.append(instance)
        return instance

    start.pool = pool  # type: ignore[attr-defined]
    yield start
    for instance in instances:
        stop_karri(instance)


def pool_objects(pool: str) -> set[str]:
    client = ceph.cluster().client()
    try:
        with client.open_ioctx(pool) as ioctx:
            ioctx.set_namespace("walrus")
            return {item.key for item in ioctx.list_objects()}
    finally:
        client.shutdown()


def blob_ids(pool: str) -> set[str]:
    return {name.partition(".")[0] for name in pool_objects(pool)}


def test_objects_live_in_the_pool_and_parts_join_without_a_copy(rados_karri) -> None:
    karri = rados_karri()
    pool = rados_karri.pool
    s3 = karri.client("s3")
    s3.create_bucket(Bucket="rados")
    big = os.urandom(9 * MiB + 7)
    s3.put_object(Bucket="rados", Key="big", Body=big)
    assert s3.get_object(Bucket="rados", Key="big")["Body"].read() == big
    ranged = s3.get_object(Bucket="rados", Key="big", Range="bytes=4194300-4194310")
    assert ranged["Body"].read() == big[4194300:4194311]
    assert not (karri.data_dir / "walrus" / "blobs").exists()
    assert len(pool_objects(pool)) == 3  # 4 MiB stripes

    upload = s3.create_multipart_upload(Bucket="rados", Key="mp")["UploadId"]
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    etags = [
        s3.upload_part(Bucket="rados", Key="mp", UploadId=upload, PartNumber=n, Body=data)["ETag"]
        for n, data in enumerate(parts, 1)
    ]
    before = blob_ids(pool)
    done = s3.complete_multipart_upload(
        Bucket="rados",
        Key="mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    assert done["ETag"].endswith('-3"')
    assert blob_ids(pool) == before  # the parts are the object: nothing copied
    assert s3.get_object(Bucket="rados", Key="mp")["Body"].read() == b"".join(parts)

    s3.copy_object(Bucket="rados", Key="copy", CopySource={"Bucket": "rados", "Key": "mp"})
    assert s3.get_object(Bucket="rados", Key="copy")["Body"].read() == b"".join(parts)
    s3.put_object(Bucket="rados", Key="big", Body=b"small now")  # an overwrite
    for key in ("mp", "copy"):
        s3.delete_object(Bucket="rados", Key=key)
    deadline = time.monotonic() + 60
    while blob_ids(pool):  # removed off the request path
        assert time.monotonic() < deadline, pool_objects(pool)
        time.sleep(0.2)
    assert s3.get_object(Bucket="rados", Key="big")["Body"].read() == b"small now"


def test_sigkill_during_a_multipart_upload_loses_no_acknowledged_part(rados_karri) -> None:
    karri = rados_karri()
    s3 = karri.client("s3")
    s3.create_bucket(Bucket="crash")
    upload = s3.create_multipart_upload(Bucket="crash", Key="obj")["UploadId"]
    parts = [os.urandom(6 * MiB), os.urandom(5 * MiB)]
    etags = [
        s3.upload_part(Bucket="crash", Key="obj", UploadId=upload, PartNumber=n, Body=data)["ETag"]
        for n, data in enumerate(parts, 1)
    ]
    acknowledged = len(pool_objects(rados_karri.pool))
    result: dict = {}
    key = f"obj?partNumber=3&uploadId={upload}"
    writer = threading.Thread(
        target=lambda: result.update(
            answer=streaming_put(karri, "crash", key, 200 * MiB, pace=0.02)
        )
    )
    writer.start()
    deadline = time.monotonic() + 60
    while len(pool_objects(rados_karri.pool)) < acknowledged + 2:  # part 3 is being written
        assert time.monotonic() < deadline, "part 3 never reached the pool"
        time.sleep(0.05)
    karri.process.kill()
    karri.process.wait()
    writer.join(60)
    assert result["answer"][0] is None

    karri = rados_karri()
    s3 = karri.client("s3")
    listed = s3.list_parts(Bucket="crash", Key="obj", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in listed] == list(zip([1, 2], etags, strict=True))
    last = b"the last part"
    etags.append(
        s3.upload_part(Bucket="crash", Key="obj", UploadId=upload, PartNumber=3, Body=last)["ETag"]
    )
    s3.complete_multipart_upload(
        Bucket="crash",
        Key="obj",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    body = s3.get_object(Bucket="crash", Key="obj")["Body"].read()
    assert hashlib.md5(body).digest() == hashlib.md5(b"".join(parts) + last).digest()


def test_a_stopped_cluster_gives_retryable_errors_and_the_cloud_recovers(rados_karri) -> None:
    karri = rados_karri()
    s3 = karri.client("s3", read_timeout=120)
    s3.create_bucket(Bucket="outage")
    kept = os.urandom(2 * MiB)
    s3.put_object(Bucket="outage", Key="kept", Body=kept)
    cluster = ceph.cluster()
    cluster.stop()
    try:
        for call in (
            lambda: s3.put_object(Bucket="outage", Key="new", Body=os.urandom(3 * MiB)),
            lambda: s3.get_object(Bucket="outage", Key="kept")["Body"].read(),
        ):
            with pytest.raises(ClientError) as failure:
                call()
            error = failure.value.response
            assert error["Error"]["Code"] == "ServiceUnavailable", error
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
        # What lives in the database only still works: a small object, a listing.
        s3.put_object(Bucket="outage", Key="small", Body=b"in its row")
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="outage")["Contents"]] == [
            "kept",
            "small",
        ]
    finally:
        cluster.start()
    # As a client retrying ServiceUnavailable would: the cluster's placement groups may
    # take a moment to be active again.
    read = retried(lambda: s3.get_object(Bucket="outage", Key="kept")["Body"].read())
    assert read == kept
    fresh = os.urandom(3 * MiB)
    retried(lambda: s3.put_object(Bucket="outage", Key="new", Body=fresh))
    assert s3.get_object(Bucket="outage", Key="new")["Body"].read() == fresh


def retried(call: Callable[[], object]) -> object:
    deadline = time.monotonic() + 120
    while True:
        try:
            return call()
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code not in ("ServiceUnavailable", "InternalError") or time.monotonic() > deadline:
                raise
            time.sleep(1)
