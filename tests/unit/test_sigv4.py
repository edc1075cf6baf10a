"""SigV4 verification against AWS's published vectors and botocore's own signer."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from karri.api.auth import sigv4
from karri.api.auth.credentials import KeyStore, Principal, SigningKey
from karri.api.auth.errors import (
    MalformedAuthentication,
    RequestExpired,
    SignatureMismatch,
    UnknownAccessKey,
)

# The credentials of AWS's signature test suite and documentation examples.
SUITE_KEY, SUITE_SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
DOCS_KEY, DOCS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SUITE_TIME = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)


def keys(**secrets: str) -> KeyStore:
    def load(access_key_id: str) -> SigningKey | None:
        secret = secrets.get(access_key_id)
        return (
            SigningKey(secret, Principal(access_key_id, "123456789012", "acct")) if secret else None
        )

    return KeyStore(load)


STORE = keys(**{SUITE_KEY: SUITE_SECRET, DOCS_KEY: DOCS_SECRET})


def suite_request(
    query: list[tuple[str, str]],
    headers: list[tuple[str, str]],
    signature: str,
    service: str = "service",
    signed: str = "host;x-amz-date",
) -> sigv4.HttpRequest:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={SUITE_KEY}/20150830/us-east-1/{service}/aws4_request, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return sigv4.HttpRequest(
        "GET",
        "/",
        query,
        [*headers, ("x-amz-date", "20150830T123600Z"), ("authorization", authorization)],
    )


def test_signing_key_derivation_vector() -> None:
    """AWS's documented example of deriving a signing key."""
    key = sigv4.signing_key(SUITE_SECRET, "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def test_suite_get_vanilla() -> None:
    request = suite_request(
        [],
        [("host", "example.amazonaws.com")],
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    )
    verified = sigv4.verify(request, STORE, sigv4.EMPTY_SHA256, now=SUITE_TIME)
    assert verified.principal.access_key_id == SUITE_KEY
    assert verified.scope.text == "20150830/us-east-1/service/aws4_request"


def test_suite_query_order() -> None:
    """Parameters are sorted for signing whatever order they came in."""
    request = suite_request(
        [("Param2", "value2"), ("Param1", "value1")],
        [("host", "example.amazonaws.com")],
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    )
    assert sigv4.verify(request, STORE, sigv4.EMPTY_SHA256, now=SUITE_TIME)


def test_documented_iam_list_users() -> None:
    request = suite_request(
        [("Action", "ListUsers"), ("Version", "2010-05-08")],
        [
            ("host", "iam.amazonaws.com"),
            ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
        ],
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        service="iam",
        signed="content-type;host;x-amz-date",
    )
    assert sigv4.verify(request, STORE, sigv4.EMPTY_SHA256, now=SUITE_TIME)


def test_documented_presigned_url() -> None:
    """The S3 documentation's presigned GET (query-string authentication)."""
    query = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", f"{DOCS_KEY}/20130524/us-east-1/s3/aws4_request"),
        ("X-Amz-Date", "20130524T000000Z"),
        ("X-Amz-Expires", "86400"),
        ("X-Amz-SignedHeaders", "host"),
        ("X-Amz-Signature", "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
    ]
    request = sigv4.HttpRequest(
        "GET", "/test.txt", query, [("host", "examplebucket.s3.amazonaws.com")]
    )
    signed_at = datetime(2013, 5, 24, tzinfo=UTC)
    assert sigv4.verify(
        request, STORE, sigv4.UNSIGNED_PAYLOAD, s3=True, now=signed_at + timedelta(hours=1)
    )
    with pytest.raises(RequestExpired):
        sigv4.verify(
            request, STORE, sigv4.UNSIGNED_PAYLOAD, s3=True, now=signed_at + timedelta(days=2)
        )


def botocore_signed(
    body: bytes,
    *,
    secret: str = DOCS_SECRET,
    url: str = "http://127.0.0.1:8773/",
    method: str = "POST",
) -> tuple[sigv4.HttpRequest, str]:
    """A request as botocore signs it, in the parts the server sees."""
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(DOCS_KEY, secret), "ec2", "eucalyptus").add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    headers = [(k.lower(), v) for k, v in prepared.headers.items()]
    headers.append(("host", parts.netloc))
    return (
        sigv4.HttpRequest(
            method, parts.path or "/", parse_qsl(parts.query, keep_blank_values=True), headers
        ),
        hashlib.sha256(body).hexdigest(),
    )


def test_botocore_signed_post_with_unicode() -> None:
    body = b"Action=CreateTags&Tag.1.Value=%C3%A9%20%E2%98%83%20%2F%2B%3D%26"
    request, payload = botocore_signed(body)
    assert sigv4.verify(request, STORE, payload).principal.access_key_id == DOCS_KEY
    tampered = body.replace(b"CreateTags", b"DeleteTags")
    with pytest.raises(SignatureMismatch):
        sigv4.verify(request, STORE, hashlib.sha256(tampered).hexdigest())


