"""The S3 protocol's pure pieces: aws-chunked decoding, SigV2 strings, ranges, conditions,
XML, POST forms, listings, ACLs and checksum arithmetic."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from awscrt import checksums as crt

from karri.api.auth.matching import signature_matches
from karri.api.s3 import xml
from karri.api.s3.auth import ChunkSigning, Payload, _v2_strings
from karri.api.s3.headers import check_conditions, parse_range, without_aws_chunked
from karri.api.s3.payload import BodyCheck, ChunkedDecoder
from karri.api.s3.post import FormParser, check_policy
from karri.numbers import hexadecimal, natural
from karri.walrus import acl as acls
from karri.walrus.checksums import Digests, composite_checksum, crc_combine, full_object_crc
from karri.walrus.errors import S3Error
from karri.walrus.listing import scan, successor
from karri.walrus.names import check_key, valid_bucket_name
from karri.walrus.types import ObjectInfo

EMPTY = hashlib.sha256(b"").hexdigest()


def signed_chunks(key: bytes, seed: str, chunks: list[bytes]) -> bytes:
    previous, body = seed, b""
    for chunk in [*chunks, b""]:
        digest = hashlib.sha256(chunk).hexdigest()
        text = f"AWS4-HMAC-SHA256-PAYLOAD\nT\nS\n{previous}\n{EMPTY}\n{digest}"
        previous = hmac.new(key, text.encode(), "sha256").hexdigest()
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk + b"\r\n"
    return body


def decode(body: bytes, signing: ChunkSigning | None, step: int) -> bytes:
    out = bytearray()
    decoder = ChunkedDecoder(lambda data: out.extend(data), signing)
    for i in range(0, len(body), step):
        decoder.feed(body[i : i + step])
    decoder.close()
    return bytes(out)


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_signed_chunks_decode_in_any_split(step: int) -> None:
    signing = ChunkSigning(b"k" * 32, "S", "T", "seed")
    chunks = [os.urandom(10_000), os.urandom(3)]
    body = signed_chunks(signing.key, "seed", chunks)
    assert decode(body, signing, step) == b"".join(chunks)


def test_tampered_or_unsigned_chunks_are_rejected() -> None:
    signing = ChunkSigning(b"k" * 32, "S", "T", "seed")
    body = signed_chunks(signing.key, "seed", [b"hello world"])
    with pytest.raises(S3Error) as error:
        decode(body.replace(b"hello", b"jello"), signing, 4096)
    assert error.value.code == "SignatureDoesNotMatch"
    with pytest.raises(S3Error):
        decode(b"b\r\nhello world\r\n0\r\n\r\n", signing, 4096)


def test_unsigned_trailer_and_checks() -> None:
    data = b"trailing" * 100
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    body = (
        f"{len(data):x}\r\n".encode()
        + data
        + f"\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    )
    header = {
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(data)),
    }
    digests = Digests(checksums=["CRC32"])
    out = bytearray()
    check = BodyCheck(
        Payload(chunked=True, trailer=True),
        header,
        lambda d: (digests.update(d), out.extend(d)),
        digests,
    )
    check.feed(body)
    assert check.finish() == {"CRC32": crc} and bytes(out) == data
    other = Digests(checksums=["CRC32"])
    bad = BodyCheck(Payload(chunked=True, trailer=True), header, other.update, other)
    bad.feed(body.replace(crc.encode(), b"AAAAAA=="))
    with pytest.raises(S3Error) as error:
        bad.finish()
    assert error.value.code == "BadDigest"
    for garbage in (b"zz\r\n", b"5\r\nhello\r\n", b"5\r\nhelloXX"):
        broken = BodyCheck(Payload(chunked=True), {}, lambda d: None, Digests())
        with pytest.raises(S3Error):
            broken.feed(garbage)
            broken.finish()


def test_content_md5_and_declared_sha256() -> None:
    digests = Digests(sha256=True)
    check = BodyCheck(
        Payload(sha256=hashlib.sha256(b"abc").hexdigest()),
        {"content-md5": base64.b64encode(hashlib.md5(b"abc").digest()).decode()},
        digests.update,
        digests,
    )
    check.feed(b"abc")
    check.finish()
    digests = Digests(sha256=True)
    check = BodyCheck(Payload(sha256=EMPTY), {}, digests.update, digests)
    check.feed(b"abc")
    with pytest.raises(S3Error) as error:
        check.finish()
    assert error.value.code == "XAmzContentSHA256Mismatch"


def test_sigv2_string_to_sign() -> None:
    header = {
        "content-type": "text/plain",
        "date": "Tue, 27 Mar 2007 21:15:45 +0000",
        "x-amz-meta-a": " b ",
    }
    strings = list(_v2_strings("PUT", [("acl", ""), ("foo", "1")], header, "/bucket/a%20b", None))
    assert (
        strings[0]
        == "PUT\n\ntext/plain\nTue, 27 Mar 2007 21:15:45 +0000\nx-amz-meta-a:b\n/bucket/a%20b?acl"
    )
    assert "/bucket/a b?acl" in strings[-1]
    presigned = next(_v2_strings("GET", [], {"x-amz-date": "x"}, "/b/", "1700000000"))
    assert presigned.split("\n")[3] == "1700000000"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes=0-0", (0, 1)),
        ("bytes=5-", (5, 10)),
        ("bytes=-3", (7, 10)),
        ("bytes=8-100", (8, 10)),
        ("bytes=5-2", None),
        ("bytes=a-b", None),
        ("bytes=0-1,3-4", None),
        ("bytes=\u00b2-", None),  # a digit to str.isdigit, not to int
        ("bytes=0-" + "9" * 5000, None),  # past what int() reads
        (None, None),
    ],
)
def test_ranges(value, expected) -> None:
    assert parse_range(value, 10) == expected


def test_unsatisfiable_ranges() -> None:
    for value, size in (("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0)):
        with pytest.raises(S3Error) as error:
            parse_range(value, size)
        assert (error.value.code, error.value.status) == ("InvalidRange", 416)


def test_conditions() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    info = ObjectInfo("b", "k", "null", 1, "abc", now, "o")
    later = (now + timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    earlier = (now - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert check_conditions({"if-match": '"abc"'}, info) == 0
    assert check_conditions({"if-match": '"x", "abc"'}, info) == 0
    assert check_conditions({"if-match": '"x"'}, info) == 412
    assert check_conditions({"if-none-match": "*"}, info) == 304
    assert check_conditions({"if-unmodified-since": earlier}, info) == 412
    assert check_conditions({"if-modified-since": earlier}, info) == 0
    assert check_conditions({"if-match": '"abc"', "if-unmodified-since": earlier}, info) == 0
    assert (
        check_conditions({"x-amz-copy-source-if-none-match": '"abc"'}, info, "x-amz-copy-source-")
        == 412
    )
    del later


def test_conditions_with_odd_dates() -> None:
    """A date without a zone is UTC; one S3 cannot read is ignored; none is a server error."""
    now = datetime.now(UTC).replace(microsecond=0)
    info = ObjectInfo("b", "k", "null", 1, "abc", now, "o")
    earlier = (now - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S")
    assert check_conditions({"if-unmodified-since": earlier}, info) == 412
    assert check_conditions({"if-unmodified-since": earlier + " -0000"}, info) == 412
    for value in ("Fri, 31 Dec 9999 23:59:59 -1400", "yesterday", "Mon, 99 Jan 2001 00:00:00"):
        assert check_conditions({"if-modified-since": value}, info) == 0
        assert check_conditions({"if-unmodified-since": value}, info) == 0


def test_numbers_in_requests() -> None:
    assert natural("0042") == 42
    for text in ("", " 5", "+5", "-5", "1_0", "\u00b2", "\u0665", "9" * 31):
        assert natural(text) is None, text
    assert hexadecimal("1fA") == 0x1FA
    for text in ("0x5", "0_5", " 5", "-1", "", "1" * 17):
        assert hexadecimal(text) is None, text


def test_signatures_with_other_characters_never_match() -> None:
    assert signature_matches("abc", "abc")
    assert not signature_matches("abc", "\u00e9bc")
    assert not signature_matches("abc", "\ud800")


def test_xml_parsing_refuses_entities_and_bombs() -> None:
    assert xml.text(xml.parse(b"<Tagging><TagSet/></Tagging>", "Tagging"), "TagSet") == ""
    for body in (
        b'<!DOCTYPE x [<!ENTITY a "b">]><Tagging>&a;</Tagging>',
        b"<Tagging>",
        b"",
        b"<Other/>",
        b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><Tagging/>',
        b'<?xml version="1.0" encoding="x-nope"?><Tagging/>',
    ):
        with pytest.raises(S3Error) as error:
            xml.parse(body, "Tagging")
        assert error.value.code == "MalformedXML"
    assert xml.esc('<a & "b">') == "&lt;a &amp; &quot;b&quot;&gt;"


def test_form_parser_streams_the_file() -> None:
    data = os.urandom(100_000) + b"\r\n--bound"  # looks like a boundary, but is not one
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="key"\r\n\r\nuploads/${filename}\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        b"Content-Type: image/png\r\n\r\n" + data + b"\r\n--XyZ\r\n"
        b'Content-Disposition: form-data; name="ignored"\r\n\r\nafter\r\n--XyZ--\r\n'
    )
    received = bytearray()
    seen: list[dict] = []

    def start_file(fields: dict):
        seen.append(dict(fields))
        return received.extend

    parser = FormParser(b"XyZ", start_file)
    for i in range(0, len(body), 333):
        parser.feed(body[i : i + 333])
    assert bytes(received) == data
    assert parser.fields == seen[0] == {"key": "uploads/${filename}"}
    assert (parser.filename, parser.file_type) == ("a.bin", "image/png")


def test_post_policy_conditions() -> None:
    expiration = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    policy = {
        "expiration": expiration,
        "conditions": [
            {"bucket": "b"},
            ["starts-with", "$key", "up/"],
            ["content-length-range", 1, 10],
        ],
    }
    check_policy(policy, {"key": "up/x"}, "b", 5)
    for fields, bucket, size in (
        ({"key": "down/x"}, "b", 5),
        ({"key": "up/x"}, "other", 5),
        ({"key": "up/x", "x-amz-meta-extra": "1"}, "b", 5),
    ):
        with pytest.raises(S3Error) as error:
            check_policy(policy, fields, bucket, size)
        assert error.value.code == "AccessDenied"
    with pytest.raises(S3Error) as error:
        check_policy(policy, {"key": "up/x"}, "b", 11)
    assert error.value.code == "EntityTooLarge"
    expired = dict(policy, expiration="2000-01-01T00:00:00Z")
    with pytest.raises(S3Error):
        check_policy(expired, {"key": "up/x"}, "b", 5)


@pytest.mark.parametrize(
    "change",
    [
        {"conditions": 5},
        {"conditions": [["content-length-range", "a", "b"]]},
        {"conditions": [["content-length-range", None, 5]]},
        {"conditions": [["content-length-range", 0, "9" * 5000]]},
        {"conditions": [["content-length-range", 0.5, 1e300]]},
        {"conditions": [["foo", "$key", ""]]},
        {"expiration": "9999-12-31T23:59:59-14:00"},
    ],
)
def test_broken_policies_are_invalid_documents(change: dict) -> None:
    expiration = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    policy = {"expiration": expiration, "conditions": [{"bucket": "b"}]} | change
    with pytest.raises(S3Error) as error:
        check_policy(policy, {"key": "k"}, "b", 5)
    assert (error.value.code, error.value.status) == ("InvalidPolicyDocument", 400)


def test_scan_groups_common_prefixes_and_pages() -> None:
    keys = sorted(["a/1", "a/2", "b", "c/x/1", "c/y", "d"])

    def fetcher(prefix: str):
        def fetch(lower, inclusive, _resume, limit):
            found = [k for k in keys if k.startswith(prefix)]
            return [k for k in found if (k >= lower if inclusive else k > lower)][:limit]

        return fetch

    fetch = fetcher("")

    rows, prefixes, truncated, _ = scan(
        fetch, str, prefix="", delimiter="/", after="", max_keys=100
    )
    assert (rows, prefixes, truncated) == (["b", "d"], ["a/", "c/"], False)
    rows, prefixes, truncated, last = scan(
        fetch, str, prefix="", delimiter="/", after="", max_keys=2
    )
    assert (rows, prefixes, truncated, last) == (["b"], ["a/"], True, "b")
    rows, prefixes, truncated, _ = scan(
        fetch, str, prefix="", delimiter="/", after="a/", max_keys=100
    )
    assert (rows, prefixes) == (["b", "d"], ["c/"])
    rows, prefixes, _, _ = scan(
        fetcher("c/"), str, prefix="c/", delimiter="/", after="", max_keys=100
    )
    assert (rows, prefixes) == (["c/y"], ["c/x/"])
    assert successor("a/") == "a0"


def test_names() -> None:
    assert valid_bucket_name("my-bucket.1")
    for bad in ("ab", "A-bucket", "bucket_", "-bucket", "a..b", "192.168.1.1", "xn--x", "b" * 64):
        assert not valid_bucket_name(bad)
    check_key("../../etc/passwd")
    for bad, code in (("", "InvalidArgument"), ("é" * 513, "KeyTooLongError")):
        with pytest.raises(S3Error) as error:
            check_key(bad)
        assert error.value.code == code


def test_canned_acls() -> None:
    public = acls.canned("public-read", "1", bucket=True)
    assert acls.allows(public, "", acls.READ) and not acls.allows(public, "", acls.WRITE)
    exec_read = acls.canned("aws-exec-read", "1", bucket=False)
    assert acls.allows(exec_read, acls.CLOUD, acls.READ) and not acls.allows(
        exec_read, "2", acls.READ
    )
    owner_full = acls.canned("bucket-owner-full-control", "2", "1", bucket=False)
    assert acls.allows(owner_full, "1", acls.READ) and acls.allows(owner_full, "1", acls.WRITE_ACP)
    authenticated = acls.canned("authenticated-read", "1", bucket=False)
    assert acls.allows(authenticated, "3", acls.READ) and not acls.allows(
        authenticated, "", acls.READ
    )
    with pytest.raises(S3Error):
        acls.canned("bucket-owner-read", "1", bucket=True)


def test_checksum_arithmetic() -> None:
    a, b = os.urandom(1000), os.urandom(3000)
    for name, fn, bits in (
        ("CRC32", zlib.crc32, 4),
        ("CRC32C", crt.crc32c, 4),
        ("CRC64NVME", crt.crc64nvme, 8),
    ):
        assert crc_combine(name, fn(a), fn(b), len(b)) == fn(a + b)
        parts = [(base64.b64encode(fn(p).to_bytes(bits, "big")).decode(), len(p)) for p in (a, b)]
        assert (
            full_object_crc(name, parts)
            == base64.b64encode(fn(a + b).to_bytes(bits, "big")).decode()
        )
    values = [base64.b64encode(hashlib.sha256(p).digest()).decode() for p in (a, b)]
    composite = composite_checksum("SHA256", values)
    raw = hashlib.sha256(hashlib.sha256(a).digest() + hashlib.sha256(b).digest()).digest()
    assert composite == base64.b64encode(raw).decode() + "-2"


def test_signed_chunks_with_a_signed_trailer() -> None:
    signing = ChunkSigning(b"k" * 32, "S", "T", "seed")
    data = b"signed and trailed"
    body = signed_chunks(signing.key, "seed", [data])
    previous = body.rsplit(b"chunk-signature=", 1)[1].split(b"\r\n", 1)[0].decode()
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    canonical = f"x-amz-checksum-crc32:{crc}\n"
    text = (
        f"AWS4-HMAC-SHA256-TRAILER\nT\nS\n{previous}\n"
        f"{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    signature = hmac.new(signing.key, text.encode(), "sha256").hexdigest()
    framed = body[:-2] + f"{canonical}x-amz-trailer-signature:{signature}\r\n\r\n".encode()
    digests = Digests(checksums=["CRC32"])
    payload = Payload(chunked=True, signing=signing, trailer=True)
    check = BodyCheck(payload, {"x-amz-trailer": "x-amz-checksum-crc32"}, digests.update, digests)
    check.feed(framed)
    assert check.finish() == {"CRC32": crc}
    forged = framed.replace(signature.encode(), b"0" * 64)
    digests = Digests(checksums=["CRC32"])
    check = BodyCheck(payload, {"x-amz-trailer": "x-amz-checksum-crc32"}, digests.update, digests)
    with pytest.raises(S3Error) as error:
        check.feed(forged)
        check.finish()
    assert error.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("aws-chunked", ""),
        ("aws-chunked, gzip", "gzip"),
        ("gzip, aws-chunked", "gzip"),
        ("gzip,  aws-chunked , br", "gzip, br"),
        ("gzip, br", "gzip, br"),
        (" gzip ,br ", " gzip ,br "),
        ("AWS-Chunked,identity", "identity"),
    ],
)
def test_aws_chunked_leaves_the_content_encoding_as_sent(sent: str, kept: str) -> None:
    assert without_aws_chunked(sent) == kept
