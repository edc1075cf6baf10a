"""Who sent an S3 request, and how its payload must be checked.

SigV4 (header or presigned) comes from ``karri.api.auth.sigv4`` with S3's own payload
hash (``x-amz-content-sha256``); S3's SigV2 (``Authorization: AWS key:sig`` and the
``Signature``/``Expires`` query of old presigned URLs) is here. No signature at all is
the anonymous principal, which only ACL grants to everyone let through.
"""

from __future__ import annotations

import base64
import hmac
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from karri.api.auth import sigv4
from karri.api.auth.credentials import KeyStore, Principal
from karri.api.auth.errors import (
    AuthError,
    ExpiredToken,
    InvalidToken,
    MalformedAuthentication,
    RequestExpired,
    SignatureMismatch,
    UnknownAccessKey,
    WrongScope,
)
from karri.api.auth.matching import signature_matches
from karri.api.s3.errors import WithFields
from karri.numbers import natural
from karri.timestamps import parse_http_date
from karri.walrus import S3Error, invalid_argument

STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

# Sub-resources that SigV2 signs (and the response-* overrides).
SIGNED_SUBRESOURCES = {
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification",
    "partNumber", "policy", "requestPayment", "restore", "tagging", "torrent", "uploadId",
    "uploads", "versionId", "versioning", "versions", "website", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "response-content-language",
    "response-content-type", "response-expires",
}  # fmt: skip


@dataclass(frozen=True)
class ChunkSigning:
    """What verifying aws-chunked signatures needs from the request's own signature."""

    key: bytes
    scope: str
    timestamp: str
    seed: str


@dataclass(frozen=True)
class Payload:
    """How the body must be read and checked."""

    sha256: str | None = None  # a hex hash the body must have
    chunked: bool = False  # aws-chunked framing
    signing: ChunkSigning | None = None  # chunk signatures to verify
    trailer: bool = False  # checksums follow the last chunk


@dataclass(frozen=True)
class Identity:
    principal: str  # account id, or "" when anonymous
    access_key: str
    payload: Payload
    name: str = ""  # the account's name
    key: Principal | None = None  # who signed, for the policy engine (None: anonymous)
    region: str = "us-east-1"  # SigV4's credential scope says which


ANONYMOUS = Identity("", "", Payload())


def error_for(error: AuthError, *, presigned: bool) -> S3Error:
    """S3's codes for authentication failures."""
    if isinstance(error, UnknownAccessKey):
        return S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            403,
        )
    if isinstance(error, ExpiredToken):
        return S3Error("ExpiredToken", "The provided token has expired.", 400)
    if isinstance(error, InvalidToken):
        return S3Error("InvalidToken", "The provided token is malformed or otherwise invalid.", 400)
    if isinstance(error, SignatureMismatch):
        return S3Error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
            403,
        )
    if isinstance(error, RequestExpired):
        if presigned:
            return S3Error("AccessDenied", "Request has expired", 403)
        return S3Error(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
            403,
        )
    if isinstance(error, WrongScope):  # a client may sign again for the region it names
        code, start = "AuthorizationHeaderMalformed", "The authorization header is malformed"
        if presigned:
            code, start = (
                "AuthorizationQueryParametersError",
                ("Error parsing the X-Amz-Credential parameter"),
            )
        fields = {} if error.wrong_service else {"Region": error.region}
        return WithFields(code, f"{start}; {error.message}", 400, fields)
    if presigned:  # the query's X-Amz-* parameters, not a header, are malformed
        return S3Error("AuthorizationQueryParametersError", error.message, 400)
    return S3Error("AuthorizationHeaderMalformed", error.message, 400)


def authenticate(
    keys: KeyStore,
    method: str,
    raw_path: str,
    query: list[tuple[str, str]],
    headers: list[tuple[str, str]],
    header: dict[str, str],
    resource_path: str,
    region: str | None = None,
) -> Identity:
    """``resource_path`` is ``/bucket/key`` as SigV2 signs it (raw, still encoded);
    ``region``: the one SigV4 scopes must name (None: any)."""
    authorization = header.get("authorization", "")
    params = dict(query)
    presigned = "X-Amz-Algorithm" in params or "Signature" in params
    try:
        if authorization.startswith("AWS4-HMAC-SHA256") or "X-Amz-Algorithm" in params:
            return _sigv4(keys, method, raw_path, query, headers, header, presigned, region)
        if authorization.startswith("AWS "):
            return _sigv2(keys, method, query, header, authorization[4:], resource_path, None)
        if "Signature" in params and "AWSAccessKeyId" in params:
            expires = params.get("Expires", "")
            seconds = natural(expires)
            if seconds is None:
                raise MalformedAuthentication("Expires must be a number of seconds")
            if seconds < time.time():
                raise RequestExpired("Request has expired")
            credential = f"{params['AWSAccessKeyId']}:{params['Signature']}"
            return _sigv2(keys, method, query, header, credential, resource_path, expires)
        if authorization:
            raise invalid_argument("Unsupported Authorization Type")
        return ANONYMOUS
    except AuthError as error:
        raise error_for(error, presigned=presigned) from None


