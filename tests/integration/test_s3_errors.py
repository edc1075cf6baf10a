"""Every S3 error karri raises, by code and status; malformed requests never get a 500."""

from __future__ import annotations

import base64
import hashlib
import socket
import zlib
from email.utils import formatdate
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Karri
from tests.integration.s3_helpers import chunk_signatures, http, signed, unique


@pytest.fixture(scope="module")
def s3(karri: Karri):
    return karri.client("s3")


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    name = unique("errors")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="present", Body=b"0123456789")
    return name


def error_of(status_headers_body) -> tuple[int, str]:
    status, _headers, body = status_headers_body
    code = body.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode() if b"<Code>" in body else ""
    return status, code


def raw(karri: Karri, method: str, path: str, body: bytes = b"", headers=None, payload_hash=None):
    url = karri.s3_url + path
    signed_headers, _ = signed(karri.admin, method, url, body, headers, payload_hash)
    return http(method, url, body, signed_headers)


def test_error_document_shape(karri: Karri, bucket: str) -> None:
    status, headers, body = raw(karri, "GET", f"/{bucket}/missing")
    assert status == 404
    assert headers["x-amz-request-id"]
    for part in (
        b"<Code>NoSuchKey</Code>",
        b"<Message>",
        f"<Resource>/{bucket}/missing".encode(),
        b"<RequestId>",
    ):
        assert part in body


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda s3, b: s3.get_object(Bucket="no-such-bucket-here", Key="k"), ("NoSuchBucket", 404)),
        (lambda s3, b: s3.get_object(Bucket=b, Key="missing"), ("NoSuchKey", 404)),
        (lambda s3, b: s3.create_bucket(Bucket="Invalid_Name"), ("InvalidBucketName", 400)),
        (lambda s3, b: s3.create_bucket(Bucket="ab"), ("InvalidBucketName", 400)),
        (lambda s3, b: s3.put_object(Bucket=b, Key="k" * 1025, Body=b""), ("KeyTooLongError", 400)),
        (
            lambda s3, b: s3.get_object(Bucket=b, Key="present", VersionId="nonexistentversion1"),
            ("NoSuchVersion", 404),
        ),
        (lambda s3, b: s3.list_parts(Bucket=b, Key="k", UploadId="nope"), ("NoSuchUpload", 404)),
        (
            lambda s3, b: s3.get_object(Bucket=b, Key="present", Range="bytes=10-"),
            ("InvalidRange", 416),
        ),
        (lambda s3, b: s3.get_bucket_tagging(Bucket=b), ("NoSuchTagSet", 404)),
        (lambda s3, b: s3.get_bucket_policy(Bucket=b), ("NoSuchBucketPolicy", 404)),
        (
            lambda s3, b: s3.put_object(
                Bucket=b, Key="k", Body=b"x", ContentMD5=base64.b64encode(b"0" * 16).decode()
            ),
            ("BadDigest", 400),
        ),
        (
            lambda s3, b: s3.put_object(Bucket=b, Key="k", Body=b"x", ContentMD5="bm90LW1kNQ=="),
            ("InvalidDigest", 400),
        ),
        (
            lambda s3, b: s3.put_object(Bucket=b, Key="k", Body=b"x", Metadata={"m": "v" * 3000}),
            ("MetadataTooLarge", 400),
        ),
        (
            lambda s3, b: s3.put_object(Bucket=b, Key="k", Body=b"x", ACL="no-such-acl"),
            ("InvalidArgument", 400),
        ),
        (
            lambda s3, b: s3.put_object(Bucket=b, Key="k", Body=b"x", StorageClass="BOGUS"),
            ("InvalidStorageClass", 400),
        ),
        (
            lambda s3, b: s3.create_bucket(
                Bucket=unique("loc"), CreateBucketConfiguration={"LocationConstraint": "\u00e9"}
            ),
            ("InvalidLocationConstraint", 400),
        ),
        (
            lambda s3, b: s3.complete_multipart_upload(
                Bucket=b,
                Key="k",
                UploadId=s3.create_multipart_upload(Bucket=b, Key="k")["UploadId"],
                MultipartUpload={"Parts": [{"PartNumber": 0, "ETag": '"x"'}]},
            ),
            ("InvalidArgument", 400),
        ),
    ],
)
def test_client_errors(s3, bucket: str, call, expected) -> None:
    with pytest.raises(ClientError) as error:
        call(s3, bucket)
    response = error.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == expected


