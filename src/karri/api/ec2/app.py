"""The EC2 Query endpoint: authenticate, parse by the model, dispatch, render.

It answers at ``/`` and at Eucalyptus's ``/services/compute`` and
``/services/Eucalyptus``, for GET and POST, signed with SigV4 or SigV2.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from karri.api.auth import sigv2, sigv4
from karri.api.auth.credentials import KeyStore, Principal
from karri.api.auth.errors import (
    AuthError,
    MissingAuthentication,
    RequestExpired,
    SignatureMismatch,
    UnknownAccessKey,
)
from karri.api.ec2 import actions  # noqa: F401  (registers the handlers)
from karri.api.ec2.dispatch import ACTIONS, EXTENSIONS, INLINE, READ_ONLY, Ec2Context
from karri.api.ec2.model import API_VERSION, ec2_model
from karri.api.ec2.query import parse_input
from karri.api.ec2.render import RawXml, render_error, render_response
from karri.api.requests import log_request, new_request_id, query_pairs, read_body
from karri.cloud.controller import Cloud
from karri.errors import CloudError, invalid_value
from karri.serving import closing_answer

log = logging.getLogger("karri.api.ec2")

MAX_BODY = 1024 * 1024
EUCALYPTUS_PATH = "/services/Eucalyptus"
EC2_PATHS = ("/", "/services/compute", EUCALYPTUS_PATH, "/services/Empyrean")
VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FORM = "application/x-www-form-urlencoded"


def auth_error(error: AuthError) -> CloudError:
    """EC2's codes for authentication failures."""
    if isinstance(error, MissingAuthentication):
        return CloudError("MissingAuthenticationToken", error.message, 401)
    if isinstance(error, RequestExpired):
        return CloudError("RequestExpired", error.message, 400)
    if isinstance(error, (UnknownAccessKey, SignatureMismatch)):
        return CloudError(
            "AuthFailure", "AWS was not able to validate the provided access credentials", 401
        )
    return CloudError("IncompleteSignature", error.message, 400)


def decode_pairs(text: str) -> list[tuple[str, str]]:
    try:
        return query_pairs(text)
    except UnicodeDecodeError:
        raise invalid_value("The request contains characters that are not valid UTF-8") from None


def xml_response(payload: bytes, status: int, request_id: str) -> Response:
    return Response(
        payload,
        status_code=status,
        media_type="text/xml;charset=UTF-8",
        headers={"x-amzn-RequestId": request_id},
    )


def refusal(code: str, message: str) -> bytes:
    """The answer to a request refused by the HTTP layer (``serving.BoundedHttpProtocol``)."""
    request_id = new_request_id()
    body = render_error(code, message, request_id)
    headers = {"x-amzn-RequestId": request_id, "content-type": "text/xml;charset=UTF-8"}
    return closing_answer(400, "Bad Request", headers, body)


def error_response(error: CloudError) -> Response:
    request_id = new_request_id()
    return xml_response(
        render_error(error.code, error.message, request_id), error.status, request_id
    )


class Ec2Api:
    def __init__(self, cloud: Cloud, keys: KeyStore) -> None:
        self.cloud = cloud
        self.keys = keys
        self.model = ec2_model()
        # As many handler threads as the database pool has connections: with more, every
        # request past the pool's size opens (and closes) a connection of its own.
        size = getattr(cloud.db.engine.pool, "size", lambda: 8)()
        self._workers = ThreadPoolExecutor(max_workers=size, thread_name_prefix="ec2-handler")
        # A thread hop costs more than a SQLite read, and the handler thread and the event
        # loop then fight over the GIL: reads run on the loop where they never wait.
        self._on_loop = INLINE | (READ_ONLY if cloud.db.engine.dialect.name == "sqlite" else set())

    async def handle(self, request: Request) -> Response:
        request_id = new_request_id()
        started = time.perf_counter()
        account, action = "", ""
        try:
            pairs, body = await self._parameters(request)
            params = dict(pairs)
            action = params.get("Action", "")
            principal = self._authenticate(request, pairs, params, body)
            account = principal.account_id
            path = request.scope["path"].rstrip("/")
            eucalyptus = path == EUCALYPTUS_PATH and sigv2.is_sigv2(params)
            status, payload = 200, await self._dispatch(principal, params, request_id, eucalyptus)
        except CloudError as error:
            status, payload = error.status, render_error(error.code, error.message, request_id)
        except ClientDisconnect:  # gone before its body ended: nobody to answer, no fault
            status, payload = 499, b""
        except Exception:
            log.exception("request %s failed", request_id)
            status = 500
            payload = render_error(
                "InternalError",
                f"An internal error has occurred (request {request_id})",
                request_id,
            )
        log_request(request_id, account, action, status, (time.perf_counter() - started) * 1000)
        return xml_response(payload, status, request_id)

    async def _parameters(self, request: Request) -> tuple[list[tuple[str, str]], bytes]:
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

    def _authenticate(
        self,
        request: Request,
        pairs: list[tuple[str, str]],
        params: dict[str, str],
        body: bytes,
    ) -> Principal:
        try:
            authorization = request.headers.get("authorization")
            if authorization or "X-Amz-Algorithm" in params:
                http = sigv4.HttpRequest(
                    request.method,
                    request.scope.get("raw_path", b"/").decode("latin-1"),
                    decode_pairs(request.scope["query_string"].decode("latin-1")),
                    [
                        (k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in request.scope["headers"]
                    ],
                )
                payload_hash = hashlib.sha256(body).hexdigest()
                return sigv4.verify(http, self.keys, payload_hash).principal
            if sigv2.is_sigv2(params):
                return sigv2.verify(
                    request.method,
                    request.headers.get("host", ""),
                    request.scope.get("raw_path", b"/").decode("latin-1") or "/",
                    params,
                    pairs,
                    self.keys,
                )
            raise MissingAuthentication("Request is missing Authentication Token")
        except AuthError as error:
            raise auth_error(error) from None

    async def _dispatch(
        self, principal: Principal, params: dict[str, str], request_id: str, eucalyptus: bool
    ) -> bytes:
        action = params.get("Action")
        if not action:
            raise CloudError("MissingAction", "The request must contain the parameter Action")
        version = params.get("Version") or API_VERSION
        extension = EXTENSIONS.get(action)
        if extension is not None and action not in self.model.operations:
            context = Ec2Context(self.cloud, principal, request_id, version)
            return (await run_in_threadpool(extension, context, params)).render(request_id)
        if not VERSION.match(version):
            raise CloudError(
                "NoSuchVersion", f"The requested version ({version}) of service EC2 does not exist"
            )
        if action not in self.model.operations:
            raise CloudError(
                "InvalidAction", f"The action {action} is not valid for this web service."
            )
        handler = ACTIONS.get(action)
        if handler is None:
            raise CloudError("UnsupportedOperation", f"The action {action} is not supported yet.")
        parsed: dict[str, Any] = parse_input(self.model, action, params)
        if parsed.pop("DryRun", False):
            raise CloudError(
                "DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412
            )
        context = Ec2Context(self.cloud, principal, request_id, version, eucalyptus)
        if action in self._on_loop:
            output = handler(context, parsed)
        else:
            output = await asyncio.get_running_loop().run_in_executor(
                self._workers, contextvars.copy_context().run, handler, context, parsed
            )
        if isinstance(output, RawXml):
            return output.render(request_id)
        return render_response(self.model, action, output, request_id, version)
