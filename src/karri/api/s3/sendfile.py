"""Sending a file range as a response body, zero-copy where the server allows.

Under uvicorn (httptools or h11) the ASGI ``send`` is a bound method of the connection's
request cycle, which holds the socket's transport. Once the headers are flushed, the
range goes out with ``os.sendfile`` from a worker thread on a duplicate of the socket
descriptor until the socket buffer is full, then the event loop waits for room (no
thread waits for a slow client); no byte is copied into Python. uvicorn is then told
the body is complete. Anything else gets the portable path: ``pread`` in a worker
thread and ordinary ``http.response.body`` messages; so do blobs that are not local files
(RADOS), whose every read is in a worker thread.

A client that takes no bytes for ``SEND_TIMEOUT`` seconds is dropped, on either path:
a stalled reader must not hold a file, a thread or a connection for long.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from concurrent.futures import Executor
from typing import Protocol

from karri.api.s3.payload import ClientGone

log = logging.getLogger("karri.api.s3")

READ_CHUNK = 1024 * 1024
INLINE_READ = 256 * 1024
SEND_TIMEOUT = 60.0  # seconds a client may take no bytes before it is dropped


class Readable(Protocol):
    """An open blob (``walrus.OpenBlob``): a descriptor, or reads only."""

    def fileno(self) -> int | None: ...

    def pread(self, size: int, offset: int) -> bytes: ...


def _transport_of(send):
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if cycle is None or transport is None or not hasattr(cycle, "expected_content_length"):
        return None, None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None, None
    return cycle, transport


async def send_file(send, spans: Iterable[tuple[Readable, int, int]], executor: Executor) -> None:
    """Send the (blob, offset, length) pieces in turn after ``http.response.start``,
    then end the body."""
    cycle, transport = _transport_of(send)
    for blob, offset, length in spans:
        fd = blob.fileno()
        if fd is not None and cycle is not None and length > 64 * 1024:
            sent = await _zero_copy(cycle, transport, fd, offset, length, executor)
            if sent is not None:
                cycle.expected_content_length -= sent
                if sent < length:  # the client went away (or stalled): end the connection
                    transport.close()
                    return
                continue
        local = fd is not None and length <= INLINE_READ  # a small file: no thread hop
        if not await _copying(_timed(send, transport), blob, offset, length, executor, local):
            break
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _timed(send, transport):
    """``send``, dropping the client (ClientGone) when it takes nothing for SEND_TIMEOUT."""

    async def timed(message) -> None:
        try:
            await asyncio.wait_for(send(message), SEND_TIMEOUT)
        except TimeoutError:
            if transport is not None:
                transport.close()
            raise ClientGone() from None

    return timed


async def _copying(
    send, blob: Readable, offset: int, length: int, executor: Executor, local: bool
) -> bool:
    """Send one piece through ordinary body messages; False if the blob ran short.
    ``local``: read right here (a small file, from the page cache)."""
    loop = asyncio.get_running_loop()
    end = offset + length
    while offset < end:
        size = min(READ_CHUNK, end - offset)
        if local:
            data = blob.pread(size, offset)
        else:
            data = await loop.run_in_executor(executor, blob.pread, size, offset)
        if not data:
            return False
        offset += len(data)
        await send({"type": "http.response.body", "body": data, "more_body": True})
    return True


async def _zero_copy(cycle, transport, fd, offset, length, executor) -> int | None:
    """Bytes sent with sendfile, or None when it cannot be used here."""
    # Let the event loop flush the status line and headers first.
    for _ in range(1000):
        if transport.get_write_buffer_size() == 0:
            break
        await asyncio.sleep(0.001)
    else:
        return None
    try:
        sock_fd = os.dup(transport.get_extra_info("socket").fileno())
    except (OSError, AttributeError):
        return None
    loop = asyncio.get_running_loop()
    sent = 0
    try:
        while sent < length:
            count, full = await loop.run_in_executor(
                executor, _sendfile_some, sock_fd, fd, offset + sent, length - sent
            )
            sent += count
            if not full or not await _writable(loop, sock_fd):
                break
    finally:
        os.close(sock_fd)
    return sent


async def _writable(loop: asyncio.AbstractEventLoop, sock_fd: int) -> bool:
    """Wait on the event loop until the socket takes bytes again; False after
    SEND_TIMEOUT seconds without room (a client that stopped reading)."""
    ready = loop.create_future()
    loop.add_writer(sock_fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, SEND_TIMEOUT)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_writer(sock_fd)


def _sendfile_some(sock_fd: int, fd: int, offset: int, length: int) -> tuple[int, bool]:
    """(bytes sent, whether the socket buffer filled up before the end). Fewer bytes and
    no full buffer: the client went away."""
    sent = 0
    while sent < length:
        try:
            count = os.sendfile(sock_fd, fd, offset + sent, length - sent)
        except BlockingIOError:
            return sent, True
        except OSError:
            return sent, False  # the client went away
        if count == 0:
            return sent, False
        sent += count
    return sent, False
