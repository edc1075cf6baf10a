"""What every karri process that serves HTTP shares: uvicorn's settings, the listening
socket, the event loop and the garbage collector's tuning."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

BACKLOG = 2048
MAX_HEAD_BYTES = 64 * 1024  # the request line and the headers
IDLE_SECONDS = 20.0  # S3's: a client that owes bytes and sends none for this long is cut off
LINGER_SECONDS = 2.0
STOP_GRACE = 30.0  # seconds the requests running at a stop get to finish (a bound for `karri up`)
HEAD_TOO_LARGE = (
    "RequestHeaderSectionTooLarge",
    "Your request header section exceeds the maximum allowed size.",
)
BAD_REQUEST = ("BadRequest", "An error occurred when parsing the HTTP request.")
INCOMPLETE_BODY = (
    "IncompleteBody",
    "You did not provide the number of bytes specified by the Content-Length HTTP header.",
)
REQUEST_TIMEOUT = (
    "RequestTimeout",
    "Your socket connection to the server was not read from or written to within the "
    "timeout period. Idle connections will be closed.",
)
# (code, message) -> a whole HTTP answer closing the connection, in an API's own shape.
Refusal = Callable[[str, str], bytes]


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounds on what a client may make it wait for.

    - The request line and headers: httptools has no bound (it gathers a header's value
      until its end), so one endless header would grow the process without end. Past
      ``MAX_HEAD_BYTES`` the client gets ``HEAD_TOO_LARGE``.
    - Time: a client that has begun a request (or just connected) and then sends nothing
      for ``IDLE_SECONDS`` gets ``REQUEST_TIMEOUT`` (nothing if it sent nothing at all),
      so a stalled body or head holds no connection and no upload for ever. Not counted:
      while the request is being answered, and while karri itself stopped reading.

    - Framing: a request httptools cannot parse gets ``BAD_REQUEST`` in the API's own
      shape, not uvicorn's plain-text page; a client that ends its sending side in the
      middle of a body gets ``INCOMPLETE_BODY`` (uvicorn would close without a word).

    A refused client's further bytes are read and dropped for ``LINGER_SECONDS`` so that
    it can read the answer (closing at once would reset the connection and lose it). A
    client is refused once, whatever else is wrong with the same bytes; an unparsable
    request pipelined after good ones is refused after their answers, not over them.

    Over TLS, the client's certificate (if it gave one) is in each request's scope as the
    ASGI TLS extension has it (``extensions.tls.client_cert_chain``, PEM)."""

    def __init__(self, *args, refusal: Refusal, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._refusal = refusal
        self._in_head = True  # the parser is between two requests' bodies
        self._in_body = False
        self._head_bytes = 0
        self._all_head = False  # every byte of the chunk being parsed is head
        self._refused = False  # nothing more is read
        self._refusal_sent = False
        self._pending: tuple[str, str] | None = None  # a refusal waiting for answers
        self._idle: asyncio.TimerHandle | None = None
        self._tls: dict | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:
            der = tls.getpeercert(binary_form=True)
            chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
            self._tls = {"client_cert_chain": chain, "tls_version": tls.version()}
        self._watch_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watching()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._all_head = self._in_head
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            return
        if self._in_head and self._all_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(*HEAD_TOO_LARGE)
                return
        if (self._in_head and self._head_bytes) or self._in_body:
            self._watch_idle()
        else:
            self._stop_watching()

    def on_headers_complete(self) -> None:
        self._in_head, self._in_body, self._head_bytes = False, True, 0
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[typeddict-unknown-key]
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._in_body = True, False
        self._all_head = False  # the chunk held the end of a body

    def eof_received(self) -> bool | None:
        unanswered = self.cycle is not None and not self.cycle.response_started
        if self._in_body and unanswered and not self._refused:
            self._refuse(*INCOMPLETE_BODY)
            return True  # keep the transport to write the answer; _refuse closes it
        if self._pending is not None:
            return True  # answers, then the refusal, are still to be written
        return None

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse: after the answers to the requests
        before it on the connection, when it is a new request's head that is unparsable."""
        if self._in_head and self._answering():
            self._refused, self._pending = True, BAD_REQUEST
            self._stop_watching()
        else:
            self._refuse(*BAD_REQUEST)

    def _answering(self) -> bool:
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._pending is not None and not self._answering():
            refusal, self._pending = self._pending, None
            self._refuse(*refusal)

    def _watch_idle(self) -> None:
        self._stop_watching()
        self._idle = self.loop.call_later(IDLE_SECONDS, self._idled)

    def _stop_watching(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idled(self) -> None:
        self._idle = None
        if self.transport.is_closing() or self._refused:
            return
        unanswered = self.cycle is not None and not self.cycle.response_started
        if self.flow.read_paused:  # karri stopped reading, not the client sending
            self._watch_idle()
        elif (self._in_body and unanswered) or (self._in_head and self._head_bytes):
            self._refuse(*REQUEST_TIMEOUT)
        else:  # connected and sent nothing, or its answer has begun
            self.transport.close()

    def _refuse(self, code: str, message: str) -> None:
        if self._refusal_sent or self.transport.is_closing():
            return
        self._refused = self._refusal_sent = True
        self._stop_watching()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # its answer would follow the refusal: none
        self.transport.write(self._refusal(code, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def closing_answer(status: int, reason: str, headers: dict[str, str], body: bytes) -> bytes:
    """A whole HTTP/1.1 response that closes the connection (for a ``Refusal``)."""
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    lines += [f"content-length: {len(body)}", "connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def bounded_http(refusal: Refusal) -> Callable[..., BoundedHttpProtocol]:
    """uvicorn's ``http`` setting: a ``BoundedHttpProtocol`` answering with ``refusal``."""
    return partial(BoundedHttpProtocol, refusal=refusal)


@dataclass(frozen=True)
class MutualTls:
    """Serve TLS with ``cert``/``key``, and require a client certificate of ``ca``."""

    cert: Path
    key: Path
    ca: Path


def server_config(app, refusal: Refusal, tls: MutualTls | None = None) -> uvicorn.Config:
    """uvicorn for karri (serving a socket from ``listen``): httptools with bounds
    (``refusal`` answers a request past them), no access log (karri logs requests), no
    lifespan, requests still running ``STOP_GRACE`` seconds after a stop cut off; with
    ``tls``, mutual TLS."""
    options = {}
    if tls is not None:
        options = {
            "ssl_certfile": str(tls.cert),
            "ssl_keyfile": str(tls.key),
            "ssl_ca_certs": str(tls.ca),
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
        }
    return uvicorn.Config(
        app,
        http=bounded_http(refusal),
        ws="none",  # an Upgrade: websocket request is plain HTTP to karri
        loop="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # clients talk to karri directly; no X-Forwarded-For to trust
        timeout_keep_alive=30,
        timeout_graceful_shutdown=STOP_GRACE,
        backlog=BACKLOG,
        **options,
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, which several processes may then accept on (a child gets
    it through ``subprocess.Popen(pass_fds=...)``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def loop_factory():
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        return None


def settle_memory() -> None:
    """Call once everything long-lived is loaded (botocore's model, the apps).

    Keeps it out of the collector's way, and collects less often, so that large answers
    (a Describe of thousands of resources) do not keep re-scanning it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def raise_open_file_limit() -> None:
    """As many descriptors as allowed: a reader of a multipart object holds one per part."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= target:
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
