"""Public addresses: a free pool address is found by binding, and connections are relayed
into a network namespace through sockets the karri process opens inside it (setns)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Iterator

import pytest

from karri.node.forward import PortForwarder
from karri.node.netns import Namespace

from .conftest import needs_root

pytestmark = needs_root


@pytest.fixture
def ns() -> Iterator[Namespace]:
    namespace = Namespace(f"karri-test-fwd-{os.getpid()}")
    subprocess.run(["ip", "netns", "add", namespace.name], check=True)
    subprocess.run(["ip", "-n", namespace.name, "link", "set", "lo", "up"], check=True)
    yield namespace
    subprocess.run(["ip", "netns", "delete", namespace.name], check=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sockets_made_inside_live_there(ns: Namespace) -> None:
    sock = ns.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        listening = f"127.0.0.1:{sock.getsockname()[1]} "
        inside = ["ip", "netns", "exec", ns.name, "ss", "-ltnH"]
        assert listening in subprocess.run(inside, capture_output=True, text=True).stdout
        host = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        assert listening not in host
    finally:
        sock.close()


def test_publish_takes_a_free_address_and_relays(ns: Namespace) -> None:
    port = _free_port()

    async def scenario() -> None:
        # an echo server inside the namespace, on its loopback
        inner = ns.socket()
        inner.bind(("127.0.0.1", port))
        inner.listen()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hello " + await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, sock=inner)
        forwarder = PortForwarder(ns, "127.64.0.0/16", (port,), "seed")
        taken = socket.socket()
        taken.bind(("127.64.1.1", port))
        taken.listen()  # someone else (another cloud) has this one
        try:
            address = await forwarder.publish("i-00000001", "127.0.0.1", "127.64.1.1")
            assert address != "127.64.1.1" and address.startswith("127.64.")
            assert forwarder.public_ip("i-00000001") == address
            assert await forwarder.publish("i-00000002", "127.0.0.1") not in (address, None)
            reader, writer = await asyncio.open_connection(address, port)
            writer.write(b"world\n")
            assert await reader.read() == b"hello world\n"
            writer.close()
            await forwarder.unpublish("i-00000001")
            assert forwarder.public_ip("i-00000001") is None
            with pytest.raises(OSError):
                await asyncio.open_connection(address, port)
        finally:
            taken.close()
            await forwarder.close()
            server.close()

    asyncio.run(scenario())
