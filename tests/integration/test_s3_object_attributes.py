"""GetObjectAttributes and ``?partNumber`` reads through boto3 and the AWS CLI against a
real `karri up`: single-part and multipart objects, with and without checksums."""

from __future__ import annotations

import base64
import hashlib
import time
import zlib

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Creds, Karri
from tests.integration.iam import policy, user_creds
from tests.integration.s3_helpers import code, http, signed, unique

MiB = 1024 * 1024
ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]


@pytest.fixture(scope="module")
def s3(karri: Karri):
    return karri.client("s3")


@pytest.fixture
def bucket(s3) -> str:
    name = unique("attrs")
    s3.create_bucket(Bucket=name)
    return name


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_single_part_object(s3, bucket: str) -> None:
    body = b"hello attributes"
    put = s3.put_object(Bucket=bucket, Key="one", Body=body, ChecksumAlgorithm="SHA256")
    got = s3.get_object_attributes(Bucket=bucket, Key="one", ObjectAttributes=ALL)
    assert got["ETag"] == hashlib.md5(body).hexdigest()  # unquoted, as S3 writes it here
    assert got["ObjectSize"] == len(body)
    assert got["StorageClass"] == "STANDARD"
    assert got["Checksum"] == {
        "ChecksumSHA256": put["ChecksumSHA256"],
        "ChecksumType": "FULL_OBJECT",
    }
    assert "ObjectParts" not in got
    assert got["LastModified"] == s3.head_object(Bucket=bucket, Key="one")["LastModified"]
    only = s3.get_object_attributes(Bucket=bucket, Key="one", ObjectAttributes=["ObjectSize"])
    assert "ETag" not in only and "Checksum" not in only and only["ObjectSize"] == len(body)
    # Part 1 of a single-part object is all of it.
    part = s3.get_object(Bucket=bucket, Key="one", PartNumber=1)
    assert part["Body"].read() == body


def _multipart(s3, bucket: str, key: str, sizes: list[int], **create) -> tuple[list, bytes]:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    parts, whole = [], b""
    for number, size in enumerate(sizes, 1):
        data = bytes([number]) * size
        extra = {"ChecksumAlgorithm": create["ChecksumAlgorithm"]} if create else {}
        answer = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=data, **extra
        )
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        if create:
            part["ChecksumCRC32"] = answer["ChecksumCRC32"]
        parts.append(part)
        whole += data
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return parts, whole


def test_multipart_object_with_checksums(s3, bucket: str) -> None:
    sizes = [5 * MiB, 5 * MiB, 1234]
    parts, whole = _multipart(s3, bucket, "multi", sizes, ChecksumAlgorithm="CRC32")
    got = s3.get_object_attributes(Bucket=bucket, Key="multi", ObjectAttributes=ALL)
    assert got["ObjectSize"] == len(whole)
    assert got["ETag"].endswith("-3")
    assert got["Checksum"]["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket=bucket, Key="multi", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == got["Checksum"]["ChecksumCRC32"] + "-3"
    object_parts = got["ObjectParts"]
    assert object_parts["TotalPartsCount"] == 3
    assert not object_parts["IsTruncated"]
    assert [(p["PartNumber"], p["Size"], p["ChecksumCRC32"]) for p in object_parts["Parts"]] == [
        (n, size, crc32(bytes([n]) * size)) for n, size in enumerate(sizes, 1)
    ]
    assert [p["ChecksumCRC32"] for p in parts] == [
        p["ChecksumCRC32"] for p in object_parts["Parts"]
    ]
    # Pages of parts.
    first = s3.get_object_attributes(
        Bucket=bucket, Key="multi", ObjectAttributes=["ObjectParts"], MaxParts=2
    )["ObjectParts"]
    assert first["IsTruncated"] and first["NextPartNumberMarker"] == 2
    assert [p["PartNumber"] for p in first["Parts"]] == [1, 2]
    rest = s3.get_object_attributes(
        Bucket=bucket, Key="multi", ObjectAttributes=["ObjectParts"], MaxParts=2,
        PartNumberMarker=2,
    )["ObjectParts"]  # fmt: skip
    assert not rest["IsTruncated"] and [p["PartNumber"] for p in rest["Parts"]] == [3]
    # ?partNumber: that part's bytes, its checksum and the object's parts count.
    for number, size in enumerate(sizes, 1):
        for call in (s3.get_object, s3.head_object):
            answer = call(Bucket=bucket, Key="multi", PartNumber=number, ChecksumMode="ENABLED")
            assert answer["PartsCount"] == 3
            assert answer["ContentLength"] == size
            assert answer["ChecksumCRC32"] == crc32(bytes([number]) * size)
            assert answer["ChecksumType"] == "COMPOSITE"
            if call is s3.get_object:
                assert answer["Body"].read() == bytes([number]) * size
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="multi", PartNumber=4)
    assert code(error) == ("InvalidPartNumber", 416)