def test_bucket_names_are_global(karri: Karri, s3, other_account) -> None:
    name = unique("global")
    s3.create_bucket(Bucket=name)
    with pytest.raises(ClientError) as error:
        karri.client("s3", other_account).create_bucket(Bucket=name)
    assert error.value.response["Error"]["Code"] == "BucketAlreadyExists"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


def test_malformed_and_hostile_xml(karri: Karri, bucket: str) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<Delete><Object><Key>&lol2;</Key></Object></Delete>"
    )
    external = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Tagging>&e;</Tagging>'
    md5 = lambda body: {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}  # noqa: E731
    for path, body in (
        (f"/{bucket}?delete", b"<Delete><Object>"),
        (f"/{bucket}?delete", bomb),
        (f"/{bucket}?delete", b"<NotDelete/>"),
        (f"/{bucket}?tagging", external),
        (
            f"/{bucket}?versioning",
            b"<VersioningConfiguration><Status>Maybe</Status></VersioningConfiguration>",
        ),
    ):
        method = "POST" if "delete" in path else "PUT"
        assert error_of(raw(karri, method, path, body, md5(body))) == (400, "MalformedXML"), path


def test_payload_hash_mismatch_and_bad_signature(karri: Karri, bucket: str) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    assert error_of(raw(karri, "PUT", f"/{bucket}/h", b"body", payload_hash=wrong)) == (
        400,
        "XAmzContentSHA256Mismatch",
    )
    assert error_of(raw(karri, "PUT", f"/{bucket}/h", b"body", payload_hash="not-a-hash")) == (
        400,
        "InvalidArgument",
    )
    url = f"{karri.s3_url}/{bucket}/present"
    headers, _ = signed(karri.admin, "GET", url)
    headers["Authorization"] = headers["Authorization"][:-4] + "0000"
    assert error_of(http("GET", url, None, headers)) == (403, "SignatureDoesNotMatch")
    headers, _ = signed(karri.admin, "GET", url)
    headers["Authorization"] = headers["Authorization"].replace(
        karri.admin.access_key_id, "AKIANOSUCHKEY0000000"
    )
    assert error_of(http("GET", url, None, headers)) == (403, "InvalidAccessKeyId")
    headers, _ = signed(karri.admin, "GET", url)
    headers["X-Amz-Date"] = "20200101T000000Z"
    headers["Authorization"] = headers["Authorization"].replace(
        headers["Authorization"].split("/")[1], "20200101"
    )
    assert error_of(http("GET", url, None, headers))[0] == 403


def test_signed_aws_chunked_upload(karri: Karri, s3, bucket: str) -> None:
    chunks = [b"a" * 65536, b"b" * 1000]
    url = f"{karri.s3_url}/{bucket}/chunked"
    base = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(66536)}
    headers, _ = signed(
        karri.admin, "PUT", url, headers=base, payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    )
    body = chunk_signatures(karri.admin, headers, chunks)
    headers["Content-Length"] = str(len(body))
    status, _h, _b = http("PUT", url, body, headers)
    assert status == 200
    got = s3.get_object(Bucket=bucket, Key="chunked")
    assert got["Body"].read() == b"".join(chunks)
    assert "ContentEncoding" not in got  # aws-chunked is framing, not the object's encoding
    tampered = body.replace(b"b" * 10, b"c" * 10, 1)
    assert error_of(http("PUT", url, tampered, headers)) == (403, "SignatureDoesNotMatch")


