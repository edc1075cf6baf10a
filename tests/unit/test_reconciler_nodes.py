"""The reconciler with joined nodes (many-hosts step 5): the cloud's own ``FakeNode`` and
two more behind a directory, as the registry lists them; each instance's calls go to the
node its row names, each VPC's state to every node hosting it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from karri.cloud.instances import states
from karri.cloud.instances.fleet import NodeListing
from karri.cloud.instances.models import Instance
from karri.cloud.instances.placement import NodeSlot
from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.network.models import NetworkInterface
from karri.node import AdoptReport, ExitReason, NodeUnreachable, UnknownInstance, VmState
from karri.node.fake import FakeNode
from tests.unit.test_reconciler import ACCOUNT, INSTANCE, Cloud, run
from tests.unit.test_remote_node import spec


class JoinedNode(FakeNode):
    """A node on another host as its driver shows it (``RemoteNode``: it can let go)."""

    def __init__(self, **hearers) -> None:
        super().__init__(**hearers)
        self.disconnected = False

    async def disconnect(self) -> None:
        self.disconnected = True


class Registry:
    """The directory: n1 and n2 in zone z, their agents at made-up URLs."""

    def __init__(self) -> None:
        self.listing = [
            NodeListing("n1", "z", "ENABLED", "https://n1:8776", 8, 8192),
            NodeListing("n2", "z", "ENABLED", "https://n2:8776", 4, 4096),
        ]
        self.nodes: dict[str, JoinedNode] = {}
        self.kinds: dict[str, type[JoinedNode]] = {}
        self.hearer: Callable[[], object] = lambda: None

    def listed(self) -> list[NodeListing]:
        return list(self.listing)

    def connect(self, name: str, url: str) -> JoinedNode:
        reconciler = self.hearer()  # the gateway hands their reports to the reconciler
        node = self.kinds.get(name, JoinedNode)(
            on_exit=lambda r: reconciler.on_exit(r),  # type: ignore[attr-defined]
            on_recovery=lambda i, e: reconciler.on_recovery(i, e),  # type: ignore[attr-defined]
        )
        self.nodes[name] = node
        return node


@pytest.fixture
def nodes(tmp_path: Path) -> tuple[Cloud, Registry]:
    registry = Registry()
    cloud = Cloud(tmp_path, directory=registry)
    registry.hearer = lambda: cloud.reconciler
    return cloud, registry


def add_on(cloud: Cloud, instance_id: str, node: str | None, n: int) -> None:
    """Another pending instance of the VPC (beside ``INSTANCE``), placed on ``node``."""
    with cloud.db.write_session() as session:
        mac, ip = f"d0:0d:00:00:ab:{n:02x}", f"172.31.0.{20 + n}"
        session.add(
            Instance(
                id=instance_id, reservation_id="r-00000001", account_id=ACCOUNT,
                image_id="emi-00000001", instance_type="t1.micro", vcpus=1, memory_mib=256,
                disk_gib=1, zone="z", private_ip=ip, mac=mac, vpc_id=default_vpc_id(ACCOUNT),
                subnet_id="subnet-1", node=node,
            )
        )  # fmt: skip
        session.flush()
        session.add(
            NetworkInterface(
                id=f"eni-{n + 10}", account_id=ACCOUNT, vpc_id=default_vpc_id(ACCOUNT),
                subnet_id="subnet-1", zone="z", mac=mac, private_ip=ip,
                instance_id=instance_id, device_index=0,
            )
        )  # fmt: skip
    cloud.reconciler.wake()


def state_of(cloud: Cloud, instance_id: str) -> str:
    with cloud.db.session() as session:
        row = session.get(Instance, instance_id)
        assert row is not None
        return row.state


async def reaches(cloud: Cloud, instance_id: str, state: str) -> None:
    deadline = time.monotonic() + 10
    while await asyncio.to_thread(state_of, cloud, instance_id) != state:
        assert time.monotonic() < deadline, f"{instance_id} never {state}"
        await asyncio.sleep(0.02)


async def connected(cloud: Cloud, *names: str) -> None:
    deadline = time.monotonic() + 10
    while set(cloud.reconciler.fleet.remotes) != set(names):
        assert time.monotonic() < deadline, f"{sorted(cloud.reconciler.fleet.remotes)}"
        await asyncio.sleep(0.02)


def ask(cloud: Cloud, instance_id: str, state: str, desired: str) -> None:
    with cloud.db.write_session() as session:
        row = session.get(Instance, instance_id)
        assert row is not None
        row.state, row.desired = state, desired
    cloud.reconciler.wake()


def test_each_instance_runs_on_its_node(nodes: tuple[Cloud, Registry]) -> None:
    cloud, registry = nodes

    async def scenario() -> None:
        await asyncio.to_thread(cloud.add)  # INSTANCE, on the cloud's own node
        await connected(cloud, "n1", "n2")
        slots = cloud.reconciler.slots()
        assert [s.name for s in slots] == [None, "n1", "n2"]
        assert slots[1] == NodeSlot("n1", "z", 8, 8192)
        add_on(cloud, "i-00000001", "n1", 1)
        add_on(cloud, "i-00000002", "n2", 2)
        for instance_id in (INSTANCE, "i-00000001", "i-00000002"):
            await reaches(cloud, instance_id, states.RUNNING)
        n1, n2 = registry.nodes["n1"], registry.nodes["n2"]
        assert n1.info("i-00000001").state == VmState.RUNNING
        assert n2.info("i-00000002").state == VmState.RUNNING
        assert cloud.node.info(INSTANCE).state == VmState.RUNNING
        for node, foreign in ((cloud.node, "i-00000001"), (n1, INSTANCE), (n2, "i-00000001")):
            with pytest.raises(UnknownInstance):
                node.info(foreign)
        vpc = default_vpc_id(ACCOUNT)
        assert n1.groups[vpc] and n2.groups[vpc]  # each node hosting the VPC has its groups
        # the API's calls reach the instance's node
        assert cloud.reconciler.health("i-00000002", "n2") != cloud.reconciler.health(
            "i-00000002", "n1"
        )
        await asyncio.to_thread(cloud.reconciler.reboot, "i-00000001", "n1")

        ask(cloud, "i-00000001", states.SHUTTING_DOWN, states.TERMINATED)  # ends on n1
        await reaches(cloud, "i-00000001", states.TERMINATED)
        with pytest.raises(UnknownInstance):
            n1.info("i-00000001")
        assert n2.info("i-00000002").state == VmState.RUNNING

        n2.guest_ended("i-00000002", ExitReason.CRASHED, "killed")  # n2's report
        await reaches(cloud, "i-00000002", states.TERMINATED)
        with pytest.raises(UnknownInstance):
            n2.info("i-00000002")

        registry.listing = registry.listing[:1]  # n2 removed: its driver let go
        cloud.reconciler.wake()
        await connected(cloud, "n1")
        assert n2.disconnected and not n1.disconnected

    run(cloud, scenario)


def test_an_instance_waits_for_its_node_and_a_disabled_node_takes_none(
    nodes: tuple[Cloud, Registry],
) -> None:
    cloud, registry = nodes
    registry.listing = [
        NodeListing("n1", "z", "DISABLED", "https://n1:8776", 8, 8192),
        NodeListing("n3", "z", "NOTREADY", None, 8, 8192),  # no agent address yet
    ]

    async def scenario() -> None:
        await asyncio.to_thread(cloud.add)
        await connected(cloud, "n1")
        assert [s.name for s in cloud.reconciler.slots()] == [None]
        add_on(cloud, "i-00000003", "n3", 3)
        await reaches(cloud, INSTANCE, states.RUNNING)
        await asyncio.sleep(0.3)
        assert state_of(cloud, "i-00000003") == states.PENDING  # waits for n3
        registry.listing[1] = NodeListing("n3", "z", "ENABLED", "https://n3:8776", 8, 8192)
        cloud.reconciler.wake()
        await connected(cloud, "n1", "n3")
        cloud.reconciler.wake()
        await reaches(cloud, "i-00000003", states.RUNNING)
        assert registry.nodes["n3"].info("i-00000003").state == VmState.RUNNING

    run(cloud, scenario)


class StartedBefore(JoinedNode):
    """A node the cloud reconnects to: it runs i-00000002 and its start tells nothing."""

    async def start(self) -> AdoptReport:
        await self.launch(spec("i-00000002", mac="d0:0d:00:00:ab:02", private_ip="172.31.0.22"))
        return AdoptReport()


def test_a_node_reached_checks_the_instances_placed_on_it(nodes: tuple[Cloud, Registry]) -> None:
    """The database says running on n1 and n2: n1 (fresh, as after a crash of its host)
    knows nothing of its instance, which is gone; n2's guest is kept though n2's start
    told nothing (it was started before)."""
    cloud, registry = nodes
    registry.kinds["n2"] = StartedBefore

    async def scenario() -> None:
        await connected(cloud, "n1", "n2")
        await reaches(cloud, "i-00000001", states.TERMINATED)
        await asyncio.sleep(0.3)
        assert state_of(cloud, "i-00000002") == states.RUNNING

    cloud.add()  # the VPC and subnet (and an instance of the cloud's own node)
    for n, node in ((1, "n1"), (2, "n2")):
        add_on(cloud, f"i-0000000{n}", node, n)
        ask(cloud, f"i-0000000{n}", states.RUNNING, states.RUNNING)
    run(cloud, scenario)


class CountingNode(JoinedNode):
    """A joined node that counts how often it is told the VPC's groups (and routes)."""

    def __init__(self, **hearers) -> None:
        super().__init__(**hearers)
        self.told: list[str] = []

    async def set_groups(self, vpc_id, groups) -> None:
        self.told.append("groups")
        await super().set_groups(vpc_id, groups)

    async def set_vpc_routes(self, vpc_id, routes) -> None:
        self.told.append("routes")
        await super().set_vpc_routes(vpc_id, routes)


