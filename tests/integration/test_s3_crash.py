"""Crash safety and constant memory: kill -9 mid-PUT and mid-complete, restart, and find
either the old object or the new one, never a torn one, and no leftovers on disk; a 5 GiB
PUT and GET with the server staying under 200 MiB RSS."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Karri, start_karri, stop_karri
from tests.integration.s3_helpers import signed

MiB = 1024 * 1024


@pytest.fixture
def own_karri(tmp_path: Path):
    """A cloud of this test's own, which the test may kill."""
    instances: list[Karri] = []

    def start() -> Karri:
        instance = start_karri(tmp_path / "data", "--no-default-images")
        instances.append(instance)
        return instance

    yield start
    for instance in instances:
        stop_karri(instance)


def streaming_put(karri: Karri, bucket: str, key: str, size: int, pace: float = 0.0):
    """PUT ``size`` pseudo-random bytes with UNSIGNED-PAYLOAD; returns (status, md5)."""
    host, port = karri.s3_url.removeprefix("http://").split(":")
    headers, _ = signed(
        karri.admin, "PUT", f"{karri.s3_url}/{bucket}/{key}", payload_hash="UNSIGNED-PAYLOAD"
    )
    headers["Content-Length"] = str(size)
    connection = http.client.HTTPConnection(host, int(port), timeout=600)
    connection.putrequest("PUT", f"/{bucket}/{key}", skip_host=True, skip_accept_encoding=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    digest = hashlib.md5()
    block = os.urandom(4 * MiB)
    sent = 0
    try:
        while sent < size:
            chunk = block[: min(len(block), size - sent)]
            connection.send(chunk)
            digest.update(chunk)
            sent += len(chunk)
            if pace:
                time.sleep(pace)
        response = connection.getresponse()
        response.read()
        return response.status, digest.hexdigest()
    except OSError:
        return None, digest.hexdigest()
    finally:
        connection.close()


def leftovers(karri: Karri, expected_blobs: int) -> None:
    walrus = karri.data_dir / "walrus"
    assert list((walrus / "tmp").iterdir()) == []
    blobs = [p for p in (walrus / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == expected_blobs, blobs


def test_kill_during_put_keeps_the_old_object(own_karri) -> None:
    karri = own_karri()
    s3 = karri.client("s3")
    s3.create_bucket(Bucket="crash-put")
    old = b"old and whole, and kept in a file of its own" * 4096  # larger than INLINE_MAX
    s3.put_object(Bucket="crash-put", Key="obj", Body=old)
    result: dict = {}
    writer = threading.Thread(
        target=lambda: result.update(
            answer=streaming_put(karri, "crash-put", "obj", 400 * MiB, pace=0.02)
        )
    )
    writer.start()
    tmp = karri.data_dir / "walrus" / "tmp"
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 16 * MiB for p in tmp.iterdir()):
        assert time.monotonic() < deadline, "the upload never reached the disk"
        time.sleep(0.05)
    karri.process.kill()
    karri.process.wait()
    writer.join(60)
    assert result["answer"][0] is None
    assert list(tmp.iterdir())  # the torn upload is there until the restart
    karri = own_karri()
    s3 = karri.client("s3")
    assert s3.get_object(Bucket="crash-put", Key="obj")["Body"].read() == old
    leftovers(karri, 1)


def test_kill_during_multipart_complete_is_all_or_nothing(own_karri) -> None:
    karri = own_karri()
    s3 = karri.client("s3")
    s3.create_bucket(Bucket="crash-mp")
    parts = [os.urandom(32 * MiB) for _ in range(4)]
    whole = hashlib.md5(b"".join(parts)).hexdigest()
    outcomes = set()
    for attempt, delay in enumerate((0.0, 0.03, 0.1, 1.0)):
        key = f"obj-{attempt}"
        upload = s3.create_multipart_upload(Bucket="crash-mp", Key=key)["UploadId"]
        etags = [
            s3.upload_part(Bucket="crash-mp", Key=key, UploadId=upload, PartNumber=n, Body=data)[
                "ETag"
            ]
            for n, data in enumerate(parts, 1)
        ]
        request = {
            "Bucket": "crash-mp",
            "Key": key,
            "UploadId": upload,
            "MultipartUpload": {
                "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]
            },
        }
        done = threading.Thread(target=_complete_quietly, args=(s3, request))
        done.start()
        time.sleep(delay)
        karri.process.kill()
        karri.process.wait()
        done.join(60)
        karri = own_karri()
        s3 = karri.client("s3")
        uploads = [
            u["UploadId"] for u in s3.list_multipart_uploads(Bucket="crash-mp").get("Uploads", [])
        ]
        try:
            body = s3.get_object(Bucket="crash-mp", Key=key)["Body"].read()
        except ClientError as error:
            assert error.response["Error"]["Code"] == "NoSuchKey"
            assert upload in uploads  # not completed: the upload and its parts remain
            assert len(s3.list_parts(Bucket="crash-mp", Key=key, UploadId=upload)["Parts"]) == 4
            s3.abort_multipart_upload(Bucket="crash-mp", Key=key, UploadId=upload)
            outcomes.add("aborted")
        else:
            assert hashlib.md5(body).hexdigest() == whole
            assert upload not in uploads
            s3.delete_object(Bucket="crash-mp", Key=key)
            outcomes.add("completed")
        karri.process.kill()  # the next round starts from another crash-free restart
        karri.process.wait()
        karri = own_karri()
        s3 = karri.client("s3")
        leftovers(karri, 0)
    assert outcomes  # at least one of the two, depending on timing


def _complete_quietly(s3, request: dict) -> None:
    with contextlib.suppress(Exception):  # the server is killed under it
        s3.complete_multipart_upload(**request)


def _rss_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_5_gib_put_and_get_in_constant_memory(own_karri) -> None:
    karri = own_karri()
    s3 = karri.client("s3")
    s3.create_bucket(Bucket="huge")
    size = 5 * 1024 * MiB
    status, md5 = streaming_put(karri, "huge", "five-gib", size)
    assert status == 200
    head = s3.head_object(Bucket="huge", Key="five-gib")
    assert head["ContentLength"] == size and head["ETag"] == f'"{md5}"'
    host, port = karri.s3_url.removeprefix("http://").split(":")
    headers, _ = signed(karri.admin, "GET", f"{karri.s3_url}/huge/five-gib")
    connection = http.client.HTTPConnection(host, int(port), timeout=600)
    connection.request("GET", "/huge/five-gib", headers=headers)
    response = connection.getresponse()
    digest, received = hashlib.md5(), 0
    while chunk := response.read(4 * MiB):
        digest.update(chunk)
        received += len(chunk)
    connection.close()
    assert received == size and digest.hexdigest() == md5
    assert _rss_peak_mib(karri.process.pid) < 200
    s3.delete_object(Bucket="huge", Key="five-gib")
