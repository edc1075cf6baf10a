"""The metadata service at http://169.254.169.254 inside the instances' namespace.

An instance is identified by the source address of its request (the namespace's nftables
rules keep a guest from sending from any address but its own). Both IMDSv1 and IMDSv2:
``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` (1-21600) gives a
session token bound to the instance; a GET carrying ``X-aws-ec2-metadata-token`` must
carry a valid one (401 otherwise), and an instance whose ``http_tokens`` is ``required``
gets 401 without one. Tokens are HMACs over (instance, expiry) with a key kept in the
data dir, so they outlive a restart of the node controller.

The identity document's signed views come from ``node/signedviews.py`` when asked for
(503 when the cloud cannot sign them now, 404 when it refuses).

It is served by uvicorn on a socket created inside the namespace, in the node's own event
loop; the same server listens anywhere else it is given a socket (the tests use loopback).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import inspect
import logging
import socket
import time
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from karri.node.identity import VIEWS
from karri.node.metadata import (
    VERSIONS,
    Directory,
    InstanceMetadata,
    MetadataLookup,
    SignedView,
    resolve,
    version_tree,
)
from karri.node.signedviews import Refused, SignedViews, Unavailable
from karri.serving import bounded_http, closing_answer

log = logging.getLogger("karri.node")

TOKEN_PATH = "/latest/api/token"
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
MAX_TTL = 21600

_ERROR_PAGE = """<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>{status} - {reason}</title>
 </head>
 <body>
  <h1>{status} - {reason}</h1>
 </body>
</html>
"""
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class Tokens:
    """IMDSv2 session tokens: ``<expiry>.<instance>.<hmac>``, base64url."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def issue(self, instance_id: str, ttl: int, now: float | None = None) -> str:
        payload = f"{int((now or time.time()) + ttl)}.{instance_id}".encode()
        return base64.urlsafe_b64encode(payload + b"." + self._mac(payload)).decode()

    def valid(self, token: str, instance_id: str, now: float | None = None) -> bool:
        try:
            raw = base64.urlsafe_b64decode(token.encode())
            expiry, owner, mac = raw.split(b".", 2)
        except ValueError:
            return False
        if not hmac.compare_digest(mac, self._mac(expiry + b"." + owner)):
            return False
        return owner.decode() == instance_id and int(expiry) > (now or time.time())


def _error(status: int) -> Response:
    reason = _REASONS[status]
    body = _ERROR_PAGE.format(status=status, reason=reason)
    return Response(body, status, media_type="text/html", headers={"Server": "EC2ws"})


def _refusal(_code: str, _message: str) -> bytes:
    body = _ERROR_PAGE.format(status=400, reason="Bad Request").encode()
    headers = {"content-type": "text/html", "server": "EC2ws"}
    return closing_answer(400, "Bad Request", headers, body)


def _text(body: str | bytes, media_type: str = "text/plain", **headers: str) -> Response:
    return Response(body, 200, media_type=media_type, headers={"Server": "EC2ws", **headers})


class MetadataService:
    def __init__(
        self, lookup: MetadataLookup, tokens: Tokens, signed: SignedViews | None = None
    ) -> None:
        self._lookup = lookup
        self.tokens = tokens
        self._signed = signed
        self._views = VIEWS if signed is not None else ()
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "PUT"])])
        self._server: _Server | None = None
        self._task: asyncio.Task | None = None

    async def start(self, sock: socket.socket) -> None:
        """Serve on ``sock`` (bound) in the running loop."""
        config = uvicorn.Config(
            self.app,
            http=bounded_http(_refusal),  # a guest must not grow karri's process
            ws="none",
            lifespan="off",
            loop="none",
            access_log=False,
            log_config=None,
            server_header=False,
            date_header=False,
            proxy_headers=False,
            timeout_keep_alive=5,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self._server and self._task:
            self._server.should_exit = True
            await self._task
        self._server = None
        self._task = None

    async def _instance(self, ip: str) -> InstanceMetadata | None:
        result = self._lookup(ip)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _handle(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        client = request.client.host if request.client else ""
        meta = await self._instance(client)
        if request.method == "PUT":
            return self._token(request, path, meta)
        if meta is None:
            return _error(404)
        token = request.headers.get(TOKEN_HEADER)
        if token is not None:
            if not self.tokens.valid(token, meta.instance_id):
                return _error(401)
        elif meta.http_tokens == "required":
            return _error(401)
        if path == "/":
            return _text("\n".join(VERSIONS))
        version, _, rest = path[1:].partition("/")
        if version not in VERSIONS:
            return _error(404)
        node = resolve(version_tree(meta, self._views), rest)
        if node is None:
            return _error(404)
        if isinstance(node, SignedView):
            return await self._signed_view(meta.instance_id, node)
        if isinstance(node, Directory):
            return _text(node.text())
        if isinstance(node, bytes):
            return _text(node, "application/octet-stream")
        return _text(node)

    async def _signed_view(self, instance_id: str, view: SignedView) -> Response:
        """A signed view: 404 when the cloud refuses, 503 when it cannot sign now (a
        client retries: botocore's fetcher does on any status but 200)."""
        assert self._signed is not None
        try:
            return _text(await self._signed.view(instance_id, view.document, view.name))
        except Refused:
            return _error(404)
        except Unavailable as error:
            log.warning("%s: identity document not signed: %s", instance_id, error)
            return _error(503)

    def _token(self, request: Request, path: str, meta: InstanceMetadata | None) -> Response:
        if path != TOKEN_PATH:
            return _error(405)
        if "x-forwarded-for" in request.headers:
            return _error(403)
        try:
            ttl = int(request.headers.get(TTL_HEADER, ""))
        except ValueError:
            return _error(400)
        if not 1 <= ttl <= MAX_TTL:
            return _error(400)
        if meta is None:
            return _error(404)
        token = self.tokens.issue(meta.instance_id, ttl)
        return _text(token, **{"X-Aws-Ec2-Metadata-Token-Ttl-Seconds": str(ttl)})


class _Server(uvicorn.Server):
    """Leaves signal handling to the process that runs the node."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
