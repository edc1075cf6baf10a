"""The S3 endpoint (Walrus's API): a lean ASGI application, no framework in the path.

Path-style (``/bucket/key``) and virtual-hosted-style (``Host: bucket.<domain>``) on the
S3 port; ``/services/objectstorage`` and ``/services/Walrus`` on the EC2 port.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote

from karri.api.auth.authorizer import NO_POLICIES, PolicySource
from karri.api.auth.credentials import KeyStore
from karri.api.requests import log_request, new_s3_request_id, query_pairs
from karri.api.s3 import cors, ownership, routes
from karri.api.s3.auth import authenticate
from karri.api.s3.authorize import S3Authorization
from karri.api.s3.context import FileReply, Reply, Request
from karri.api.s3.errors import error_body, error_headers
from karri.api.s3.payload import ClientGone
from karri.api.s3.sendfile import send_file
from karri.errors import CloudError
from karri.serving import closing_answer
from karri.walrus import S3Error, Walrus

log = logging.getLogger("karri.api.s3")

_PORT = re.compile(r":\d+$")
EUCALYPTUS_PREFIXES = ("/services/objectstorage", "/services/Walrus")
_EXPECTED_OWNERS = {"x-amz-expected-bucket-owner", "x-amz-source-expected-bucket-owner"}


class S3Api:
    """``S3Api(walrus, keys, domain)``; ``prefixes`` strips Eucalyptus's service paths;
    ``policies`` gives the identity policies of callers that are not an account's root;
    ``region``: the cloud's, which SigV4 credential scopes must name (None: any)."""

    def __init__(
        self,
        walrus: Walrus,
        keys: KeyStore,
        domain: str = "s3.localhost",
        prefixes: tuple[str, ...] = (),
        policies: PolicySource = NO_POLICIES,
        region: str | None = None,
    ) -> None:
        self.walrus = walrus
        self.region = region
        self.keys = keys
        self.authorization = S3Authorization(policies)
        self.domain = "." + domain.lower()
        self.prefixes = prefixes
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="walrus")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":  # pragma: no cover - karri runs with lifespan off
            return
        started = time.perf_counter()
        request_id = new_s3_request_id()
        account, action, status = "", "", 500
        resource = scope.get("path", "/")
        body = _BodyState(receive, scope)
        cors_headers: dict[str, str] = {}
        try:
            target = self._locate(scope)
            resource = "/" + target.bucket + ("/" + target.key if target.key else "")
            if scope["method"] == "OPTIONS":  # a CORS preflight: answered unsigned
                action = "Preflight"
                reply = await self.run(
                    cors.preflight, self.walrus, target.bucket, target.key, target.header
                )
                status = reply.status
                await self._send(send, reply, _headers(reply.headers, request_id), b"")
            else:
                if "origin" in target.header:
                    cors_headers = await self.run(
                        cors.actual_headers,
                        self.walrus,
                        target.bucket,
                        scope["method"],
                        target.header,
                    )
                request = self._parse(scope, target, body.receive, send, request_id)
                account = request.principal
                if request.identity.key is not None:
                    self.keys.used(request.identity.key, "s3", request.identity.region)
                handler, action = routes.resolve(request)
                await self._authorize(request, action)
                if _EXPECTED_OWNERS & request.header.keys():
                    await self.run(ownership.check_expected_owners, self.walrus, request, action)
                reply = await handler(self, request)
                status = reply.status
                reply.headers.update(cors_headers)
                await self._reply(request, reply)
        except CloudError as error:  # S3Error, or a rule broken deeper down
            status = error.status
            await self._error(scope, send, error, resource, request_id, body.unread, cors_headers)
        except ClientGone:
            status = 499
        except UnicodeDecodeError:
            status = 400
            error = S3Error("InvalidURI", "Couldn't parse the specified URI.", 400)
            await self._error(scope, send, error, resource, request_id, body.unread, cors_headers)
        except Exception:
            log.exception("request %s failed", request_id)
            error = S3Error(
                "InternalError", "We encountered an internal error. Please try again.", 500
            )
            await self._error(scope, send, error, resource, request_id, body.unread, cors_headers)
        log_request(request_id, account, action, status, (time.perf_counter() - started) * 1000)

    def _locate(self, scope) -> _Target:
        """The headers, bucket and key a request names (nothing checked yet)."""
        header: dict[str, str] = {}
        pairs_headers: list[tuple[str, str]] = []
        for raw_name, raw_value in scope["headers"]:  # their size is bounded by karri.serving
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            pairs_headers.append((name, value))
            header[name] = f"{header[name]},{value}" if name in header else value
        raw_path = scope.get("raw_path") or scope["path"].encode()
        raw_path_text = raw_path.decode("latin-1").split("?", 1)[0]
        path = raw_path_text
        for prefix in self.prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                path = path[len(prefix) :] or "/"
                break
        host = _PORT.sub("", header.get("host", "").lower())
        if not self.prefixes and host.endswith(self.domain) and len(host) > len(self.domain):
            bucket = host[: -len(self.domain)]
            key_raw = path[1:] if path.startswith("/") else path
            resource_path = "/" + bucket + path
        else:
            bucket_raw, _, key_raw = (
                path.lstrip("/").partition("/") if path.startswith("/") else (path, "", "")
            )
            bucket = unquote(bucket_raw, errors="strict")
            resource_path = path
        key = unquote(key_raw, errors="strict")
        return _Target(header, pairs_headers, raw_path_text, resource_path, bucket, key)

    def _parse(self, scope, target: _Target, receive, send, request_id: str) -> Request:
        pairs = query_pairs(scope.get("query_string", b"").decode("latin-1"))
        identity = authenticate(
            self.keys,
            scope["method"],
            target.raw_path,
            pairs,
            target.header_pairs,
            target.header,
            target.resource_path,
            self.region,
        )
        return Request(
            request_id=request_id,
            method=scope["method"],
            bucket=target.bucket,
            key=target.key,
            pairs=pairs,
            query=dict(pairs),
            header=target.header,
            identity=identity,
            walrus=self.walrus,
            receive=receive,
            send=send,
            scope=scope,
        )

    async def _authorize(self, request: Request, operation: str) -> None:
        """AccessDenied unless the policies allow the operation (off the event loop when
        that may read the database: a bucket not cached, an object's tags)."""
        if self.authorization.blocking(request, operation):
            await self.run(self.authorization.check, request, operation)
        else:
            self.authorization.check(request, operation)

    async def run(self, function, *args):
        """Run blocking Walrus work in the store's own thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def _reply(self, request: Request, reply: Reply | FileReply) -> None:
        send = request.send
        if isinstance(reply, FileReply):
            try:
                headers = _headers(reply.headers, request.request_id)
                headers.append((b"content-length", str(reply.length).encode()))
                await send(
                    {"type": "http.response.start", "status": reply.status, "headers": headers}
                )
                if request.method == "HEAD":
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                else:
                    spans = reply.reader.spans(reply.start, reply.start + reply.length)
                    await send_file(send, spans, self.executor)
            finally:
                reply.reader.close()
            return
        headers = _headers(reply.headers, request.request_id)
        await self._send(send, reply, headers, reply.body if request.method != "HEAD" else b"")

    @staticmethod
    async def _send(send, reply: Reply, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if reply.content_type and (reply.body or reply.status >= 300):
            headers.append((b"content-type", reply.content_type.encode()))
        if "content-length" not in reply.headers:
            headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _error(
        self,
        scope,
        send,
        error: CloudError,
        resource: str,
        request_id: str,
        unread: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        fields = getattr(error, "fields", None)
        body = (
            b""
            if scope.get("method") == "HEAD"
            else error_body(error.code, error.message, resource, request_id, fields)
        )
        headers = _headers({**error_headers(error), **(extra or {})}, request_id)
        headers.append((b"content-type", b"application/xml"))
        headers.append((b"content-length", str(len(body)).encode()))
        if unread:  # the body (perhaps held back by Expect: 100-continue) would follow
            headers.append((b"connection", b"close"))
        try:
            await send({"type": "http.response.start", "status": error.status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
        except RuntimeError:
            pass  # the response had already started: the connection is closed instead


@dataclass(frozen=True)
class _Target:
    header: dict[str, str]  # lower-case names; repeated headers joined with ","
    header_pairs: list[tuple[str, str]]
    raw_path: str
    resource_path: str
    bucket: str
    key: str


class _BodyState:
    """Whether the request body has been read to its end (else an error closes)."""

    def __init__(self, receive, scope) -> None:
        self._receive = receive
        headers = dict(scope["headers"])
        self.unread = bool(
            headers.get(b"transfer-encoding") or headers.get(b"content-length", b"0") != b"0"
        )

    async def receive(self):
        message = await self._receive()
        if not message.get("more_body", False):
            self.unread = False
        return message


def refusal(code: str, message: str) -> bytes:
    """The answer to a request refused by the HTTP layer (``serving.BoundedHttpProtocol``)."""
    request_id = new_s3_request_id()
    body = error_body(code, message, "/", request_id)
    headers = {"x-amz-request-id": request_id, "content-type": "application/xml"}
    return closing_answer(400, "Bad Request", headers, body)


def _headers(values: dict[str, str], request_id: str) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-amz-request-id", request_id.encode()), (b"x-amz-id-2", request_id.encode())]
    for name, value in values.items():
        headers.append((name.encode("latin-1"), value.encode("latin-1", "replace")))
    return headers


def s3_app(
    walrus: Walrus,
    keys: KeyStore,
    domain: str = "s3.localhost",
    policies: PolicySource = NO_POLICIES,
    region: str | None = None,
) -> S3Api:
    return S3Api(walrus, keys, domain, policies=policies, region=region)


def objectstorage_app(
    walrus: Walrus,
    keys: KeyStore,
    policies: PolicySource = NO_POLICIES,
    region: str | None = None,
) -> S3Api:
    """The same API under Eucalyptus's paths, for the EC2 port."""
    return S3Api(walrus, keys, prefixes=EUCALYPTUS_PREFIXES, policies=policies, region=region)
