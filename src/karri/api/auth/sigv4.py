"""AWS Signature Version 4: the Authorization header and presigned query strings.

Pure functions over the parts of an HTTP request, so the EC2 and S3 front ends
(and the unit tests) share one implementation.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from karri.api.auth.credentials import KeyStore, Principal
from karri.api.auth.errors import (
    MalformedAuthentication,
    RequestExpired,
    SignatureMismatch,
    UnknownAccessKey,
    WrongScope,
)
from karri.api.auth.matching import signature_matches
from karri.numbers import natural
from karri.signing import (  # noqa: F401 (re-exported: the API signs as it verifies)
    ALGORITHM,
    UNSIGNED_PAYLOAD,
    canonical_query,
    sign,
    signing_key,
    text_to_sign,
    uri_encode,
)
from karri.timestamps import parse_http_date

MAX_CLOCK_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRY = 7 * 24 * 3600
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_AUTH_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})\s*$"
)
_AMZ_DATE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")


@dataclass(frozen=True)
class HttpRequest:
    """The parts of an HTTP request that a signature covers."""

    method: str
    raw_path: str  # as sent on the wire, still percent-encoded
    query: Sequence[tuple[str, str]]  # decoded, in the order sent
    headers: Sequence[tuple[str, str]]  # lower-case names, in the order sent

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Scope:
    access_key_id: str
    date: str
    region: str
    service: str

    @property
    def text(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class Verified:
    """A request whose signature checked out, and what the signature binds."""

    principal: Principal
    scope: Scope
    signature: str
    signing_key: bytes
    timestamp: str


def canonical_headers(request: HttpRequest, signed: Sequence[str]) -> str:
    wanted = set(signed)
    values: dict[str, list[str]] = {}
    for key, value in request.headers:
        if key in wanted:  # trimmed, inner runs of whitespace as one space
            values.setdefault(key, []).append(" ".join(value.split()))
    lines = []
    for name in signed:
        if name not in values:
            raise SignatureMismatch(f"Signed header {name} is not in the request")
        lines.append(f"{name}:{','.join(values[name])}\n")
    return "".join(lines)


def canonical_uris(raw_path: str, *, s3: bool) -> list[str]:
    """Candidate canonical URIs, most likely first.

    S3 signs the path as the client encoded it; every other service normalizes it
    and encodes it once more. Clients differ in which characters they escape, so S3
    also tries the strictly re-encoded form.
    """
    raw_path = raw_path or "/"
    if not s3:
        normalized = posixpath.normpath(raw_path) if raw_path != "/" else "/"
        if raw_path.endswith("/") and normalized != "/":
            normalized += "/"
        return [uri_encode(normalized.replace("//", "/"), "/")]
    strict = uri_encode(unquote(raw_path), "/")
    return [raw_path] if strict == raw_path else [raw_path, strict]


def string_to_sign(timestamp: str, scope: Scope, canonical_request: str) -> str:
    return text_to_sign(timestamp, scope.text, canonical_request)


def parse_scope(credential: str) -> Scope:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not re.fullmatch(r"\d{8}", parts[1]):
        raise MalformedAuthentication(f"Invalid credential scope: {credential!r}")
    return Scope(*parts[:4])


def parse_timestamp(value: str | None) -> datetime:
    if not value:
        raise MalformedAuthentication("The request has no X-Amz-Date")
    # By hand: strptime costs more than checking the signature.
    if not _AMZ_DATE.match(value):
        raise MalformedAuthentication(f"Invalid X-Amz-Date: {value!r}")
    try:
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise MalformedAuthentication(f"Invalid X-Amz-Date: {value!r}") from exc


def is_presigned(request: HttpRequest) -> bool:
    return any(k == "X-Amz-Algorithm" for k, _ in request.query)


def verify(
    request: HttpRequest,
    keys: KeyStore,
    payload_hash: str,
    *,
    s3: bool = False,
    now: datetime | None = None,
    endpoint: tuple[str, str] | None = None,
) -> Verified:
    """Check a SigV4 request (header or presigned) and return who signed it.

    ``payload_hash`` is the hex SHA-256 of the body, or what the client declared in
    ``x-amz-content-sha256`` (S3 checks that claim against the bytes as they stream).
    ``endpoint``: the (region, service) this endpoint is, which the credential scope must
    name (WrongScope otherwise); None takes any scope.
    """
    now = now or datetime.now(UTC)
    query = dict(request.query)
    presigned = "X-Amz-Algorithm" in query
    if presigned:
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            raise MalformedAuthentication("Unsupported X-Amz-Algorithm")
        try:
            scope = parse_scope(query["X-Amz-Credential"])
            signed_headers = query["X-Amz-SignedHeaders"]
            signature = query["X-Amz-Signature"]
            expires = natural(query["X-Amz-Expires"])
        except KeyError as exc:
            raise MalformedAuthentication("Incomplete presigned query string") from exc
        timestamp = query.get("X-Amz-Date")
        signed_at = parse_timestamp(timestamp)
        if expires is None or not 0 < expires <= MAX_PRESIGN_EXPIRY:
            raise MalformedAuthentication("X-Amz-Expires must be between 1 and 604800 seconds")
        if (now - signed_at).total_seconds() > expires:  # no datetime past the year 9999
            raise RequestExpired("Request has expired")
        if signed_at - now > MAX_CLOCK_SKEW:
            raise RequestExpired("Request is not valid yet")
    else:
        header = request.header("authorization") or ""
        match = _AUTH_HEADER.match(header)
        if not match:
            raise MalformedAuthentication("Malformed AWS4-HMAC-SHA256 Authorization header")
        scope = parse_scope(match.group(1))
        signed_headers, signature = match.group(2), match.group(3)
        timestamp = request.header("x-amz-date") or None
        if timestamp is None and request.header("date"):
            timestamp = _http_date_to_amz(request.header("date") or "")
        signed_at = parse_timestamp(timestamp)
        if abs(now - signed_at) > MAX_CLOCK_SKEW:
            raise RequestExpired(
                f"Request timestamp {timestamp} is more than 15 minutes from the server time"
            )
    if endpoint is not None and (scope.region, scope.service) != endpoint:
        raise WrongScope(scope.region, scope.service, *endpoint)
    if timestamp and timestamp[:8] != scope.date:
        raise MalformedAuthentication("The credential date does not match X-Amz-Date")

    key = keys.get(scope.access_key_id)
    if key is None:
        raise UnknownAccessKey(f"The access key {scope.access_key_id} does not exist")
    presented = query.get("X-Amz-Security-Token") if presigned else None
    key.check_token(presented or request.header("x-amz-security-token"), now)
    names = signed_headers.split(";")
    if "host" not in names:
        raise MalformedAuthentication("The host header must be signed")
    headers = canonical_headers(request, names)
    query_text = canonical_query(request.query, skip="X-Amz-Signature" if presigned else None)
    derived = signing_key(key.secret, scope.date, scope.region, scope.service)
    for uri in canonical_uris(request.raw_path, s3=s3):
        canonical = "\n".join(
            (request.method, uri, query_text, headers, signed_headers, payload_hash)
        )
        expected = sign(derived, string_to_sign(timestamp or "", scope, canonical))
        if signature_matches(expected, signature):
            return Verified(key.principal, scope, signature, derived, timestamp or "")
    raise SignatureMismatch(
        "The request signature we calculated does not match the signature you provided"
    )


def _http_date_to_amz(value: str) -> str | None:
    when = parse_http_date(value)
    return when.strftime("%Y%m%dT%H%M%SZ") if when is not None else None
