"""Walrus through boto3 with its default behaviour (flexible checksums included)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import Karri
from tests.integration.s3_helpers import http, signed, unique

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(karri: Karri):
    return karri.client("s3")


@pytest.fixture
def bucket(s3) -> str:
    name = unique()
    s3.create_bucket(Bucket=name)
    return name


def code(error: pytest.ExceptionInfo) -> tuple[str, int]:
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_bucket_lifecycle(s3) -> None:
    name = unique()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eucalyptus"})
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eucalyptus"
    with pytest.raises(ClientError) as error:
        s3.create_bucket(Bucket=name)
    assert code(error) == ("BucketAlreadyOwnedByYou", 409)
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as error:
        s3.delete_bucket(Bucket=name)
    assert code(error) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as error:
        s3.head_bucket(Bucket=name)
    assert code(error) == ("404", 404)


def test_object_round_trip_keeps_headers_and_metadata(s3, bucket: str) -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    put = s3.put_object(
        Bucket=bucket,
        Key="doc.txt",
        Body=b"hello walrus",
        ContentType="text/plain",
        ContentEncoding="identity",
        ContentDisposition='attachment; filename="doc.txt"',
        ContentLanguage="en",
        CacheControl="max-age=60",
        Expires=expires,
        Metadata={"colour": "blue", "owner-name": "walrus"},
    )
    assert put["ETag"] == f'"{hashlib.md5(b"hello walrus").hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="doc.txt")
    assert got["Body"].read() == b"hello walrus"
    assert got["ContentType"] == "text/plain"
    assert got["ContentEncoding"] == "identity"
    assert got["ContentDisposition"] == 'attachment; filename="doc.txt"'
    assert got["ContentLanguage"] == "en"
    assert got["CacheControl"] == "max-age=60"
    assert got["Expires"] == expires
    assert got["Metadata"] == {"colour": "blue", "owner-name": "walrus"}
    head = s3.head_object(Bucket=bucket, Key="doc.txt")
    assert head["ContentLength"] == 12 and head["ETag"] == put["ETag"]
    overridden = s3.get_object(
        Bucket=bucket,
        Key="doc.txt",
        ResponseContentType="application/x-test",
        ResponseCacheControl="no-cache",
        ResponseContentDisposition="inline",
    )
    assert overridden["ContentType"] == "application/x-test"
    assert overridden["CacheControl"] == "no-cache"
    assert overridden["ContentDisposition"] == "inline"


def test_ranges(s3, bucket: str) -> None:
    data = bytes(range(256)) * 4
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    for header, expected, content_range in (
        ("bytes=0-9", data[:10], "bytes 0-9/1024"),
        ("bytes=1000-", data[1000:], "bytes 1000-1023/1024"),
        ("bytes=-24", data[-24:], "bytes 1000-1023/1024"),
        ("bytes=1020-5000", data[1020:], "bytes 1020-1023/1024"),
    ):
        got = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["Body"].read() == expected
        assert got["ContentRange"] == content_range
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=2000-")
    assert code(error) == ("InvalidRange", 416)
    whole = s3.get_object(Bucket=bucket, Key="r", Range="bytes=oops")
    assert whole["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_conditional_reads(s3, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"v1")["ETag"]
    past = datetime.now(UTC) - timedelta(days=1)
    modified = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"v1"
    for kwargs, expected in (
        ({"IfMatch": '"0000"'}, ("PreconditionFailed", 412)),
        ({"IfUnmodifiedSince": past}, ("PreconditionFailed", 412)),
        ({"IfNoneMatch": etag}, ("304", 304)),
        ({"IfNoneMatch": f'"0000", W/{etag}'}, ("304", 304)),  # HTTP's weak comparison
        ({"IfMatch": f"W/{etag}"}, ("PreconditionFailed", 412)),  # and its strong one
        ({"IfModifiedSince": modified}, ("304", 304)),
    ):
        with pytest.raises(ClientError) as error:
            s3.get_object(Bucket=bucket, Key="c", **kwargs)
        assert code(error) == expected, kwargs
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["Body"].read() == b"v1"


def test_copy_object(s3, bucket: str) -> None:
    other = unique()
    s3.create_bucket(Bucket=other)
    s3.put_object(
        Bucket=bucket, Key="src", Body=b"copy me", Metadata={"a": "1"}, ContentType="text/x"
    )
    result = s3.copy_object(Bucket=other, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert result["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"copy me").hexdigest()}"'
    copied = s3.get_object(Bucket=other, Key="dst")
    assert copied["Body"].read() == b"copy me" and copied["Metadata"] == {"a": "1"}
    assert copied["ContentType"] == "text/x"
    s3.copy_object(
        Bucket=bucket,
        Key="src",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
        ContentType="text/y",
    )
    replaced = s3.head_object(Bucket=bucket, Key="src")
    assert replaced["Metadata"] == {"b": "2"} and replaced["ContentType"] == "text/y"
    with pytest.raises(ClientError) as error:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert code(error) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as error:
        s3.copy_object(
            Bucket=other,
            Key="x",
            CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceIfMatch='"nope"',
        )
    assert code(error) == ("PreconditionFailed", 412)
    s3.delete_object(Bucket=bucket, Key="src")
    assert s3.get_object(Bucket=other, Key="dst")["Body"].read() == b"copy me"


def test_delete_objects_quiet_and_verbose(s3, bucket: str) -> None:
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    verbose = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "zz"}]})
    assert sorted(d["Key"] for d in verbose["Deleted"]) == ["a", "zz"]
    quiet = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "b"}, {"Key": "c"}], "Quiet": True}
    )
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_listings(s3, bucket: str) -> None:
    keys = ["a.txt", "dir/1", "dir/2", "dir/sub/3", "e f", "z+z"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    v2 = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in v2["Contents"]] == ["a.txt", "e f", "z+z"]
    assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["dir/"]
    assert "Owner" not in v2["Contents"][0]
    owned = s3.list_objects_v2(Bucket=bucket, FetchOwner=True, Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in owned["Contents"]] == ["dir/1", "dir/2"]
    assert owned["Contents"][0]["Owner"]["ID"]
    assert owned["CommonPrefixes"] == [{"Prefix": "dir/sub/"}]
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 2}
    )
    assert [o["Key"] for page in pages for o in page["Contents"]] == keys
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="dir/2")
    assert [o["Key"] for o in after["Contents"]] == ["dir/sub/3", "e f", "z+z"]
    v1 = s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 4})
    assert [o["Key"] for page in v1 for o in page["Contents"]] == keys
    marker = s3.list_objects(Bucket=bucket, Marker="dir/sub/3")
    assert [o["Key"] for o in marker["Contents"]] == ["e f", "z+z"]
    encoded = s3.list_objects_v2(Bucket=bucket, EncodingType="url", Prefix="e")
    assert [o["Key"] for o in encoded["Contents"]] == ["e%20f"]  # asked for, so not decoded
    for none in (  # an empty page that is complete: a paginator must not start over
        s3.list_objects_v2(Bucket=bucket, MaxKeys=0),
        s3.list_objects(Bucket=bucket, MaxKeys=0),
        s3.list_object_versions(Bucket=bucket, MaxKeys=0),
    ):
        assert none["IsTruncated"] is False and "Contents" not in none and "Versions" not in none
        assert not {"NextContinuationToken", "NextMarker", "NextKeyMarker"} & none.keys()


def test_versioning(s3, bucket: str) -> None:
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"one"
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="k")
    assert code(error) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as error:
        s3.head_object(Bucket=bucket, Key="k", VersionId=deleted["VersionId"])
    assert code(error) == ("405", 405)
    listing = s3.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in listing["Versions"]] == [v2, v1]
    assert [m["VersionId"] for m in listing["DeleteMarkers"]] == [deleted["VersionId"]]
    s3.delete_object(Bucket=bucket, Key="k", VersionId=deleted["VersionId"])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    pages = s3.get_paginator("list_object_versions").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 1}
    )
    assert [v["VersionId"] for page in pages for v in page.get("Versions", [])] == [v1]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"null one")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"null one"
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"one"


def test_transfer_manager_multipart(s3, bucket: str) -> None:
    data = os.urandom(23 * MiB + 7)
    config = TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4
    )
    s3.upload_fileobj(io.BytesIO(data), bucket, "big", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big")
    md5s = [hashlib.md5(data[i : i + 5 * MiB]).digest() for i in range(0, len(data), 5 * MiB)]
    assert head["ETag"] == f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-5"'
    out = io.BytesIO()
    s3.download_fileobj(bucket, "big", out, Config=config)
    assert out.getvalue() == data
    checked = s3.get_object(Bucket=bucket, Key="big", ChecksumMode="ENABLED")
    assert checked["Body"].read() == data


def test_multipart_api(karri: Karri, s3, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", Metadata={"m": "1"})["UploadId"]
    part1 = os.urandom(5 * MiB)
    e1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=part1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=2, Body=b"tail")[
        "ETag"
    ]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [upload]
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MiB), (2, 4)]
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=upload,
            MultipartUpload={
                "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]
            },
        )
    assert code(error) == ("InvalidPartOrder", 400)
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"ffff"'}]},
        )
    assert code(error) == ("InvalidPart", 400)
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert done["ETag"].endswith('-2"')
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == part1 + b"tail" and got["Metadata"] == {"m": "1"}
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    second = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)  # as SDKs download by part
    assert second["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert second["Body"].read() == b"tail" and second["PartsCount"] == 2
    assert second["ContentRange"] == f"bytes {5 * MiB}-{5 * MiB + 3}/{5 * MiB + 4}"
    first = s3.head_object(Bucket=bucket, Key="mp", PartNumber=1)
    assert first["ContentLength"] == 5 * MiB and first["ETag"] == done["ETag"]
    for extra, expected in (
        ({"PartNumber": 3}, ("InvalidPartNumber", 416)),
        ({"PartNumber": 0}, ("InvalidPartNumber", 416)),
        ({"PartNumber": 1, "Range": "bytes=0-1"}, ("InvalidRequest", 400)),
    ):
        with pytest.raises(ClientError) as error:
            s3.get_object(Bucket=bucket, Key="mp", **extra)
        assert code(error) == expected
    url = f"{karri.s3_url}/{bucket}/mp?partNumber=two"
    assert http("GET", url, None, signed(karri.admin, "GET", url)[0])[0] == 416

    small = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    tags = [
        s3.upload_part(Bucket=bucket, Key="small", UploadId=small, PartNumber=n, Body=b"x")["ETag"]
        for n in (1, 2)
    ]
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="small",
            UploadId=small,
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": t} for n, t in zip((1, 2), tags, strict=True)]
            },
        )
    assert code(error) == ("EntityTooSmall", 400)
    s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=small)
    with pytest.raises(ClientError) as error:
        s3.list_parts(Bucket=bucket, Key="small", UploadId=small)
    assert code(error) == ("NoSuchUpload", 404)


def test_upload_part_copy_with_range(s3, bucket: str) -> None:
    source = os.urandom(6 * MiB)
    s3.put_object(Bucket=bucket, Key="source", Body=source)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    first = s3.upload_part_copy(
        Bucket=bucket,
        Key="assembled",
        UploadId=upload,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "source"},
        CopySourceRange=f"bytes=0-{5 * MiB - 1}",
    )["CopyPartResult"]["ETag"]
    second = s3.upload_part_copy(
        Bucket=bucket,
        Key="assembled",
        UploadId=upload,
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "source"},
        CopySourceRange=f"bytes={5 * MiB}-{6 * MiB - 1}",
    )["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="assembled",
        UploadId=upload,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": second}]
        },
    )
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == source


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_flexible_checksums(s3, bucket: str, algorithm: str) -> None:
    put = s3.put_object(
        Bucket=bucket, Key=algorithm, Body=b"checked bytes", ChecksumAlgorithm=algorithm
    )
    value = put[f"Checksum{algorithm}"]
    head = s3.head_object(Bucket=bucket, Key=algorithm, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == value
    got = s3.get_object(Bucket=bucket, Key=algorithm, ChecksumMode="ENABLED")
    assert got["Body"].read() == b"checked bytes" and got[f"Checksum{algorithm}"] == value
    assert f"Checksum{algorithm}" not in s3.head_object(Bucket=bucket, Key=algorithm)


def test_multipart_checksums_composite_and_full_object(s3, bucket: str) -> None:
    data = os.urandom(11 * MiB)
    for algorithm in ("CRC32", "CRC64NVME"):
        config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
        s3.upload_fileobj(
            io.BytesIO(data),
            bucket,
            algorithm,
            Config=config,
            ExtraArgs={"ChecksumAlgorithm": algorithm},
        )
        head = s3.head_object(Bucket=bucket, Key=algorithm, ChecksumMode="ENABLED")
        assert head[f"Checksum{algorithm}"]
        got = s3.get_object(Bucket=bucket, Key=algorithm, ChecksumMode="ENABLED")
        assert got["Body"].read() == data


def test_tagging(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as error:
        s3.get_bucket_tagging(Bucket=bucket)
    assert code(error) == ("NoSuchTagSet", 404)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "storage"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "storage"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_bucket_tagging(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="a=1&b=two%20words")
    tags = s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("a", "1"), ("b", "two words")]
    assert s3.get_object(Bucket=bucket, Key="t")["TagCount"] == 2
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "c", "Value": "3"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [{"Key": "c", "Value": "3"}]
    s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []
    with pytest.raises(ClientError) as error:
        s3.put_object_tagging(
            Bucket=bucket,
            Key="t",
            Tagging={"TagSet": [{"Key": "d", "Value": "1"}, {"Key": "d", "Value": "2"}]},
        )
    assert code(error) == ("InvalidTag", 400)


def test_presigned_get_and_put(karri: Karri, s3, bucket: str) -> None:
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60
    )
    status, _headers, _body = http("PUT", put_url, b"presigned body")
    assert status == 200
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60
    )
    assert http("GET", get_url)[2] == b"presigned body"
    expired = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=1
    )
    time.sleep(2)
    status, _headers, body = http("GET", expired)
    assert status == 403 and b"<Code>AccessDenied</Code>" in body
    v2 = karri.client("s3", signature_version="s3")
    url = v2.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60
    )
    assert "Signature=" in url and http("GET", url)[2] == b"presigned body"


def test_sigv2_header_auth(karri: Karri, bucket: str) -> None:
    v2 = karri.client("s3", signature_version="s3")
    v2.put_object(Bucket=bucket, Key="old client/ü", Body=b"v2")
    assert v2.get_object(Bucket=bucket, Key="old client/ü")["Body"].read() == b"v2"
    assert [o["Key"] for o in v2.list_objects(Bucket=bucket)["Contents"]] == ["old client/ü"]


def test_eucalyptus_objectstorage_path(karri: Karri, bucket: str) -> None:
    for path in ("/services/objectstorage", "/services/Walrus"):
        euca = _client_at(karri, karri.ec2_url + path)
        euca.put_object(Bucket=bucket, Key=f"via{path}", Body=b"euca")
        assert euca.get_object(Bucket=bucket, Key=f"via{path}")["Body"].read() == b"euca"
        assert f"via{path}" in [o["Key"] for o in euca.list_objects_v2(Bucket=bucket)["Contents"]]


def _client_at(karri: Karri, endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=karri.region,
        aws_access_key_id=karri.admin.access_key_id,
        aws_secret_access_key=karri.admin.secret_access_key,
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def test_unsigned_payload_client(karri: Karri, bucket: str) -> None:
    client = karri.client("s3", s3={"payload_signing_enabled": False})
    client.put_object(Bucket=bucket, Key="u", Body=b"unsigned")
    assert client.get_object(Bucket=bucket, Key="u")["Body"].read() == b"unsigned"


def test_concurrent_writes_share_commits_and_stay_consistent(karri: Karri, bucket: str) -> None:
    """Many clients at once: small (inline) and large objects, overwrites, deletes and a
    versioned bucket, all through the group commit; every answer matches what is stored."""
    from concurrent.futures import ThreadPoolExecutor

    client = karri.client("s3", max_pool_connections=32)
    versioned = unique()
    client.create_bucket(Bucket=versioned)
    client.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    bodies = {f"k{i:03d}": os.urandom(100 if i % 5 else 70 * 1024) for i in range(60)}

    def write(key: str) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=b"first")
        client.put_object(Bucket=bucket, Key=key, Body=bodies[key])
        client.put_object(Bucket=versioned, Key=key, Body=bodies[key])
        client.delete_object(Bucket=versioned, Key=key)
        if key.endswith("7"):
            client.delete_object(Bucket=bucket, Key=key)

    with ThreadPoolExecutor(24) as pool:
        list(pool.map(write, bodies))
    kept = {k: v for k, v in bodies.items() if not k.endswith("7")}
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert {o["Key"]: o["Size"] for o in listed} == {k: len(v) for k, v in kept.items()}
    for key, body in kept.items():
        got = client.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == body
        assert got["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    versions = client.list_object_versions(Bucket=versioned)
    assert len(versions["Versions"]) == len(bodies)
    assert len(versions["DeleteMarkers"]) == len(bodies)
    assert client.list_objects_v2(Bucket=versioned)["KeyCount"] == 0
    counts = json.loads(karri.cli("status", "--json").stdout)["counts"]
    assert counts["object versions"] >= len(kept) + 2 * len(bodies)