def test_unsigned_trailer_upload_with_checksum(karri: Karri, s3, bucket: str) -> None:
    data = b"trailer checked " * 1000
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    url = f"{karri.s3_url}/{bucket}/trailer"
    base = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    headers, _ = signed(
        karri.admin, "PUT", url, headers=base, payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    )

    def framed(checksum: str) -> bytes:
        return (
            f"{len(data):x}\r\n".encode()
            + data
            + b"\r\n0\r\n"
            + f"x-amz-checksum-crc32:{checksum}\r\n\r\n".encode()
        )

    assert http("PUT", url, framed(crc), headers)[0] == 200
    head = s3.head_object(Bucket=bucket, Key="trailer", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc and head["ContentLength"] == len(data)
    assert error_of(http("PUT", url, framed("AAAAAA=="), headers)) == (400, "BadDigest")
    assert error_of(http("PUT", url, b"zz\r\nnot chunked", headers))[0] == 400


def test_wrong_flexible_checksum(karri: Karri, bucket: str) -> None:
    headers = {
        "x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    }
    assert error_of(raw(karri, "PUT", f"/{bucket}/cs", b"body", headers)) == (400, "BadDigest")


def test_garbage_requests_are_4xx(karri: Karri, bucket: str) -> None:
    for method, path, headers in (
        ("GET", f"/{bucket}/%ff%fe", {}),
        ("GET", f"/{bucket}?list-type=2&max-keys=-1", {}),
        ("GET", f"/{bucket}?list-type=2&continuation-token=%%%", {}),
        ("GET", f"/{bucket}?encoding-type=base64", {}),
        ("PUT", f"/{bucket}/p?partNumber=0&uploadId=x", {}),
        ("GET", f"/{bucket}/present", {"Range": "bytes=5-1"}),
        ("PUT", f"/{bucket}/big", {"x-amz-meta-big": "x" * 70000}),
    ):
        status = raw(karri, method, path, b"", headers)[0]
        assert 400 <= status < 500 or (path.endswith("present") and status == 200), (path, status)
    anonymous = http("PUT", f"{karri.s3_url}/{bucket}/anon", b"x", {"Authorization": "Bearer nope"})
    assert error_of(anonymous)[0] == 400


def test_odd_numbers_dates_and_signatures_are_4xx(karri: Karri, s3, bucket: str) -> None:
    """Values that passed a check and then broke a conversion answered 500 once."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    ak = karri.admin.access_key_id
    for method, path, body, headers, expected in (
        ("GET", f"/{bucket}/present", b"", {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00"}, 200),
        ("GET", f"/{bucket}/present?partNumber=%C2%B2", b"", {}, 416),
        ("PUT", f"/{bucket}/mp?partNumber=%C2%B2&uploadId={upload}", b"x", {}, 400),
        ("GET", f"/{bucket}/present", b"", {"Range": "bytes=0-" + "9" * 5000}, 200),
        (
            "PUT",
            f"/{bucket}/mp?partNumber=1&uploadId={upload}",
            b"",
            {
                "x-amz-copy-source": f"/{bucket}/present",
                "x-amz-copy-source-range": "bytes=0-" + "9" * 5000,
            },
            400,
        ),
        ("PUT", f"/{bucket}?versioning", b'<?xml version="1.0" encoding="x-nope"?><V/>', {}, 400),
    ):
        status = raw(karri, method, path, body, headers)[0]
        assert status == expected, (path, headers, status)
    future, now = "99991231T235959Z", formatdate(usegmt=True)
    for path, headers in (
        (f"/{bucket}/present", {"Authorization": f"AWS {ak}:\u00e9", "Date": now}),
        (f"/{bucket}/present?AWSAccessKeyId={ak}&Expires=9999999999&Signature=%C3%A9", {}),
        (f"/{bucket}/present?AWSAccessKeyId={ak}&Expires=%C2%B2&Signature=x", {}),
        (
            f"/{bucket}/present?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={ak}/99991231/"
            f"eucalyptus/s3/aws4_request&X-Amz-Date={future}&X-Amz-Expires=604800"
            "&X-Amz-SignedHeaders=host&X-Amz-Signature=aaaa",
            {},
        ),
    ):
        status, _headers, answer = http("GET", karri.s3_url + path, None, headers)
        assert 400 <= status < 500 and b"<Error>" in answer, (path, status, answer[:200])
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload)


def test_an_http_chunked_body_is_not_implemented(karri: Karri, bucket: str) -> None:
    """S3 takes no ``Transfer-Encoding: chunked`` body (aws-chunked is its way)."""
    url = f"{karri.s3_url}/{bucket}/chunked"
    headers, _ = signed(karri.admin, "PUT", url, b"", payload_hash="UNSIGNED-PAYLOAD")
    headers["Transfer-Encoding"] = "chunked"
    head = f"PUT /{bucket}/chunked HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n5\r\nhello\r\n0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 501 "), answer
    assert b"<Code>NotImplemented</Code>" in answer


@pytest.mark.parametrize(
    "query",
    ["max-keys=1_0", "max-keys=%2B5", "max-keys=%D9%A5", "list-type=2&continuation-token="],
)
def test_listing_parameters_are_strict(karri: Karri, bucket: str, query: str) -> None:
    """Python's int() takes "1_0", "+5" and Arabic-Indic digits; S3 does not."""
    url = f"{karri.s3_url}/{bucket}?{query}"
    headers, _ = signed(karri.admin, "GET", url)
    assert error_of(http("GET", url, b"", headers)) == (400, "InvalidArgument")


@pytest.mark.parametrize("expires", ["604801", "-1", "1e3"])
def test_a_presigned_url_out_of_bounds_is_a_query_error(s3, bucket: str, expires: str) -> None:
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    assert "X-Amz-Expires=3600" in url
    bad = url.replace("X-Amz-Expires=3600", f"X-Amz-Expires={expires}")
    assert error_of(http("GET", bad)) == (400, "AuthorizationQueryParametersError")


ALIEN_GRANT = (
    b'<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<AccessControlList><Grant>"
    b'<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Alien">'
    b"<ID>123456789012</ID></Grantee><Permission>READ</Permission>"
    b"</Grant></AccessControlList></AccessControlPolicy>"
)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"x-amz-grant-read": 'id="doesnotexist"'}, b"", "InvalidArgument"),
        ({"x-amz-grant-read": "nonsense"}, b"", "InvalidArgument"),
        ({}, ALIEN_GRANT, "MalformedACLError"),
    ],
)
def test_bad_grants(karri: Karri, s3, bucket: str, headers: dict, body: bytes, expected) -> None:
    s3.put_object(Bucket=bucket, Key="granted", Body=b"g")
    url = f"{karri.s3_url}/{bucket}/granted?acl"
    signed_headers, _ = signed(karri.admin, "PUT", url, body, headers)
    assert error_of(http("PUT", url, body, signed_headers)) == (400, expected)


def tagging(tags: str) -> bytes:
    return f"<Tagging><TagSet>{tags}</TagSet></Tagging>".encode()


@pytest.mark.parametrize(
    "body",
    [
        tagging("<Tag><Key>a</Key><Key>b</Key><Value>v</Value></Tag>"),
        tagging("<Tag><Key>a</Key><Value>v</Value><Extra/></Tag>"),
        tagging("<Tag><Key>a</Key><Value>v</Value></Tag><Other/>"),
        b"<Tagging><TagSet/><TagSet/></Tagging>",
    ],
)
def test_tagging_documents_follow_the_schema(karri: Karri, bucket: str, body: bytes) -> None:
    url = f"{karri.s3_url}/{bucket}?tagging"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    headers, _ = signed(karri.admin, "PUT", url, body, {"Content-MD5": md5})
    assert error_of(http("PUT", url, body, headers)) == (400, "MalformedXML")


def test_a_tagging_header_must_be_utf8(karri: Karri, bucket: str) -> None:
    url = f"{karri.s3_url}/{bucket}/tagged"
    headers, _ = signed(karri.admin, "PUT", url, b"x", {"x-amz-tagging": "a=%ff"})
    assert error_of(http("PUT", url, b"x", headers)) == (400, "InvalidArgument")
