"""The scheduler (``cloud/instances/placement.py``): Eucalyptus's GREEDY and ROUNDROBIN over
a zone's nodes, by vCPUs and memory, all or nothing at MinCount."""

from __future__ import annotations

import pytest

from karri.cloud.instances.placement import (
    GREEDY,
    ROUNDROBIN,
    Demand,
    NodeSlot,
    NoRoom,
    Scheduler,
    zone_room,
)

ZONE = "eucalyptus-1a"
SMALL = Demand(1, 256)
SLOTS = [NodeSlot(None, ZONE, 4, 1024), NodeSlot("n1", ZONE, 4, 1024), NodeSlot("n2", ZONE, 2, 512)]


def test_round_robin_spreads_and_remembers_where_it_was() -> None:
    scheduler = Scheduler(ROUNDROBIN)
    assert scheduler.place(SLOTS, {}, [SMALL] * 4, 1) == [None, "n1", "n2", None]
    # the next launch goes on from the node after the last one used
    assert scheduler.place(SLOTS, {}, [SMALL], 1) == ["n1"]
    assert scheduler.place(SLOTS, {}, [SMALL], 1) == ["n2"]


def test_round_robin_skips_full_nodes() -> None:
    scheduler = Scheduler(ROUNDROBIN)
    used = {"n1": (4, 0)}
    assert scheduler.place(SLOTS, used, [SMALL] * 3, 3) == [None, "n2", None]


def test_greedy_fills_a_node_first() -> None:
    scheduler = Scheduler(GREEDY)
    placed = scheduler.place(SLOTS, {None: (2, 0)}, [SMALL] * 5, 5)
    assert placed == [None, None, "n1", "n1", "n1"]


def test_memory_counts_too_and_min_count_is_all_or_nothing() -> None:
    scheduler = Scheduler(GREEDY)
    big = Demand(1, 1024)
    assert scheduler.place(SLOTS, {}, [big] * 5, 1) == [None, "n1"]
    with pytest.raises(NoRoom):
        scheduler.place(SLOTS, {}, [big] * 3, 3)
    with pytest.raises(NoRoom):
        scheduler.place([], {}, [SMALL], 1)


def test_a_local_node_named_none_is_a_node_like_any() -> None:
    scheduler = Scheduler(ROUNDROBIN)
    only_local = [NodeSlot(None, ZONE, 2, 1024)]
    assert scheduler.place(only_local, {}, [SMALL] * 3, 1) == [None, None]
    assert scheduler.place(only_local, {None: (1, 256)}, [SMALL], 1) == [None]


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        Scheduler("elastic")


def test_zone_room_sums_the_zones_nodes() -> None:
    slots = [*SLOTS, NodeSlot("b1", "eucalyptus-1b", 8, 4096)]
    assert zone_room(slots, {"n1": (1, 256), "b1": (8, 0)}, ZONE) == ((10, 2560), (9, 2304))
    assert zone_room(slots, {"b1": (8, 0)}, "eucalyptus-1b") == ((8, 4096), (0, 4096))
