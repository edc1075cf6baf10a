"""A joined node that misses its heartbeats (many-hosts step 7; the registry lists it
BROKEN on a fake clock in test_node_registry.py): its instances' system check is impaired
while their state stays as last observed, a forced stop or an evacuation takes them off it
without it, and the node heard again is connected anew, the cloud's desired state
winning."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from karri.cloud.instances import failover, states
from karri.cloud.instances.fleet import NodeListing
from karri.cloud.instances.launch import ImageDisks
from karri.cloud.instances.models import Instance
from karri.cloud.instances.status import status_of
from karri.node import AdoptReport, InstanceHealth, UnknownInstance, VmState
from tests.unit.test_reconciler import Cloud, run
from tests.unit.test_reconciler_nodes import (
    JoinedNode,
    Registry,
    add_on,
    connected,
    nodes,
    reaches,
    state_of,
)
from tests.unit.test_remote_node import spec

__all__ = ["nodes"]  # the fixture: the cloud's reconciler with joined nodes

URL = "https://n1:8776"
SEEN = 1_800_000_000.0


def listing(state: str) -> NodeListing:
    return NodeListing("n1", "z", state, URL, 8, 8192, SEEN)


async def becomes(cloud: Cloud, registry: Registry, state: str) -> None:
    registry.listing[0] = listing(state)
    cloud.reconciler.wake()
    deadline = time.monotonic() + 10
    while (cloud.reconciler.fleet.broken("n1") is not None) != (state == "BROKEN"):
        assert time.monotonic() < deadline, f"n1 never {state}"
        await asyncio.sleep(0.02)


async def running_on_n1(cloud: Cloud, count: int) -> None:
    """The VPC (and an instance of the cloud's own node), then ``count`` running on n1."""
    await asyncio.to_thread(cloud.add)
    await connected(cloud, "n1")
    for n in range(1, count + 1):
        add_on(cloud, f"i-0000000{n}", "n1", n)
    for n in range(1, count + 1):
        await reaches(cloud, f"i-0000000{n}", states.RUNNING)


def change(cloud: Cloud, instance_id: str, work) -> None:
    with cloud.db.write_session() as session:
        row = session.get(Instance, instance_id)
        assert row is not None
        work(row)
    cloud.reconciler.wake()


def reason(cloud: Cloud, instance_id: str) -> tuple[str | None, str | None]:
    with cloud.db.session() as session:
        row = session.get(Instance, instance_id)
        assert row is not None
        return row.state_reason_code, row.state_reason_message


def test_a_broken_nodes_instances_are_impaired_and_its_return_reconciles(
    nodes: tuple[Cloud, Registry],
) -> None:
    cloud, registry = nodes
    registry.listing = [listing("ENABLED")]

    async def scenario() -> None:
        await running_on_n1(cloud, 2)
        first = registry.nodes["n1"]
        await becomes(cloud, registry, "BROKEN")
        assert [s.name for s in cloud.reconciler.slots()] == [None]  # n1 takes nothing new
        health = cloud.reconciler.health("i-00000001", "n1")
        assert isinstance(health, InstanceHealth)
        with cloud.db.session() as session:
            row = session.get(Instance, "i-00000001")
            status = status_of(row, health)
        assert (status.system.status, status.system.reachability) == ("impaired", "failed")
        assert status.system.impaired_since == datetime.fromtimestamp(SEEN, UTC)
        assert status.guest.status == "insufficient-data"
        await asyncio.sleep(0.3)
        assert state_of(cloud, "i-00000001") == states.RUNNING  # as last observed

        # terminated while n1 is not heard from: recorded without it
        change(cloud, "i-00000002", lambda r: setattr(r, "state", states.SHUTTING_DOWN))
        change(cloud, "i-00000002", lambda r: setattr(r, "desired", states.TERMINATED))
        await reaches(cloud, "i-00000002", states.TERMINATED)
        assert first.info("i-00000002").state == VmState.RUNNING  # n1 was never reached

        # n1 comes back (its host restarted): its guests re-adopted, the cloud's view wins
        registry.kinds["n1"] = Restarted
        await becomes(cloud, registry, "ENABLED")
        deadline = time.monotonic() + 10
        while registry.nodes["n1"] is first or "n1" not in cloud.reconciler.fleet.remotes:
            assert time.monotonic() < deadline, "n1 never connected anew"
            await asyncio.sleep(0.02)
        again = registry.nodes["n1"]
        assert first.disconnected
        while True:
            try:
                again.info("i-00000002")
            except UnknownInstance:
                break  # ended on n1
            assert time.monotonic() < deadline, "i-00000002 never ended on n1"
            await asyncio.sleep(0.02)
        assert again.info("i-00000001").state == VmState.RUNNING
        assert state_of(cloud, "i-00000001") == states.RUNNING
        assert cloud.reconciler.health("i-00000001", "n1") != failover.broken_health(
            "i-00000001", listing("BROKEN")
        )

    run(cloud, scenario)


class Restarted(JoinedNode):
    """n1's host restarted: its node re-adopts both guests it ran and reports them."""

    async def start(self) -> AdoptReport:
        for n in (1, 2):
            await self.launch(
                spec(f"i-0000000{n}", mac=f"d0:0d:00:00:ab:{n:02x}", private_ip=f"172.31.0.2{n}")
            )
        return AdoptReport(("i-00000001", "i-00000002"))


def test_a_forced_stop_and_an_evacuation_leave_the_broken_node(
    nodes: tuple[Cloud, Registry],
) -> None:
    cloud, registry = nodes
    registry.listing = [listing("ENABLED")]

    async def scenario() -> None:
        await running_on_n1(cloud, 3)
        for n in (1, 3):  # EBS-backed (launched as instance-store by the fake images)
            change(cloud, f"i-0000000{n}", lambda r: setattr(r, "root_device_type", "ebs"))
        await becomes(cloud, registry, "BROKEN")

        # a plain stop waits for the node; a forced one stops without it
        change(cloud, "i-00000001", lambda r: setattr(r, "state", states.STOPPING))
        change(cloud, "i-00000001", lambda r: setattr(r, "desired", states.STOPPED))
        await asyncio.sleep(0.3)
        assert state_of(cloud, "i-00000001") == states.STOPPING
        change(cloud, "i-00000001", failover.force_stop)
        await reaches(cloud, "i-00000001", states.STOPPED)
        assert reason(cloud, "i-00000001") == (
            "Server.InternalError",
            "Server.InternalError: its node failed (n1)",
        )

        # karri node evacuate: EBS-backed ones stop, instance-store ones are lost
        with cloud.db.write_session() as session:
            moved = failover.evacuate(session, "n1")
        assert moved == [("i-00000002", states.TERMINATED), ("i-00000003", states.STOPPED)]
        cloud.reconciler.wake()
        await reaches(cloud, "i-00000002", states.TERMINATED)
        await reaches(cloud, "i-00000003", states.STOPPED)
        assert reason(cloud, "i-00000002")[0] == "Server.InternalError"
        assert state_of(cloud, "i-00000001") == states.STOPPED

    run(cloud, scenario)


class Exports:
    """The NBD exports (``VolumeExports``): which ended."""

    def __init__(self) -> None:
        self.released: list[str] = []

    def target(self, volume_id: str, node: str | None = None) -> None:
        raise AssertionError("nothing is exported here")

    def release(self, volume_id: str) -> None:
        self.released.append(volume_id)


class Attached:
    """The block devices (``BlockDevices``): each instance's volumes."""

    def volume_ids(self, instance_id: str) -> list[str]:
        return {"i-00000001": ["vol-00000001", "vol-00000002"]}.get(instance_id, [])


def test_an_instance_off_a_failed_node_ends_its_volumes_exports() -> None:
    exports = Exports()
    disks = ImageDisks(lambda _i: None, Attached(), exports)  # type: ignore[arg-type]
    asyncio.run(disks.release("i-00000001"))
    asyncio.run(disks.release("i-00000002"))
    assert exports.released == ["vol-00000001", "vol-00000002"]
