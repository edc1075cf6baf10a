"""SigV2 verification: AWS's documented example, botocore's signer, both hash methods."""

from __future__ import annotations

import base64
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from botocore.auth import SigV2Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from karri.api.auth import sigv2
from karri.api.auth.credentials import KeyStore, Principal, SigningKey
from karri.api.auth.errors import (
    MalformedAuthentication,
    RequestExpired,
    SignatureMismatch,
    UnknownAccessKey,
)

KEY, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
STORE = KeyStore(
    lambda k: SigningKey(SECRET, Principal(k, "123456789012", "acct")) if k == KEY else None
)


def check(method: str, host: str, path: str, params: dict[str, str], **kw):
    return sigv2.verify(method, host, path, params, list(params.items()), STORE, **kw)


def test_documented_example() -> None:
    """The SigV2 example of AWS's general reference (Elastic MapReduce DescribeJobFlows)."""
    params = {
        "Action": "DescribeJobFlows",
        "Version": "2009-03-31",
        "AWSAccessKeyId": KEY,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Timestamp": "2011-10-03T15:19:30",
        "Signature": "i91nKc4PWAt0JJIdXwz9HxZCJDdiy6cf/Mj6vPxyYIs=",
    }
    now = datetime(2011, 10, 3, 15, 20, tzinfo=UTC)
    principal = check("GET", "elasticmapreduce.amazonaws.com", "/", params, now=now)
    assert principal.access_key_id == KEY
    with pytest.raises(SignatureMismatch):
        check("POST", "elasticmapreduce.amazonaws.com", "/", params, now=now)
    with pytest.raises(RequestExpired):
        check("GET", "elasticmapreduce.amazonaws.com", "/", params, now=now + timedelta(hours=1))


def botocore_v2(params: dict[str, str], url: str = "http://127.0.0.1:8773/services/Eucalyptus"):
    request = AWSRequest(method="POST", url=url, data=dict(params))
    SigV2Auth(Credentials(KEY, SECRET)).add_auth(request)
    return request.data


def test_botocore_signed_with_unicode_and_reserved_characters() -> None:
    params = botocore_v2({"Action": "CreateTags", "Tag.1.Value": "é ☃ /+=&?%*~", "Empty": ""})
    assert params["SignatureMethod"] == "HmacSHA256"
    assert check("POST", "127.0.0.1:8773", "/services/Eucalyptus", params)
    with pytest.raises(SignatureMismatch):
        check("POST", "127.0.0.1:8773", "/services/compute", params)


def hand_signed(method: str, digest: str, host: str) -> dict[str, str]:
    params = {
        "Action": "DescribeRegions",
        "AWSAccessKeyId": KEY,
        "SignatureVersion": "2",
        "SignatureMethod": {"sha256": "HmacSHA256", "sha1": "HmacSHA1"}[digest],
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    query = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items())
    )
    mac = hmac.digest(SECRET.encode(), f"{method}\n{host}\n/\n{query}".encode(), digest)
    return params | {"Signature": base64.b64encode(mac).decode()}


@pytest.mark.parametrize("digest", ["sha256", "sha1"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_both_hash_methods_and_host_with_or_without_port(digest: str, method: str) -> None:
    with_port = hand_signed(method, digest, "127.0.0.1:8773")
    assert check(method, "127.0.0.1:8773", "/", with_port)
    without_port = hand_signed(method, digest, "127.0.0.1")  # libcloud, boto 2
    assert check(method, "127.0.0.1:8773", "/", without_port)


def test_failures() -> None:
    good = hand_signed("GET", "sha256", "h")
    with pytest.raises(SignatureMismatch):
        check("GET", "h", "/", good | {"Action": "DescribeKeyPairs"})
    with pytest.raises(UnknownAccessKey):
        check("GET", "h", "/", good | {"AWSAccessKeyId": "AKINOBODY"})
    with pytest.raises(RequestExpired):
        check("GET", "h", "/", good, now=datetime.now(UTC) + timedelta(minutes=16))
    for broken in (
        {"SignatureVersion": "1"},
        {"SignatureMethod": "HmacMD5"},
        {"Timestamp": "yesterday"},
    ):
        with pytest.raises(MalformedAuthentication):
            check("GET", "h", "/", good | broken)
    no_time = {k: v for k, v in good.items() if k != "Timestamp"}
    with pytest.raises(MalformedAuthentication):
        check("GET", "h", "/", no_time)
    with pytest.raises(RequestExpired):
        check("GET", "h", "/", no_time | {"Expires": "2001-01-01T00:00:00Z"})


def test_is_sigv2() -> None:
    assert sigv2.is_sigv2({"Signature": "x", "AWSAccessKeyId": "y"})
    assert not sigv2.is_sigv2({"Signature": "x"})
