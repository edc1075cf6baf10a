"""Conditional writes against a real `karri up`: ``If-None-Match: *`` and ``If-Match`` on
PutObject and CompleteMultipartUpload, judged in the commit itself, so that of two racing
writers exactly one wins: the loser gets 412 if its condition failed on arrival, 409
(ConditionalRequestConflict) if the other's write landed while its own was under way."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Karri
from tests.integration.s3_helpers import signed, unique

LOSING = {412: "PreconditionFailed", 409: "ConditionalRequestConflict"}


@pytest.fixture(scope="module")
def s3(karri: Karri):
    return karri.client("s3")


@pytest.fixture(params=["", "Enabled"], ids=["unversioned", "versioned"])
def bucket(s3, request) -> str:
    name = unique("cond")
    s3.create_bucket(Bucket=name)
    if request.param:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": request.param})
    return name


def error(call, **kwargs) -> tuple[str, int]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.mark.parametrize("size", [10, 300 * 1024], ids=["inline", "file"])
def test_two_writers_race_and_exactly_one_wins(karri: Karri, bucket: str, size: int) -> None:
    clients = [karri.client("s3"), karri.client("s3")]
    for round_ in range(8):
        key = f"race-{round_}"
        barrier = threading.Barrier(2)
        outcomes: list[tuple[int, str, bytes]] = []

        def write(client, body: bytes, key: str = key, barrier=barrier, outcomes=outcomes) -> None:
            barrier.wait()
            try:
                client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
                outcomes.append((200, "", body))
            except ClientError as failed:
                response = failed.response
                status = response["ResponseMetadata"]["HTTPStatusCode"]
                outcomes.append((status, response["Error"]["Code"], body))

        threads = [
            threading.Thread(target=write, args=(client, bytes([65 + n]) * size))
            for n, client in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [body for status, _code, body in outcomes if status == 200]
        losers = [(status, code) for status, code, _body in outcomes if status != 200]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert losers[0][1] == LOSING.get(losers[0][0]), outcomes
        stored = clients[0].get_object(Bucket=bucket, Key=key)["Body"].read()
        assert stored == winners[0]


def test_if_match_writes_only_over_the_named_etag(s3, bucket: str) -> None:
    assert error(s3.put_object, Bucket=bucket, Key="doc", Body=b"v0", IfMatch='"abc"') == (
        "NoSuchKey",
        404,
    )
    first = s3.put_object(Bucket=bucket, Key="doc", Body=b"v1", IfNoneMatch="*")["ETag"]
    assert error(s3.put_object, Bucket=bucket, Key="doc", Body=b"v1", IfNoneMatch="*") == (
        "PreconditionFailed",
        412,
    )
    second = s3.put_object(Bucket=bucket, Key="doc", Body=b"v2", IfMatch=first)["ETag"]
    # A writer that read v1 and writes back loses to the one that changed it meanwhile.
    assert error(s3.put_object, Bucket=bucket, Key="doc", Body=b"v3", IfMatch=first) == (
        "PreconditionFailed",
        412,
    )
    assert s3.get_object(Bucket=bucket, Key="doc")["ETag"] == second
    s3.delete_object(Bucket=bucket, Key="doc")  # gone (or behind a delete marker)
    assert error(s3.put_object, Bucket=bucket, Key="doc", Body=b"v4", IfMatch=second) == (
        "NoSuchKey",
        404,
    )
    s3.put_object(Bucket=bucket, Key="doc", Body=b"v5", IfNoneMatch="*")


def held_back(
    karri: Karri, method: str, url: str, body: bytes, condition: dict, meanwhile
) -> bytes:
    """A conditional write whose body the server asks for (``100 Continue``: its condition
    held on arrival) only after ``meanwhile()`` ran; the raw answer."""
    headers, _ = signed(karri.admin, method, url, body, condition)
    headers |= {"Content-Length": str(len(body)), "Expect": "100-continue"}
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as connection:
        connection.sendall(head.encode() + b"\r\n")
        interim = connection.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        meanwhile()
        connection.sendall(body)
        answer = b""
        while b"</Error>" not in answer and (chunk := connection.recv(65536)):
            answer += chunk
    return answer


def conflict(answer: bytes) -> bool:
    code = b"<Code>ConditionalRequestConflict</Code>"
    return answer.startswith(b"HTTP/1.1 409") and code in answer


def test_a_delete_racing_an_if_match_write_is_a_conflict(karri: Karri, s3, bucket: str) -> None:
    """The key is deleted while the write's body is on its way (after its condition was
    first found to hold): ConditionalRequestConflict, and the key stays deleted."""
    etag = s3.put_object(Bucket=bucket, Key="raced", Body=b"old")["ETag"]
    url = f"{karri.s3_url}/{bucket}/raced"

    def delete() -> None:
        s3.delete_object(Bucket=bucket, Key="raced")

    answer = held_back(karri, "PUT", url, b"n" * 200_000, {"If-Match": etag}, delete)
    assert conflict(answer), answer
    assert error(s3.head_object, Bucket=bucket, Key="raced")[1] == 404


@pytest.mark.parametrize("size", [10, 200_000], ids=["inline", "file"])
def test_a_write_that_lands_while_a_conditional_body_comes_is_a_conflict(
    karri: Karri, s3, bucket: str, size: int
) -> None:
    """If-None-Match: * held on arrival, then another writer created the key: 409 (not
    412); If-Match held, then another write changed the ETag: 409. The other's write
    stays."""
    key = unique("landed")
    url = f"{karri.s3_url}/{bucket}/{key}"

    def write(body: bytes):
        return lambda: s3.put_object(Bucket=bucket, Key=key, Body=body)

    answer = held_back(karri, "PUT", url, b"a" * size, {"If-None-Match": "*"}, write(b"other"))
    assert conflict(answer), answer
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"other"
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    answer = held_back(karri, "PUT", url, b"b" * size, {"If-Match": etag}, write(b"third"))
    assert conflict(answer), answer
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"third"
    # Failing on arrival is still PreconditionFailed.
    assert error(s3.put_object, Bucket=bucket, Key=key, Body=b"x", IfNoneMatch="*") == (
        "PreconditionFailed",
        412,
    )


def test_a_write_that_lands_while_a_conditional_completion_comes_is_a_conflict(
    karri: Karri, s3, bucket: str
) -> None:
    """CompleteMultipartUpload with If-None-Match: *, whose parts list is asked for after
    another writer created the key: 409, and the upload still completes without the
    condition."""
    key = unique("mpu")
    upload, parts = _upload(s3, bucket, key, b"mine")
    url = f"{karri.s3_url}/{bucket}/{key}?uploadId={upload}"
    document = (
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        f"<ETag>{parts[0]['ETag']}</ETag></Part></CompleteMultipartUpload>"
    ).encode()

    def write() -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=b"other")

    answer = held_back(karri, "POST", url, document, {"If-None-Match": "*"}, write)
    assert conflict(answer), answer
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"other"
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"mine"


def _upload(s3, bucket: str, key: str, body: bytes) -> tuple[str, list[dict]]:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=body)["ETag"]
    return upload, [{"PartNumber": 1, "ETag": etag}]


def test_complete_multipart_upload_with_conditions(s3, bucket: str) -> None:
    first, parts = _upload(s3, bucket, "big", b"one")
    second, second_parts = _upload(s3, bucket, "big", b"two")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=first, MultipartUpload={"Parts": parts},
        IfNoneMatch="*",
    )  # fmt: skip
    assert error(
        s3.complete_multipart_upload,
        Bucket=bucket, Key="big", UploadId=second, MultipartUpload={"Parts": second_parts},
        IfNoneMatch="*",
    ) == ("PreconditionFailed", 412)  # fmt: skip
    assert error(
        s3.complete_multipart_upload,
        Bucket=bucket, Key="big", UploadId=second, MultipartUpload={"Parts": second_parts},
        IfMatch='"0123456789abcdef0123456789abcdef"',
    ) == ("PreconditionFailed", 412)  # fmt: skip
    current = s3.head_object(Bucket=bucket, Key="big")["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=second, MultipartUpload={"Parts": second_parts},
        IfMatch=current,
    )  # fmt: skip
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"two"
    assert done["ETag"] != current

    third, third_parts = _upload(s3, bucket, "fresh", b"three")
    assert error(
        s3.complete_multipart_upload,
        Bucket=bucket, Key="fresh", UploadId=third, MultipartUpload={"Parts": third_parts},
        IfMatch=current,
    ) == ("NoSuchKey", 404)  # fmt: skip
    # The failed conditions left the upload as it was: it still completes.
    s3.complete_multipart_upload(
        Bucket=bucket, Key="fresh", UploadId=third, MultipartUpload={"Parts": third_parts},
        IfNoneMatch="*",
    )  # fmt: skip


def test_copy_object_with_conditions_on_its_destination(s3, bucket: str) -> None:
    big = b"s" * 300_000  # a file of its own: the copy links it
    s3.put_object(Bucket=bucket, Key="source", Body=big)
    s3.put_object(Bucket=bucket, Key="target", Body=b"t")
    source = {"Bucket": bucket, "Key": "source"}
    assert error(
        s3.copy_object, Bucket=bucket, Key="target", CopySource=source, IfNoneMatch="*"
    ) == ("PreconditionFailed", 412)
    assert error(
        s3.copy_object, Bucket=bucket, Key="target", CopySource=source, IfMatch='"nope"'
    ) == ("PreconditionFailed", 412)
    assert error(
        s3.copy_object, Bucket=bucket, Key="none", CopySource=source, IfMatch='"nope"'
    ) == ("NoSuchKey", 404)
    assert s3.get_object(Bucket=bucket, Key="target")["Body"].read() == b"t"
    etag = s3.head_object(Bucket=bucket, Key="target")["ETag"]
    s3.copy_object(Bucket=bucket, Key="target", CopySource=source, IfMatch=etag)
    s3.copy_object(Bucket=bucket, Key="fresh", CopySource=source, IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="target")["Body"].read() == big
