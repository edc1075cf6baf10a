"""Shared pieces of the S3 tests: unique bucket names, raw signed requests."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import urllib.error
import urllib.request
from datetime import UTC, datetime

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_names = itertools.count()


def unique(prefix: str = "bkt") -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of a plain HTTP request; errors are answers too."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def signed(
    creds,
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict | None = None,
    payload_hash: str | None = None,
    region: str = "eucalyptus",
) -> tuple[dict, datetime]:
    """SigV4 headers for a raw request (``payload_hash`` overrides the body's hash)."""
    headers = dict(headers or {})
    headers["x-amz-content-sha256"] = payload_hash or hashlib.sha256(body).hexdigest()
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    credentials = Credentials(creds.access_key_id, creds.secret_access_key)
    auth = S3SigV4Auth(credentials, "s3", region)
    auth.add_auth(request)
    return dict(request.headers.items()), datetime.now(UTC)


def chunk_signatures(creds, headers: dict, chunks: list[bytes], region: str = "eucalyptus"):
    """The aws-chunked body for STREAMING-AWS4-HMAC-SHA256-PAYLOAD, chunk signatures and all."""
    authorization = headers["Authorization"]
    seed = authorization.rsplit("Signature=", 1)[1]
    timestamp = headers["X-Amz-Date"]
    date = timestamp[:8]
    scope = f"{date}/{region}/s3/aws4_request"
    key = ("AWS4" + creds.secret_access_key).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), "sha256").digest()
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
