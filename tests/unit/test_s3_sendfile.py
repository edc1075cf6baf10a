"""Sending object bytes: a client that stops reading is dropped, not waited for."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from karri.api.s3 import sendfile
from karri.api.s3.payload import ClientGone


def test_zero_copy_waits_on_the_loop_and_gives_up_on_a_stalled_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sendfile, "SEND_TIMEOUT", 0.2)
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(16 * 1024 * 1024))
    server, client = socket.socketpair()
    server.setblocking(False)
    fd = os.open(path, os.O_RDONLY)
    try:
        sent, full = sendfile._sendfile_some(server.fileno(), fd, 0, 16 * 1024 * 1024)
        assert full and 0 < sent < 16 * 1024 * 1024  # the socket buffer filled up

        async def wait() -> bool:
            return await sendfile._writable(asyncio.get_running_loop(), server.fileno())

        assert asyncio.run(wait()) is False  # nobody reads: given up
        client.setblocking(False)
        with pytest.raises(BlockingIOError):
            while client.recv(1 << 20):  # read what was sent
                pass
        assert asyncio.run(wait()) is True  # read: room again
    finally:
        os.close(fd)
        server.close()
        client.close()


def test_a_body_message_nobody_takes_drops_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sendfile, "SEND_TIMEOUT", 0.1)
    closed = []

    class Transport:
        def close(self) -> None:
            closed.append(True)

    async def stalled_send(_message) -> None:
        await asyncio.Event().wait()

    async def run() -> None:
        await sendfile._timed(stalled_send, Transport())({"type": "http.response.body"})

    with pytest.raises(ClientGone):
        asyncio.run(run())
    assert closed == [True]