def test_botocore_signed_get_with_repeated_and_empty_parameters() -> None:
    request, payload = botocore_signed(
        b"",
        url="http://127.0.0.1:8773/services/compute?A=1&A=2&Empty=&B=%F0%9D%84%9E",
        method="GET",
    )
    assert sigv4.verify(request, STORE, payload)


def test_botocore_presigned_query() -> None:
    request = AWSRequest(
        method="GET", url="http://127.0.0.1:8773/", params={"Action": "DescribeRegions", "X": "é /"}
    )
    SigV4QueryAuth(Credentials(DOCS_KEY, DOCS_SECRET), "ec2", "eucalyptus", expires=60).add_auth(
        request
    )
    parts = urlsplit(request.prepare().url)
    http = sigv4.HttpRequest("GET", "/", parse_qsl(parts.query), [("host", parts.netloc)])
    assert sigv4.is_presigned(http)
    assert sigv4.verify(http, STORE, sigv4.EMPTY_SHA256)
    with pytest.raises(RequestExpired):
        sigv4.verify(http, STORE, sigv4.EMPTY_SHA256, now=datetime.now(UTC) + timedelta(minutes=2))


def test_failures() -> None:
    request, payload = botocore_signed(b"Action=DescribeRegions", secret="wrong" * 8)
    with pytest.raises(SignatureMismatch):
        sigv4.verify(request, STORE, payload)
    with pytest.raises(UnknownAccessKey):
        sigv4.verify(request, keys(), payload)
    request, payload = botocore_signed(b"Action=DescribeRegions")
    for skew in (timedelta(minutes=16), -timedelta(minutes=16)):
        with pytest.raises(RequestExpired):
            sigv4.verify(request, STORE, payload, now=datetime.now(UTC) + skew)
    assert sigv4.verify(request, STORE, payload, now=datetime.now(UTC) + timedelta(minutes=14))


@pytest.mark.parametrize(
    ("credential", "signed"),
    [
        ("AKIDEXAMPLE/2015083/us-east-1/service/aws4_request", "host;x-amz-date"),  # date
        ("AKIDEXAMPLE/20150830/us-east-1/service/wrong", "host;x-amz-date"),  # terminator
        ("AKIDEXAMPLE/20150830/us-east-1/service/aws4_request", "x-amz-date"),  # host unsigned
        ("AKIDEXAMPLE/20150831/us-east-1/service/aws4_request", "host;x-amz-date"),  # not today
        ("AKIDEXAMPLE/20150830/us-east-1/service/aws4_request", ""),  # no signed headers
    ],
)
def test_malformed_authorization(credential: str, signed: str) -> None:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={'0' * 64}"
    )
    headers = [("host", "h"), ("x-amz-date", "20150830T123600Z"), ("authorization", authorization)]
    request = sigv4.HttpRequest("GET", "/", [], headers)
    with pytest.raises(MalformedAuthentication):
        sigv4.verify(request, STORE, sigv4.EMPTY_SHA256, now=SUITE_TIME)


def test_authorization_without_signature_is_malformed() -> None:
    authorization = f"AWS4-HMAC-SHA256 Credential={SUITE_KEY}/20150830/us-east-1/s/aws4_request"
    request = sigv4.HttpRequest(
        "GET",
        "/",
        [],
        [("host", "h"), ("x-amz-date", "20150830T123600Z"), ("authorization", authorization)],
    )
    with pytest.raises(MalformedAuthentication):
        sigv4.verify(request, STORE, sigv4.EMPTY_SHA256, now=SUITE_TIME)


def test_presigned_expiry_bounds() -> None:
    base = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", f"{DOCS_KEY}/20130524/us-east-1/s3/aws4_request"),
        ("X-Amz-Date", "20130524T000000Z"),
        ("X-Amz-SignedHeaders", "host"),
        ("X-Amz-Signature", "0" * 64),
    ]
    for expires in ("0", "604801", "soon"):
        request = sigv4.HttpRequest(
            "GET", "/", [*base, ("X-Amz-Expires", expires)], [("host", "h")]
        )
        with pytest.raises(MalformedAuthentication):
            sigv4.verify(request, STORE, sigv4.EMPTY_SHA256, now=datetime(2013, 5, 24, tzinfo=UTC))


def test_canonical_query_encodes_as_rfc3986() -> None:
    assert sigv4.canonical_query([("b", "x y"), ("a", "é/+~*"), ("a", "")]) == (
        "a=&a=%C3%A9%2F%2B~%2A&b=x%20y"
    )
