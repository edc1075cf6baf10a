"""What every Query-protocol front door (EC2, IAM, STS) does before its action: read the
parameters from the query and the form body, and find who signed them (SigV4 header or
presigned query, or SigV2). Each API turns an `AuthError` into its own words."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from starlette.requests import Request

from karri.api.auth import sigv2, sigv4
from karri.api.auth.credentials import KeyStore, Principal
from karri.api.auth.errors import AuthError, MissingAuthentication
from karri.api.requests import query_pairs, read_body
from karri.errors import CloudError, invalid_value

MAX_BODY = 1024 * 1024
FORM = "application/x-www-form-urlencoded"


def decode_pairs(text: str) -> list[tuple[str, str]]:
    try:
        return query_pairs(text)
    except UnicodeDecodeError:
        raise invalid_value("The request contains characters that are not valid UTF-8") from None


async def parameters(request: Request) -> tuple[list[tuple[str, str]], bytes]:
    """The query's and the form body's parameters, in order, and the body."""
    body = await read_body(request, MAX_BODY)
    pairs = decode_pairs(request.scope["query_string"].decode("latin-1"))
    if body:
        content_type = request.headers.get("content-type", FORM).split(";")[0].strip().lower()
        if content_type != FORM:
            raise CloudError("UnsupportedMediaType", f"Content-Type must be {FORM}", 415)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise invalid_value("The request body is not valid UTF-8") from None
        pairs += decode_pairs(text)
    return pairs, body


def authenticate(
    request: Request,
    keys: KeyStore,
    pairs: list[tuple[str, str]],
    params: dict[str, str],
    body: bytes,
    words: Callable[[AuthError], CloudError],
    endpoint: tuple[str, str] | None = None,
) -> Principal:
    """Who signed the request; a failure is raised in the API's ``words``. ``endpoint``:
    the (region, service) SigV4 scopes must name (None: any)."""
    try:
        return _principal(request, keys, pairs, params, body, endpoint)
    except AuthError as error:
        raise words(error) from None


def _principal(
    request: Request,
    keys: KeyStore,
    pairs: list[tuple[str, str]],
    params: dict[str, str],
    body: bytes,
    endpoint: tuple[str, str] | None,
) -> Principal:
    authorization = request.headers.get("authorization")
    if authorization or "X-Amz-Algorithm" in params:
        http = sigv4.HttpRequest(
            request.method,
            request.scope.get("raw_path", b"/").decode("latin-1"),
            decode_pairs(request.scope["query_string"].decode("latin-1")),
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
        )
        payload_hash = hashlib.sha256(body).hexdigest()
        return sigv4.verify(http, keys, payload_hash, endpoint=endpoint).principal
    if sigv2.is_sigv2(params):
        return sigv2.verify(
            request.method,
            request.headers.get("host", ""),
            request.scope.get("raw_path", b"/").decode("latin-1") or "/",
            params,
            pairs,
            keys,
        )
    raise MissingAuthentication("Request is missing Authentication Token")
