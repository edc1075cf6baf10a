"""Hand-made EC2 Query requests, signed by botocore's own signers, for what boto3 never sends.

The tests of authentication, protocol errors and Eucalyptus paths need requests that a
client library would not produce (a wrong secret, a skewed clock, a bad body, SigV2 with
HmacSHA1), so they build them here and send them with ``http.client``, which adds no header
of its own choosing beyond Host and Content-Length.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import importlib.util
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import quote, urlencode, urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import Creds, Karri

FORM = "application/x-www-form-urlencoded; charset=utf-8"
VERSION = "2016-11-15"


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]  # lower-case names

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    @property
    def code(self) -> str | None:
        """The EC2 error code, or None for a success."""
        node = self.xml.find("./Errors/Error/Code")
        return node.text if node is not None else None

    @property
    def namespace(self) -> str:
        tag = self.xml.tag
        return tag[1 : tag.index("}")] if tag.startswith("{") else ""


def send(
    url: str, method: str = "GET", body: bytes | None = None, headers: Mapping[str, str] = ()
) -> Reply:
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, target, body=body, headers=dict(headers))
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Reply(response.status, response.read(), headers)
    finally:
        connection.close()


def botocore_credentials(creds: Creds, secret: str | None = None) -> Credentials:
    return Credentials(creds.access_key_id, secret or creds.secret_access_key)


@contextlib.contextmanager
def clock(offset: timedelta) -> Iterator[None]:
    """botocore's signers (and only they) see a clock that is ``offset`` off.

    With awscrt installed botocore signs SigV4 with the CRT signer, which reads the clock
    through its own module, so both are shifted.
    """
    real = datetime.now

    def shifted(remove_tzinfo: bool = True) -> datetime:
        now = real(UTC) + offset
        return now.replace(tzinfo=None) if remove_tzinfo else now

    with contextlib.ExitStack() as stack:
        for module in ("botocore.auth", "botocore.crt.auth"):
            if module == "botocore.crt.auth" and importlib.util.find_spec("awscrt") is None:
                continue
            stack.enter_context(mock.patch(f"{module}.get_current_datetime", shifted))
        yield


def form(params: Mapping[str, str] | list[tuple[str, str]]) -> bytes:
    """A form body encoded as botocore encodes it (RFC 3986, spaces as %20)."""
    return urlencode(params, quote_via=quote, safe="-_.~").encode()


def v4_post(
    karri: Karri,
    params: Mapping[str, str] | list[tuple[str, str]] | bytes,
    *,
    creds: Creds | None = None,
    secret: str | None = None,
    path: str = "/",
    content_type: str | None = FORM,
    region: str | None = None,
) -> Reply:
    """A POST signed with SigV4 in the Authorization header by botocore."""
    body = params if isinstance(params, bytes) else form(params)
    headers = {"Content-Type": content_type} if content_type else {}
    request = AWSRequest(method="POST", url=karri.ec2_url + path, data=body, headers=headers)
    SigV4Auth(
        botocore_credentials(creds or karri.admin, secret), "ec2", region or karri.region
    ).add_auth(request)
    prepared = request.prepare()
    return send(prepared.url, "POST", prepared.body, prepared.headers)


def v4_get(
    karri: Karri,
    params: Mapping[str, str] | list[tuple[str, str]],
    *,
    creds: Creds | None = None,
    path: str = "/",
) -> Reply:
    """A GET with the parameters in the query string, SigV4 in the Authorization header."""
    url = f"{karri.ec2_url}{path}?{form(params).decode()}"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(botocore_credentials(creds or karri.admin), "ec2", karri.region).add_auth(request)
    prepared = request.prepare()
    return send(prepared.url, "GET", None, prepared.headers)


def presigned_url(
    karri: Karri,
    params: Mapping[str, str],
    *,
    expires: int = 60,
    method: str = "GET",
    creds: Creds | None = None,
) -> str:
    """A SigV4 query-string (presigned) URL made by botocore's SigV4QueryAuth."""
    request = AWSRequest(method=method, url=karri.ec2_url + "/", params=dict(params))
    SigV4QueryAuth(
        botocore_credentials(creds or karri.admin), "ec2", karri.region, expires=expires
    ).add_auth(request)
    return request.prepare().url


def sigv2_params(
    karri: Karri,
    params: Mapping[str, str],
    *,
    method: str = "GET",
    path: str = "/",
    signature_method: str = "HmacSHA256",
    creds: Creds | None = None,
    host: str | None = None,
    when: datetime | None = None,
) -> dict[str, str]:
    """Parameters signed with Signature Version 2, by hand, as AWS documents it."""
    creds = creds or karri.admin
    signed = dict(params)
    signed.update(
        AWSAccessKeyId=creds.access_key_id,
        SignatureVersion="2",
        SignatureMethod=signature_method,
        Timestamp=(when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(signed.items())
    )
    host = host or urlsplit(karri.ec2_url).netloc
    text = f"{method}\n{host}\n{path}\n{query}"
    digest = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}[signature_method]
    mac = hmac.new(creds.secret_access_key.encode(), text.encode(), digest).digest()
    signed["Signature"] = base64.b64encode(mac).decode()
    return signed


def v2_request(karri: Karri, params: Mapping[str, str], *, method: str = "GET", **kw) -> Reply:
    path = kw.get("path", "/")
    signed = sigv2_params(karri, params, method=method, **kw)
    if method == "GET":
        return send(f"{karri.ec2_url}{path}?{form(signed).decode()}")
    return send(karri.ec2_url + path, "POST", form(signed), {"Content-Type": FORM})


def unique(prefix: str) -> str:
    """A name no other test in this run uses."""
    return f"{prefix}-{time.monotonic_ns():x}"


def error_of(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, int]:
    """The (code, HTTP status) of the ClientError a boto3 call raises."""
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def race(calls: list[Callable[[], Any]]) -> list[str]:
    """Run ``calls`` at once; each one's outcome: "ok" or the error code it got."""

    def outcome(call: Callable[[], Any]) -> str:
        try:
            call()
        except ClientError as error:
            return error.response["Error"]["Code"]
        return "ok"

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(outcome, calls))
