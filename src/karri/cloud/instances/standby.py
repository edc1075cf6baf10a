"""The instances' driver of a standby front end (``cloud/leadership.py``): it serves the
API while another front end runs the reconciler. What a call asks of a node now (console
output, status checks, a reboot) goes straight to the instance's joined node through its
agent, with the cloud's client certificate, as the leader's would; the rest is in the
database, which the leader polls: ``wake`` does nothing (its reconciler passes every few
seconds). RunInstances places instances on the ENABLED joined nodes with an agent address
(the leader connects them; an instance of a node it cannot reach waits there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

from karri.cloud.instances import failover
from karri.cloud.instances.fleet import BROKEN, SCHEDULABLE, Connection, NodeListing
from karri.cloud.instances.placement import NodeName, NodeSlot
from karri.node import InstanceHealth, NodeError

T = TypeVar("T")


class Directory(Protocol):
    """The joined nodes (``cloud/nodes/directory.py``)."""

    def listed(self) -> list[NodeListing]: ...
    def connect(self, name: str, url: str) -> Connection: ...


class StandbyDriver:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def wake(self) -> None:
        """Nothing: the leader finds the work in the database at its next pass."""

    def slots(self) -> list[NodeSlot]:
        return [
            NodeSlot(n.name, n.zone, n.vcpus, n.memory_mib)
            for n in sorted(self.directory.listed(), key=lambda n: n.name)
            if n.state == SCHEDULABLE and n.agent_url
        ]

    def node_broken(self, node: NodeName) -> bool:
        return self._listing(node, BROKEN) is not None

    def health(self, instance_id: str, node: NodeName) -> InstanceHealth | str:
        broken = self._listing(node, BROKEN)
        if broken is not None:
            return failover.broken_health(instance_id, broken)
        try:
            return self._call(node, lambda remote: remote.health(instance_id))
        except NodeError:
            return "the node does not know this instance (yet)"

    def console_output(self, instance_id: str, node: NodeName) -> bytes:
        try:
            return self._call(node, lambda remote: remote.console_output(instance_id))
        except NodeError:
            return b""

    def reboot(self, instance_id: str, node: NodeName) -> None:
        remote = self._remote(node)

        async def reboot() -> None:
            try:
                await remote.reboot(instance_id)
            finally:
                await remote.disconnect()

        asyncio.run(reboot())

    def _listing(self, node: NodeName, state: str | None = None) -> NodeListing | None:
        if node is None:
            return None
        found = next((n for n in self.directory.listed() if n.name == node), None)
        return found if found is not None and state in (None, found.state) else None

    def _remote(self, node: NodeName) -> Connection:
        listing = self._listing(node)
        if listing is None or not listing.agent_url:
            raise NodeError(f"node {node or '(the cloud own)'} is not reachable from here")
        return self.directory.connect(listing.name, listing.agent_url)

    def _call(self, node: NodeName, call: Callable[[Connection], T]) -> T:
        """``call`` with the node's synchronous calls (on the API's thread)."""
        remote = self._remote(node)
        try:
            return call(remote)
        finally:
            asyncio.run(remote.disconnect())