def test_a_joined_node_is_told_the_vpcs_state_once_not_at_every_launch(
    nodes: tuple[Cloud, Registry],
) -> None:
    """Each launch pushes its VPC's state; a joined node that has it already is not told
    it again (two hundred launches were two hundred rounds of every push), until it is
    connected anew."""
    cloud, registry = nodes
    registry.kinds["n1"] = CountingNode

    async def scenario() -> None:
        await asyncio.to_thread(cloud.add)  # INSTANCE, on the cloud's own node
        await connected(cloud, "n1", "n2")
        for n in (1, 2, 3):
            add_on(cloud, f"i-0000000{n}", "n1", n)
            await reaches(cloud, f"i-0000000{n}", states.RUNNING)
        n1 = registry.nodes["n1"]
        assert isinstance(n1, CountingNode)
        assert n1.told == ["groups"]  # three launches, one push (the unit cloud has no routes)
        vpc = default_vpc_id(ACCOUNT)
        assert n1.groups[vpc]

        registry.listing = registry.listing[1:]  # n1 gone, then back: a new driver
        cloud.reconciler.wake()
        await connected(cloud, "n2")
        registry.listing = [NodeListing("n1", "z", "ENABLED", "https://n1:8776", 8, 8192)]
        cloud.reconciler.wake()
        await connected(cloud, "n1")
        again = registry.nodes["n1"]
        assert again is not n1 and isinstance(again, CountingNode)
        deadline = time.monotonic() + 10
        while again.told != ["groups"]:  # told everything again
            assert time.monotonic() < deadline, again.told
            await asyncio.sleep(0.02)

    run(cloud, scenario)


