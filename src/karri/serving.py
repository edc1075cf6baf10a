"""What every karri process that serves HTTP shares: uvicorn's settings, the listening
socket, the event loop and the garbage collector's tuning."""

from __future__ import annotations

import contextlib
import gc
import resource
import socket
from collections.abc import Callable
from functools import partial

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

BACKLOG = 2048
MAX_HEAD_BYTES = 64 * 1024  # the request line and the headers
LINGER_SECONDS = 2.0
HEAD_TOO_LARGE = "Your request header section exceeds the maximum allowed size."


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on the request line and headers.

    httptools has none (it gathers a header's value until its end): a client sending one
    endless header would grow the process without end. Past ``MAX_HEAD_BYTES`` the client
    gets ``refusal()`` (a complete HTTP answer, an error in the API's own shape); what it
    still sends is read and dropped for ``LINGER_SECONDS`` so that it can read the answer
    (closing at once would reset the connection and lose it), then the connection closes."""

    def __init__(self, *args, refusal: Callable[[], bytes], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._refusal = refusal
        self._in_head = True  # the parser is between two requests' bodies
        self._head_bytes = 0
        self._all_head = False  # every byte of the chunk being parsed is head
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._all_head = self._in_head
        super().data_received(data)
        if not (self._in_head and self._all_head) or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse()

    def _refuse(self) -> None:
        self._refused = True
        self.transport.write(self._refusal())
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._all_head = True, False  # the chunk held the end of a body


def closing_answer(status: int, reason: str, headers: dict[str, str], body: bytes) -> bytes:
    """A whole HTTP/1.1 response that closes the connection (for ``BoundedHttpProtocol``)."""
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    lines += [f"content-length: {len(body)}", "connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def bounded_http(head_too_large: Callable[[], bytes]) -> Callable[..., BoundedHttpProtocol]:
    """uvicorn's ``http`` setting for a ``BoundedHttpProtocol`` refusing with ``head_too_large``."""
    return partial(BoundedHttpProtocol, refusal=head_too_large)


def server_config(app, head_too_large: Callable[[], bytes]) -> uvicorn.Config:
    """uvicorn for karri (serving a socket from ``listen``): httptools with a bounded head
    (``head_too_large()`` answers a request past it), no access log (karri logs
    requests), no lifespan."""
    return uvicorn.Config(
        app,
        http=bounded_http(head_too_large),
        loop="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # clients talk to karri directly; no X-Forwarded-For to trust
        timeout_keep_alive=30,
        backlog=BACKLOG,
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
