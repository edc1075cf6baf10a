"""A lean HTTP/1.1 keep-alive client for the small-operation benchmarks.

aiohttp spends about half a millisecond of CPU per request, which on a 2-core machine
makes the client, not the server, the bottleneck. This client writes the request bytes
itself and parses responses with httptools (the C parser uvicorn uses): a few tens of
microseconds per request, so the figures measure the server.
"""

from __future__ import annotations

import asyncio

import httptools


class Connection(asyncio.Protocol):
    """One keep-alive connection: ``await connection.request(raw)`` → (status, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.chunks: list[bytes] = []
        self.head = False
        self.buffer = b""

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        _transport, connection = await asyncio.get_running_loop().create_connection(cls, host, port)
        return connection

    async def request(self, raw: bytes, head: bool = False) -> tuple[int, bytes]:
        """Send one request (head and body as bytes); the response's status and body."""
        assert self.transport is not None
        self.chunks, self.head, self.buffer = [], head, b""
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.head:  # a HEAD response announces a length but has no body: read the head
            self.buffer += data
            if b"\r\n\r\n" in self.buffer:
                self._done(int(self.buffer.split(b" ", 2)[1]), b"")
            return
        self.parser.feed_data(data)

    def connection_lost(self, exc) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("connection closed"))

    def on_body(self, body: bytes) -> None:  # httptools callback
        self.chunks.append(body)

    def on_message_complete(self) -> None:  # httptools callback
        self._done(self.parser.get_status_code(), b"".join(self.chunks))

    def _done(self, status: int, body: bytes) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, body))
