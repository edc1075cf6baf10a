"""Sending a file range as a response body, zero-copy where the server allows.

Under uvicorn (httptools or h11) the ASGI ``send`` is a bound method of the connection's
request cycle, which holds the socket's transport. Once the headers are flushed, the
range goes out with ``os.sendfile`` from a worker thread on a duplicate of the socket
descriptor, waiting with ``poll`` when the socket buffer is full; the event loop keeps
serving other connections meanwhile, and no byte is copied into Python. uvicorn is
then told the body is complete. Anything else gets the portable path: ``pread`` in a
worker thread and ordinary ``http.response.body`` messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
from collections.abc import Iterable
from concurrent.futures import Executor

log = logging.getLogger("karri.api.s3")

READ_CHUNK = 1024 * 1024
INLINE_READ = 256 * 1024
SEND_TIMEOUT_MS = 60_000


def _transport_of(send):
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if cycle is None or transport is None or not hasattr(cycle, "expected_content_length"):
        return None, None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None, None
    return cycle, transport


async def send_file(send, spans: Iterable[tuple[int, int, int]], executor: Executor) -> None:
    """Send the (descriptor, offset, length) pieces in turn after ``http.response.start``,
    then end the body."""
    cycle, transport = _transport_of(send)
    for fd, offset, length in spans:
        if cycle is not None and length > 64 * 1024:
            sent = await _zero_copy(cycle, transport, fd, offset, length, executor)
            if sent is not None:
                cycle.expected_content_length -= sent
                if sent < length:  # the client went away (or stalled): end the connection
                    transport.close()
                    return
                continue
        if not await _copying(send, fd, offset, length, executor):
            break
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _copying(send, fd: int, offset: int, length: int, executor: Executor) -> bool:
    """Send one piece through ordinary body messages; False if the file ran short."""
    loop = asyncio.get_running_loop()
    end = offset + length
    while offset < end:
        size = min(READ_CHUNK, end - offset)
        if length <= INLINE_READ:  # a small object: pread from the page cache right here
            data = os.pread(fd, size, offset)
        else:
            data = await loop.run_in_executor(executor, os.pread, fd, size, offset)
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
    try:
        return await loop.run_in_executor(executor, _sendfile_all, sock_fd, fd, offset, length)
    finally:
        os.close(sock_fd)


def _sendfile_all(sock_fd: int, fd: int, offset: int, length: int) -> int:
    poller = select.poll()
    poller.register(sock_fd, select.POLLOUT)
    sent = 0
    while sent < length:
        try:
            count = os.sendfile(sock_fd, fd, offset + sent, length - sent)
        except BlockingIOError:
            events = poller.poll(SEND_TIMEOUT_MS)
            if not events or events[0][1] & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                break
            continue
        except OSError:
            break  # the client went away
        if count == 0:
            break
        sent += count
    return sent
