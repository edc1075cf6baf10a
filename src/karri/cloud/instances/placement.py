"""Which node runs each instance: Eucalyptus's scheduling policies over the nodes of a zone.

A node is a ``NodeSlot``: its name (None: the cloud's own node), its zone (a zone is a
group of nodes) and its totals after over-commit. What instances already hold on each is
counted by the caller (``Instances``, from the database). ``Scheduler.place`` answers a
node for each instance asked for, every one where it fits (vCPUs and memory), all or
nothing at ``min_count``:

- ``GREEDY`` fills the first node (in the order given: the cloud's own, then by name)
  before it uses the next, as Eucalyptus's GREEDY does;
- ``ROUNDROBIN`` (the default: it spreads) gives each instance the node after the last one
  used, skipping those that are full; the pointer outlives the call, so one-instance
  launches spread too.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from karri.cloud.instances import states
from karri.cloud.instances.models import Instance

GREEDY = "greedy"
ROUNDROBIN = "roundrobin"
POLICIES = (GREEDY, ROUNDROBIN)

NodeName = str | None  # None: the cloud's own node


@dataclass(frozen=True)
class NodeSlot:
    """A node that may take instances: its totals after over-commit."""

    name: NodeName
    zone: str
    vcpus: int
    memory_mib: int


@dataclass(frozen=True)
class Demand:
    """What one instance holds on its node."""

    vcpus: int
    memory_mib: int


class NoRoom(Exception):
    """Fewer than ``min_count`` instances fit on the zone's nodes."""


class Scheduler:
    def __init__(self, policy: str = ROUNDROBIN) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown scheduling policy {policy!r}: one of {POLICIES}")
        self.policy = policy
        self._last: dict[str, object] = {}  # per zone: the node round robin used last
        self._lock = threading.Lock()

    def place(
        self,
        slots: Sequence[NodeSlot],
        used: Mapping[NodeName, tuple[int, int]],
        demands: Sequence[Demand],
        min_count: int,
    ) -> list[NodeName]:
        """A node for each of the first demands that fit (at least ``min_count``, else
        ``NoRoom``); ``used`` is what each node's instances hold now (vCPUs, MiB)."""
        free = {
            slot.name: [
                slot.vcpus - used.get(slot.name, (0, 0))[0],
                slot.memory_mib - used.get(slot.name, (0, 0))[1],
            ]
            for slot in slots
        }
        order = [slot.name for slot in slots]
        zone = slots[0].zone if slots else ""
        placed: list[NodeName] = []
        with self._lock:
            last: object = self._last.get(zone, _NONE)  # a node's name may be None
            for demand in demands:
                node = self._choose(order, free, demand, last)
                if node is _NONE:
                    break
                room = free[node]  # type: ignore[index]
                room[0] -= demand.vcpus
                room[1] -= demand.memory_mib
                placed.append(node)  # type: ignore[arg-type]
                last = node
            if len(placed) < min_count:
                raise NoRoom(f"{len(placed)} of {min_count} instance(s) fit")
            if placed:
                self._last[zone] = placed[-1]
        return placed

    def _choose(
        self,
        order: list[NodeName],
        free: Mapping[NodeName, list[int]],
        demand: Demand,
        last: object,
    ) -> object:
        start = 0
        if self.policy == ROUNDROBIN and last in order:
            start = order.index(last) + 1
        for offset in range(len(order)):
            node = order[(start + offset) % len(order)]
            cpu, memory = free[node]
            if cpu >= demand.vcpus and memory >= demand.memory_mib:
                return node
        return _NONE


_NONE = object()  # no node has room


def used_by_node(session: Session) -> dict[NodeName, tuple[int, int]]:
    """What the instances holding their share (``ACTIVE``) hold on each node."""
    rows = session.execute(
        select(
            Instance.node,
            func.coalesce(func.sum(Instance.vcpus), 0),
            func.coalesce(func.sum(Instance.memory_mib), 0),
        )
        .where(Instance.state.in_(states.ACTIVE))
        .group_by(Instance.node)
    )
    return {node: (int(cpu), int(memory)) for node, cpu, memory in rows}


def zone_room(
    slots: Sequence[NodeSlot], used: Mapping[NodeName, tuple[int, int]], zone: str
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The zone's nodes' (vCPUs, MiB) totals, and what is free of them."""
    mine = [s for s in slots if s.zone == zone]
    total = (sum(s.vcpus for s in mine), sum(s.memory_mib for s in mine))
    held = [used.get(s.name, (0, 0)) for s in mine]
    return total, (total[0] - sum(h[0] for h in held), total[1] - sum(h[1] for h in held))
