"""AWS Signature Version 2 for query APIs (HmacSHA256 and HmacSHA1).

Eucalyptus-era clients (libcloud's Eucalyptus driver, euca2ools 2, boto 2) still sign
this way. The signed string is ``METHOD\\nhost\\npath\\nsorted-query``.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime

from karri.api.auth.credentials import KeyStore, Principal
from karri.api.auth.errors import (
    MalformedAuthentication,
    RequestExpired,
    SignatureMismatch,
    UnknownAccessKey,
)
from karri.api.auth.matching import signature_matches
from karri.api.auth.sigv4 import MAX_CLOCK_SKEW, canonical_query

DIGESTS = {"HmacSHA256": "sha256", "HmacSHA1": "sha1"}


def is_sigv2(params: Mapping[str, str]) -> bool:
    return "Signature" in params and "AWSAccessKeyId" in params


def parse_iso8601(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedAuthentication(f"Invalid timestamp {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def verify(
    method: str,
    host: str,
    path: str,
    params: Mapping[str, str],
    pairs: list[tuple[str, str]],
    keys: KeyStore,
    *,
    now: datetime | None = None,
) -> Principal:
    """Check a SigV2 query request; ``pairs`` are all parameters (query and form)."""
    now = now or datetime.now(UTC)
    if params.get("SignatureVersion") != "2":
        raise MalformedAuthentication("Only SignatureVersion 2 is supported")
    digest = DIGESTS.get(params.get("SignatureMethod", ""))
    if digest is None:
        raise MalformedAuthentication("SignatureMethod must be HmacSHA256 or HmacSHA1")
    if "Timestamp" in params:
        if abs(now - parse_iso8601(params["Timestamp"])) > MAX_CLOCK_SKEW:
            raise RequestExpired("Request timestamp is more than 15 minutes from the server time")
    elif "Expires" in params:
        if now > parse_iso8601(params["Expires"]):
            raise RequestExpired("Request has expired")
    else:
        raise MalformedAuthentication("The request must contain Timestamp or Expires")

    key = keys.get(params["AWSAccessKeyId"])
    if key is None:
        raise UnknownAccessKey(f"The access key {params['AWSAccessKeyId']} does not exist")
    key.check_token(params.get("SecurityToken"), now)
    query = canonical_query(pairs, skip="Signature")
    host = host.lower()
    # botocore signs the host with its port, libcloud and boto 2 without it.
    hosts = [host] if ":" not in host else [host, host.rsplit(":", 1)[0]]
    for candidate in hosts:
        text = f"{method}\n{candidate}\n{path or '/'}\n{query}"
        mac = hmac.digest(key.secret.encode(), text.encode(), digest)
        if signature_matches(base64.b64encode(mac).decode(), params["Signature"]):
            return key.principal
    raise SignatureMismatch(
        "The request signature we calculated does not match the signature you provided"
    )
