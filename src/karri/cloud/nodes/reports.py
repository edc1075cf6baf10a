"""What nodes on other hosts tell the cloud through its gateway (``api/nodes.py``): their
guests' ends, their own relaunches, and their metadata service's questions.

A node is heard only about the instances placed on it (``Placements``: the instance's
``node`` column, ``directory.InstanceNodes``): another node's instance's metadata (its
role's credentials, its user data) is never answered, and no node ends another's
instance. The cloud's own node (in process) never reports here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from karri.node import InstanceExit, InstanceMetadata, NodeEvent


class Placements(Protocol):
    def node_of(self, instance_id: str) -> str | None:
        """The name of the node on another host that hosts the instance (None: none does,
        or the instance is unknown). Called off the event loop."""
        ...


class Hearer(Protocol):
    """What hears a node's reports: the reconciler (``cloud/instances/reconciler.py``)."""

    async def lookup(self, instance_id: str) -> InstanceMetadata | None: ...
    def on_exit(self, report: InstanceExit) -> None: ...
    def on_recovery(self, instance_id: str, event: NodeEvent) -> None: ...


class NodeReports:
    """Hands a node's reports on to the hearer (once there is one), for its instances only.
    Each answers whether it was taken."""

    def __init__(self, placements: Placements, hearer: Callable[[], Hearer | None]) -> None:
        self.placements = placements
        self.hearer = hearer

    async def _hears(self, node: str, instance_id: str) -> Hearer | None:
        placed = await asyncio.to_thread(self.placements.node_of, instance_id)
        return self.hearer() if placed == node else None

    async def lookup(self, node: str, instance_id: str) -> InstanceMetadata | None:
        hearer = await self._hears(node, instance_id)
        return None if hearer is None else await hearer.lookup(instance_id)

    async def exit(self, node: str, report: InstanceExit) -> bool:
        hearer = await self._hears(node, report.instance_id)
        if hearer is not None:
            hearer.on_exit(report)
        return hearer is not None

    async def recovery(self, node: str, instance_id: str, event: NodeEvent) -> bool:
        hearer = await self._hears(node, instance_id)
        if hearer is not None:
            hearer.on_recovery(instance_id, event)
        return hearer is not None