def _sigv4(keys, method, raw_path, query, headers, header, presigned, region) -> Identity:
    declared = header.get("x-amz-content-sha256")
    if presigned:
        claimed = declared or sigv4.UNSIGNED_PAYLOAD
    elif declared is None:
        raise S3Error(
            "InvalidRequest",
            "Missing required header for this request: x-amz-content-sha256",
            400,
        )
    else:
        claimed = declared
    streaming = claimed in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
    if not (
        claimed in (sigv4.UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_TRAILER)
        or streaming
        or _HEX64.match(claimed)
    ):
        raise invalid_argument(
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER), or a valid sha256 value.",
        )
    request = sigv4.HttpRequest(method, raw_path, query, headers)
    endpoint = (region, "s3") if region is not None else None
    verified = sigv4.verify(request, keys, claimed, s3=True, endpoint=endpoint)
    if streaming:
        signing = ChunkSigning(
            verified.signing_key, verified.scope.text, verified.timestamp, verified.signature
        )
        payload = Payload(
            chunked=True, signing=signing, trailer=claimed == STREAMING_SIGNED_TRAILER
        )
    elif claimed == STREAMING_UNSIGNED_TRAILER:
        payload = Payload(chunked=True, trailer=True)
    elif claimed == sigv4.UNSIGNED_PAYLOAD:
        payload = Payload()
    else:
        payload = Payload(sha256=claimed)
    principal = verified.principal
    return Identity(
        principal.account_id,
        principal.access_key_id,
        payload,
        principal.account_name,
        principal,
        verified.scope.region,
    )


def _sigv2(keys, method, query, header, credential, resource_path, expires) -> Identity:
    access_key, _, signature = credential.strip().partition(":")
    if not access_key or not signature:
        raise MalformedAuthentication("Authorization must be AWS AccessKeyId:Signature")
    if expires is None:
        _check_date(header)
    key = keys.get(access_key)
    if key is None:
        raise UnknownAccessKey(access_key)
    key.check_token(
        header.get("x-amz-security-token") or dict(query).get("SecurityToken"), datetime.now(UTC)
    )
    for text in _v2_strings(method, query, header, resource_path, expires):
        mac = hmac.digest(key.secret.encode(), text.encode("utf-8"), "sha1")
        if signature_matches(base64.b64encode(mac).decode(), signature):
            payload = Payload()
            claimed = header.get("x-amz-content-sha256", "")
            if _HEX64.match(claimed):
                payload = Payload(sha256=claimed)
            principal = key.principal
            return Identity(
                principal.account_id, access_key, payload, principal.account_name, principal
            )
    raise SignatureMismatch("signature mismatch")


def _check_date(header: dict[str, str]) -> None:
    value = header.get("x-amz-date") or header.get("date")
    if not value:
        raise S3Error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header", 403
        )
    when = parse_http_date(value)
    if when is None:
        try:
            when = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise S3Error(
                "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header", 403
            ) from None
    if abs(datetime.now(UTC) - when) > sigv4.MAX_CLOCK_SKEW:
        raise RequestExpired("skewed")


def _v2_strings(method, query, header, resource_path, expires):
    """The string SigV2 signs, for each way clients encode the resource path."""
    amz = {}
    for name, value in header.items():
        if name.startswith("x-amz-"):
            amz[name] = value.strip()
    if expires is not None:
        date = expires
    elif "x-amz-date" in header:
        date = ""
    else:
        date = header.get("date", "")
    amz_lines = "".join(f"{name}:{amz[name]}\n" for name in sorted(amz))
    sub = sorted((k, v) for k, v in query if k in SIGNED_SUBRESOURCES)
    suffix = "&".join(k if v == "" else f"{k}={v}" for k, v in sub)
    suffix = f"?{suffix}" if suffix else ""
    head = (
        f"{method}\n{header.get('content-md5', '')}\n{header.get('content-type', '')}\n"
        f"{date}\n{amz_lines}"
    )
    seen = set()
    paths = [resource_path, quote(unquote(resource_path), safe="/~"), unquote(resource_path)]
    if resource_path.count("/") == 1:  # a bucket: some sign "/bucket", others "/bucket/"
        paths.append(resource_path + "/")
    for path in paths:
        if path not in seen:
            seen.add(path)
            yield f"{head}{path}{suffix}"