class DyingNode(JoinedNode):
    """A node whose agent goes away (``dead``): every call is ``NodeUnreachable``, as
    ``RemoteNode`` raises it."""

    dead = False

    def _answer(self, method: str) -> None:
        if self.dead:
            raise NodeUnreachable(f"node n1: {method}: All connection attempts failed")

    async def destroy(self, instance_id) -> None:
        self._answer("destroy")
        await super().destroy(instance_id)

    async def set_groups(self, vpc_id, groups) -> None:
        self._answer("set_groups")
        await super().set_groups(vpc_id, groups)

    async def set_instance_groups(self, instance_id, group_ids) -> None:
        self._answer("set_instance_groups")
        await super().set_instance_groups(instance_id, group_ids)


def test_a_dead_node_fails_no_launch_of_its_vpc_elsewhere(nodes: tuple[Cloud, Registry]) -> None:
    """An instance of the VPC is terminated on n1 as n1's agent dies: the destroy fails
    (and backs off), and launches of that VPC on n2 still run, before n1 is BROKEN (its
    calls fail, passed over) and after (not called at all)."""
    cloud, registry = nodes
    registry.kinds["n1"] = DyingNode

    async def scenario() -> None:
        await asyncio.to_thread(cloud.add)
        await connected(cloud, "n1", "n2")
        add_on(cloud, "i-00000001", "n1", 1)
        await reaches(cloud, "i-00000001", states.RUNNING)
        n1 = registry.nodes["n1"]
        assert isinstance(n1, DyingNode)
        n1.dead = True
        ask(cloud, "i-00000001", states.SHUTTING_DOWN, states.TERMINATED)
        add_on(cloud, "i-00000002", "n2", 2)
        await reaches(cloud, "i-00000002", states.RUNNING)
        registry.listing[0] = dataclasses.replace(registry.listing[0], state="BROKEN")
        cloud.reconciler.wake()
        add_on(cloud, "i-00000003", "n2", 3)
        await reaches(cloud, "i-00000003", states.RUNNING)

    run(cloud, scenario)
