"""Shared pieces of the S3 tests: unique bucket names, raw signed requests."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http.client import HTTPConnection
from urllib.parse import parse_qsl, quote, urlsplit

_names = itertools.count()


def code(error) -> tuple[str, int]:
    """(S3 error code, HTTP status) of a ``pytest.raises(ClientError)`` outcome."""
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def unique(prefix: str = "bkt") -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


def error_code(error) -> tuple[str, int]:
    """(code, status) of a ClientError in ``pytest.raises``'s ExceptionInfo."""
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of a plain HTTP request; errors are answers too."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def preflight(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """An OPTIONS request as a browser sends it: no signature, no body."""
    parts = urlsplit(url)
    connection = HTTPConnection(parts.hostname, parts.port, timeout=30)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        connection.putrequest("OPTIONS", target, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        lowered = {k.lower(): v for k, v in response.getheaders()}
        return response.status, lowered, response.read()
    finally:
        connection.close()


def signed(
    creds,
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict | None = None,
    payload_hash: str | None = None,
    region: str = "eucalyptus",
    service: str = "s3",
) -> tuple[dict, datetime]:
    """SigV4 headers for a raw request, signed independently of karri's code
    (``payload_hash`` is what x-amz-content-sha256 claims; the body's hash by default)."""
    now = datetime.now(UTC)
    timestamp = now.strftime("%Y%m%dT%H%M%SZ")
    parts = urlsplit(url)
    headers = {k: v for k, v in (headers or {}).items()}
    headers["Host"] = parts.netloc
    headers["X-Amz-Date"] = timestamp
    headers["x-amz-content-sha256"] = payload_hash or hashlib.sha256(body).hexdigest()
    names = sorted(k.lower() for k in headers)
    lowered = {k.lower(): str(v).strip() for k, v in headers.items()}
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    canonical = "\n".join(
        (
            method,
            parts.path or "/",
            "&".join(f"{k}={v}" for k, v in pairs),
            "".join(f"{n}:{lowered[n]}\n" for n in names),
            ";".join(names),
            headers["x-amz-content-sha256"],
        )
    )
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    text = (
        f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    key = _key(creds, timestamp[:8], region, service)
    signature = hmac.new(key, text.encode(), "sha256").hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return headers, now


def _key(creds, date: str, region: str, service: str = "s3") -> bytes:
    key = ("AWS4" + creds.secret_access_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), "sha256").digest()
    return key


def chunk_signatures(creds, headers: dict, chunks: list[bytes], region: str = "eucalyptus"):
    """The aws-chunked body for STREAMING-AWS4-HMAC-SHA256-PAYLOAD, chunk signatures and all."""
    authorization = headers["Authorization"]
    seed = authorization.rsplit("Signature=", 1)[1]
    timestamp = headers["X-Amz-Date"]
    date = timestamp[:8]
    scope = f"{date}/{region}/s3/aws4_request"
    key = _key(creds, date, region)
    empty = hashlib.sha256(b"").hexdigest()
    previous, body = seed, b""
    for chunk in [*chunks, b""]:
        text = (
            f"AWS4-HMAC-SHA256-PAYLOAD\n{timestamp}\n{scope}\n{previous}\n{empty}\n"
            f"{hashlib.sha256(chunk).hexdigest()}"
        )
        previous = hmac.new(key, text.encode(), "sha256").hexdigest()
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk + b"\r\n"
    return body
