"""What every karri process that serves HTTP shares: uvicorn's settings, the listening
socket, the event loop and the garbage collector's tuning."""

from __future__ import annotations

import contextlib
import gc
import resource
import socket

import uvicorn

BACKLOG = 2048


def server_config(app) -> uvicorn.Config:
    """uvicorn for karri (serving a socket from ``listen``): httptools, no access log
    (karri logs requests), no lifespan."""
    return uvicorn.Config(
        app,
        http="httptools",
        loop="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # clients talk to karri directly; no X-Forwarded-For to trust
        timeout_keep_alive=30,
        h11_max_incomplete_event_size=64 * 1024,
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