def test_multipart_object_without_checksums(karri: Karri, s3, bucket: str) -> None:
    plain = karri.client(
        "s3", request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )  # fmt: skip
    _multipart(plain, bucket, "plain", [5 * MiB, 10])
    got = plain.get_object_attributes(Bucket=bucket, Key="plain", ObjectAttributes=ALL)
    assert "Checksum" not in got
    assert got["ObjectParts"]["TotalPartsCount"] == 2
    assert "Parts" not in got["ObjectParts"]
    second = plain.get_object(Bucket=bucket, Key="plain", PartNumber=2)
    assert second["Body"].read() == bytes([2]) * 10 and second["PartsCount"] == 2
    assert "ChecksumCRC32" not in second


def test_versions_and_delete_markers(s3, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="v", Body=b"one")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="v", Body=b"three")["VersionId"]
    old = s3.get_object_attributes(
        Bucket=bucket, Key="v", VersionId=first, ObjectAttributes=["ObjectSize"]
    )
    assert (old["ObjectSize"], old["VersionId"]) == (3, first)
    new = s3.get_object_attributes(Bucket=bucket, Key="v", ObjectAttributes=["ObjectSize"])
    assert (new["ObjectSize"], new["VersionId"]) == (5, second)
    s3.delete_object(Bucket=bucket, Key="v")
    with pytest.raises(ClientError) as error:
        s3.get_object_attributes(Bucket=bucket, Key="v", ObjectAttributes=["ETag"])
    assert code(error) == ("NoSuchKey", 404)


def test_errors(karri: Karri, s3, bucket: str, other_account: Creds) -> None:
    with pytest.raises(ClientError) as error:
        s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])
    assert code(error) == ("NoSuchKey", 404)
    s3.put_object(Bucket=bucket, Key="private", Body=b"x")
    other = karri.client("s3", other_account)
    with pytest.raises(ClientError) as error:
        other.get_object_attributes(Bucket=bucket, Key="private", ObjectAttributes=["ETag"])
    assert code(error) == ("AccessDenied", 403)
    url = f"{karri.s3_url}/{bucket}/private?attributes"
    for value in ("Colour", "ETag,Nope", ""):
        headers, _ = signed(karri.admin, "GET", url, b"", {"x-amz-object-attributes": value})
        status, _, body = http("GET", url, None, headers)
        assert (status, b"<Code>InvalidArgument</Code>" in body) == (400, True), value
    headers, _ = signed(karri.admin, "GET", url)
    status, _, body = http("GET", url, None, headers)
    assert status == 400 and b"<Code>InvalidRequest</Code>" in body


def test_aws_cli(karri: Karri, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="cli", Body=b"from the cli")
    got = karri.aws(
        "s3api", "get-object-attributes", "--bucket", bucket, "--key", "cli",
        "--object-attributes", "ETag", "ObjectSize",
    )  # fmt: skip
    assert got["ObjectSize"] == len(b"from the cli")
    assert got["ETag"] == hashlib.md5(b"from the cli").hexdigest()


def test_iam_actions(karri: Karri, s3, bucket: str) -> None:
    """GetObjectAttributes is its own action for IAM users; lifecycle has its own two."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    name = unique("attrs-user")
    creds, _ = user_creds(karri, karri.admin, name)
    karri.client("iam").put_user_policy(
        UserName=name,
        PolicyName="attributes-only",
        PolicyDocument=policy(
            {
                "Effect": "Allow",
                "Action": ["s3:GetObjectAttributes", "s3:GetLifecycleConfiguration"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ),
    )
    user = karri.client("s3", creds)
    for attempt in range(30):  # the policy reaches the S3 processes within a second or so
        try:
            got = user.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ETag"])
            break
        except ClientError:
            if attempt == 29:
                raise
            time.sleep(0.5)
    assert got["ETag"] == hashlib.md5(b"x").hexdigest()
    for call in (
        lambda: user.get_object(Bucket=bucket, Key="k"),
        lambda: user.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={
                "Rules": [{"ID": "r", "Filter": {}, "Status": "Enabled",
                           "Expiration": {"Days": 1}}]
            },
        ),
    ):  # fmt: skip
        with pytest.raises(ClientError) as error:
            call()
        assert code(error) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as error:  # allowed to ask: there is none
        user.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code(error) == ("NoSuchLifecycleConfiguration", 404)
