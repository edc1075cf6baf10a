"""Public addresses: TCP forwarding from a host address to an instance's private IP.

A single-host cloud has no routable addresses to hand out, so an instance's public IP is
an address of the host's loopback range (default pool 127.64.0.0/16). The node listens on
it (port 22 by default) in the host's namespace and, per connection, opens a socket inside
the instances' namespace to the private IP. An address counts as free when every
forwarded port binds on it, which is what keeps several clouds on one host apart (and
fails on a host whose own service listens on 0.0.0.0:22: nothing can bind that port then).
The forwarders live in the node controller's process: while it is down, they are too.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from karri.node.errors import NetworkError
from karri.node.netns import Namespace

log = logging.getLogger("karri.node")

MAX_TRIES = 256
CONNECT_TIMEOUT = 10.0


@dataclass
class _Published:
    public_ip: str
    private_ip: str
    servers: list[asyncio.Server]
    connections: set[asyncio.Task] = field(default_factory=set)


class PortForwarder:
    def __init__(self, ns: Namespace, pool: str, ports: tuple[int, ...], seed: str) -> None:
        self.ns = ns
        self.pool = IPv4Network(pool)
        self.ports = ports
        self._start = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
        self._published: dict[str, _Published] = {}

    def public_ip(self, instance_id: str) -> str | None:
        published = self._published.get(instance_id)
        return published.public_ip if published else None

    async def publish(self, instance_id: str, private_ip: str, want: str | None = None) -> str:
        """Listen on ``want`` if it is free, else on a free pool address; returns it."""
        await self.unpublish(instance_id)
        for address in self._candidates(want):
            listeners = _bind_all(address, self.ports)
            if listeners is None:
                continue
            published = _Published(address, private_ip, [])
            for sock in listeners:
                port = sock.getsockname()[1]
                server = await asyncio.start_server(
                    lambda r, w, p=port, pub=published: self._accept(pub, p, r, w), sock=sock
                )
                published.servers.append(server)
            self._published[instance_id] = published
            log.info(
                "%s: public address %s -> %s ports %s", instance_id, address, private_ip, self.ports
            )
            return address
        raise NetworkError(
            f"no free address in {self.pool} for ports {self.ports} after {MAX_TRIES} tries"
            " (does a host service listen on 0.0.0.0 on one of them?)"
        )

    async def unpublish(self, instance_id: str) -> None:
        published = self._published.pop(instance_id, None)
        if published is None:
            return
        for server in published.servers:
            server.close()
        for task in list(published.connections):
            task.cancel()
        await asyncio.gather(*published.connections, return_exceptions=True)

    async def close(self) -> None:
        for instance_id in list(self._published):
            await self.unpublish(instance_id)

    def _candidates(self, want: str | None):
        if want and IPv4Address(want) in self.pool:
            yield want
        size = self.pool.num_addresses
        first = int(self.pool.network_address)
        for i in range(MAX_TRIES):
            address = IPv4Address(first + (self._start + i) % size)
            if address not in (self.pool.network_address, self.pool.broadcast_address):
                yield str(address)

    async def _accept(
        self,
        published: _Published,
        port: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        published.connections.add(task)
        try:
            await self._relay(published.private_ip, port, reader, writer)
        finally:
            published.connections.discard(task)
            writer.close()

    async def _relay(
        self, private_ip: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        sock = self.ns.socket()
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, (private_ip, port)), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            log.debug("forward to %s:%d failed: %s", private_ip, port, exc)
            sock.close()
            return
        inner_reader, inner_writer = await asyncio.open_connection(sock=sock)
        try:
            await asyncio.gather(_pipe(reader, inner_writer), _pipe(inner_reader, writer))
        finally:
            inner_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the half-close on."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


def _bind_all(address: str, ports: tuple[int, ...]) -> list[socket.socket] | None:
    """Listening sockets on every port of ``address``, or None if one is taken."""
    socks: list[socket.socket] = []
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(128)
            sock.setblocking(False)
    except OSError as exc:
        for sock in socks:
            sock.close()
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        return None
    return socks
