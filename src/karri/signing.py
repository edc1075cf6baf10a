"""AWS Signature Version 4's pure primitives, and presigning a GET.

The API's verifier (``api/auth/sigv4.py``) and the cloud's own presigned URLs (a node
fetches an image from Walrus with one, ``cloud/images/store.py``) share them, so karri
signs exactly as it verifies.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def uri_encode(value: str, safe: str = "") -> str:
    """RFC 3986 encoding as SigV4 wants it: everything but unreserved characters."""
    return quote(value, safe="-_.~" + safe)


def canonical_query(pairs: Iterable[tuple[str, str]], skip: str | None = None) -> str:
    encoded = sorted((uri_encode(k), uri_encode(v)) for k, v in pairs if k != skip)
    return "&".join(f"{k}={v}" for k, v in encoded)


@lru_cache(maxsize=1024)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.digest(("AWS4" + secret).encode(), date.encode(), "sha256")
    for part in (region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def text_to_sign(timestamp: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), "sha256").hexdigest()


def presign_get(
    endpoint: str,
    path: str,
    access_key_id: str,
    secret: str,
    region: str,
    expires: int,
    *,
    service: str = "s3",
    now: datetime | None = None,
) -> str:
    """A presigned GET URL of ``path`` (unencoded, ``/bucket/key``) at ``endpoint``
    (``http://host:port``), valid for ``expires`` seconds; only ``host`` is signed."""
    now = now or datetime.now(UTC)
    timestamp = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    host = urlsplit(endpoint).netloc
    raw_path = uri_encode(path, "/")
    query = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access_key_id}/{scope}"),
        ("X-Amz-Date", timestamp),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    query_text = canonical_query(query)
    canonical = "\n".join(("GET", raw_path, query_text, f"host:{host}\n", "host", UNSIGNED_PAYLOAD))
    key = signing_key(secret, timestamp[:8], region, service)
    signature = sign(key, text_to_sign(timestamp, scope, canonical))
    return f"{endpoint.rstrip('/')}{raw_path}?{query_text}&X-Amz-Signature={signature}"
