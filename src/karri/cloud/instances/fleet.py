"""The nodes the reconciler drives: the cloud's own (in process, named None) and each
joined node on another host, reached through a driver of its own (``RemoteNode``).

``refresh`` (each reconciler pass) reads the registry (``NodeDirectory``): a node with an
agent address gets a driver, started once (its adoption report goes to ``on_connected``)
and kept while the node stays listed at that address; a removed node's driver is dropped.
A connection that fails is tried again at the next pass. Only ENABLED nodes that are
connected take new instances (``slots``); a DISABLED or BROKEN one keeps its driver for
the instances it still holds. A BROKEN node (its heartbeats missed) that beats again is
connected anew: its adoption report is checked against the cloud's view
(``on_connected``). Without joined nodes nothing here costs more than one read of the
(empty) registry per pass. A cloud may run no node of its own (``local`` None, `karri up
--no-local-node`): then only joined nodes take instances, and an instance placed on the
cloud's own node (by an earlier front end that had one) waits (``NodeNotConnected``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Protocol
from urllib.parse import urlsplit

from karri.cloud.instances.node_driver import NodeDriver
from karri.cloud.instances.placement import NodeName, NodeSlot
from karri.node import AdoptReport, NodeError

log = logging.getLogger("karri.reconciler")

SCHEDULABLE = "ENABLED"
BROKEN = "BROKEN"


@dataclass(frozen=True)
class NodeListing:
    """A joined node as the registry knows it (capacity after the cloud's over-commit)."""

    name: str
    zone: str
    state: str  # ENABLED, DISABLED, BROKEN, NOTREADY
    agent_url: str | None
    vcpus: int
    memory_mib: int
    last_seen: float | None = None  # Unix time of its last heartbeat


class Connection(NodeDriver, Protocol):
    async def disconnect(self) -> None:
        """Let go of the node (it runs on)."""
        ...


class NodeDirectory(Protocol):
    """The registry of joined nodes (``cloud/nodes/directory.py``)."""

    def listed(self) -> list[NodeListing]:
        """Every joined node (blocking)."""
        ...

    def connect(self, name: str, url: str) -> Connection: ...


class NodeNotConnected(NodeError):
    """The instance's node has no driver now (not reached yet, or removed)."""


Connected = Callable[[str, NodeDriver, AdoptReport], Awaitable[None]]


class Fleet:
    def __init__(
        self,
        local: NodeDriver | None,
        zone: str,
        directory: NodeDirectory | None = None,
        on_connected: Connected | None = None,
        local_address: str | None = None,
    ) -> None:
        self.local = local
        self.local_address = local_address
        self.zone = zone
        self.directory = directory
        self.on_connected = on_connected
        self.remotes: dict[str, Connection] = {}
        self._urls: dict[str, str] = {}
        self._listing: list[NodeListing] = []
        self._connecting: dict[str, asyncio.Task[None]] = {}

    def driver(self, name: NodeName) -> NodeDriver:
        if name is None:
            if self.local is None:
                raise NodeNotConnected("this cloud runs no node of its own (--no-local-node)")
            return self.local
        remote = self.remotes.get(name)
        if remote is None:
            raise NodeNotConnected(f"node {name} is not connected")
        return remote

    def address(self, name: NodeName) -> str | None:
        """The node's own address on the hosts' network (its VPCs' VXLAN devices carry
        frames over it): the cloud's (``local_address``), or the host of a connected
        node's agent URL, resolved to an IPv4 address; None when not known (or a wildcard
        such as 0.0.0.0, which names no one address)."""
        if name is None:
            return _ipv4(self.local_address) if self.local is not None else None
        url = self._urls.get(name)
        return _ipv4(urlsplit(url).hostname if url else None)

    def connected(self, names: Sequence[NodeName]) -> list[NodeName]:
        """The cloud's own node (None, if it has one) and those of ``names`` that are
        connected."""
        own: list[NodeName] = [None] if self.local is not None else []
        return [*own, *sorted({n for n in names if n is not None and n in self.remotes})]

    def reachable(self) -> list[str]:
        """The joined nodes connected now and not BROKEN, by name (the health answer)."""
        broken = {n.name for n in self._listing if n.state == BROKEN}
        return sorted(name for name in self.remotes if name not in broken)

    def broken(self, name: NodeName) -> NodeListing | None:
        """The node's listing if it is BROKEN (its heartbeats missed), else None."""
        if name is None:
            return None
        return next((n for n in self._listing if n.name == name and n.state == BROKEN), None)

    def slots(self) -> list[NodeSlot]:
        """The nodes that take new instances now: the cloud's own (if it has one), then
        each connected ENABLED node, by name. Called from API threads."""
        own = []
        if self.local is not None:
            capacity = self.local.capacity()
            own = [NodeSlot(None, self.zone, capacity.vcpus_total, capacity.memory_mib_total)]
        return [
            *own,
            *(
                NodeSlot(n.name, n.zone, n.vcpus, n.memory_mib)
                for n in self._listing
                if n.state == SCHEDULABLE and n.name in self.remotes
            ),
        ]

    async def refresh(self) -> None:
        if self.directory is None:
            return
        listing = await asyncio.to_thread(self.directory.listed)
        was_broken = {n.name for n in self._listing if n.state == BROKEN}
        self._listing = sorted(listing, key=lambda n: n.name)
        listed = {n.name: n for n in listing}
        for name in [n for n in self.remotes if n not in listed]:
            await self._drop(name)
        for name in [n.name for n in listing if n.name in was_broken and n.state != BROKEN]:
            log.info("node %s is heard from again: connected anew", name)
            await self._drop(name)  # its agent may have restarted at the same address
        for node in self._listing:
            if not node.agent_url or node.name in self._connecting:
                continue
            if self._urls.get(node.name) == node.agent_url:
                continue
            task = asyncio.create_task(self._connect(node.name, node.agent_url))
            self._connecting[node.name] = task

    async def _connect(self, name: str, url: str) -> None:
        assert self.directory is not None
        try:
            await self._drop(name)
            remote = self.directory.connect(name, url)
            try:
                report = await remote.start()
            except NodeError as error:
                log.warning("node %s at %s: %s (tried again at the next pass)", name, url, error)
                await remote.disconnect()
                return
            self.remotes[name], self._urls[name] = remote, url
            log.info(
                "node %s connected at %s; %d instance(s) adopted", name, url, len(report.running)
            )
            if self.on_connected is not None:
                await self.on_connected(name, remote, report)
        except Exception:
            log.exception("connecting node %s", name)
        finally:
            self._connecting.pop(name, None)

    async def _drop(self, name: str) -> None:
        remote = self.remotes.pop(name, None)
        self._urls.pop(name, None)
        if remote is not None:
            await remote.disconnect()

    async def close(self) -> None:
        for task in list(self._connecting.values()):
            task.cancel()
        await asyncio.gather(*self._connecting.values(), return_exceptions=True)
        for name in list(self.remotes):
            await self._drop(name)


def _ipv4(host: str | None) -> str | None:
    if not host:
        return None
    try:
        address = IPv4Address(host)
    except ValueError:
        try:
            address = IPv4Address(socket.gethostbyname(host))
        except (OSError, ValueError):
            return None
    return None if address.is_unspecified else str(address)
