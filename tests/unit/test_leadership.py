"""Leadership of the background work (many-hosts step 7) with a fake lock; the cloud's
fleet without a node of its own (`karri up --no-local-node`); a standby's driver."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from karri.cli.main import main
from karri.cloud.instances import states
from karri.cloud.instances.fleet import Fleet, NodeListing, NodeNotConnected
from karri.cloud.instances.placement import NodeSlot
from karri.cloud.instances.standby import StandbyDriver, StandbyHearer
from karri.cloud.leadership import LEADER, LOST, STANDBY, Leadership
from karri.node import ExitReason, InstanceExit, UnknownInstance
from karri.node.fake import FakeNode
from tests.unit.test_reconciler import INSTANCE, Cloud, run, running


class FakeLock:
    """Free after ``free_after`` tries; ``answer`` is what ``holds`` says (an exception is
    raised, an Event is waited on: a database that does not answer)."""

    def __init__(self, free_after: int = 0) -> None:
        self.free_after = free_after
        self.tries = 0
        self.answer: bool | Exception | threading.Event = True

    def try_acquire(self) -> bool:
        self.tries += 1
        return self.tries > self.free_after

    def holds(self) -> bool:
        if isinstance(self.answer, Exception):
            raise self.answer
        if isinstance(self.answer, threading.Event):
            self.answer.wait(5)
            return True
        return self.answer

    def release(self) -> None:
        pass


def test_a_standby_leads_once_the_lock_is_free() -> None:
    lock = FakeLock(free_after=3)
    leadership = Leadership(lock, poll=0.01)
    assert leadership.role == STANDBY
    asyncio.run(leadership.elected())
    assert leadership.role == LEADER and lock.tries == 4


def test_an_unreachable_database_is_asked_again() -> None:
    class Flaky(FakeLock):
        def try_acquire(self) -> bool:
            self.tries += 1
            if self.tries == 1:
                raise OSError("connection refused")
            return True

    lock = Flaky()
    asyncio.run(Leadership(lock, poll=0.01).elected())
    assert lock.tries == 2


@pytest.mark.parametrize(
    "answer", [False, OSError("server closed the connection"), threading.Event()]
)
def test_a_leader_that_is_not_sure_to_hold_the_lock_has_lost_it(answer: object) -> None:
    lock = FakeLock()
    leadership = Leadership(lock, poll=0.01, timeout=0.2)

    async def lead() -> None:
        await leadership.elected()
        await asyncio.sleep(0.05)  # holds meanwhile: still the leader
        assert leadership.role == LEADER
        lock.answer = answer  # type: ignore[assignment]
        await asyncio.wait_for(leadership.lost(), 5)

    asyncio.run(lead())
    assert leadership.role == LOST
    if isinstance(answer, threading.Event):
        answer.set()


class Directory:
    def __init__(self, *listing: NodeListing) -> None:
        self.listing = list(listing)

    def listed(self) -> list[NodeListing]:
        return list(self.listing)

    def connect(self, name: str, url: str) -> FakeNode:
        raise AssertionError("not reached in these tests")


N1 = NodeListing("n1", "z", "ENABLED", "https://n1:8776", 8, 8192)
N2 = NodeListing("n2", "z", "BROKEN", "https://n2:8776", 4, 4096)
N3 = NodeListing("n3", "z", "ENABLED", None, 4, 4096)  # no agent address yet


def test_a_fleet_without_its_own_node_places_only_on_joined_nodes() -> None:
    fleet = Fleet(None, "z", Directory(N1, N2))
    fleet.remotes["n1"] = FakeNode()  # type: ignore[assignment]
    fleet._urls["n1"] = N1.agent_url or ""
    fleet._listing = [N1, N2]
    assert fleet.slots() == [NodeSlot("n1", "z", 8, 8192)]
    assert fleet.connected([None, "n1"]) == ["n1"]
    assert fleet.address(None) is None
    with pytest.raises(NodeNotConnected, match="no node of its own"):
        fleet.driver(None)


def test_a_standby_places_on_enabled_nodes_with_an_agent() -> None:
    driver = StandbyDriver(Directory(N1, N2, N3))
    assert driver.slots() == [NodeSlot("n1", "z", 8, 8192)]
    assert driver.node_broken("n2") and not driver.node_broken("n1")
    assert not driver.node_broken(None)
    health = driver.health("i-00000001", "n2")
    assert not isinstance(health, str) and health.system.status == "impaired"
    assert driver.health("i-00000001", None) == "the node does not know this instance (yet)"
    assert driver.console_output("i-00000001", "n3") == b""
    driver.wake()  # nothing: the leader polls


def test_a_guest_end_heard_by_a_standby_is_finished_by_the_leader(tmp_path: Path) -> None:
    """A node reported to a standby's gateway: the metadata is answered from the
    database, the end recorded as intent, which the leader's reconciler carries out."""
    cloud = Cloud(tmp_path)
    hearer = StandbyHearer(cloud.db, "karri", None)

    async def scenario() -> None:
        await running(cloud)
        metadata = await hearer.lookup(INSTANCE)
        assert metadata is not None and metadata.instance_id == INSTANCE
        assert await hearer.lookup("i-00000bad") is None
        hearer.on_exit(InstanceExit(INSTANCE, ExitReason.GUEST_SHUTDOWN, "poweroff", 1.0))
        row = await cloud.reaches(states.TERMINATED)
        assert (row.state_reason_code, row.state_reason_message) == states.GUEST_INITIATED
        with pytest.raises(UnknownInstance):  # destroyed on its node by the leader
            cloud.node.info(INSTANCE)

    run(cloud, scenario)


def test_no_local_node_needs_the_node_gateway(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["up", "--data-dir", str(tmp_path), "--no-local-node"])
    assert result.exit_code == 2
    assert "--no-local-node needs --node-port" in result.output
