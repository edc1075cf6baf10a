"""Push requests from a standby to the leader (many-hosts step 7), with fakes for
PostgreSQL's channel: what a standby's services ask for arrives as the same call on the
leader's target; a request already waiting is not queued twice; the listener listens
again after a drop and then asks for a resync; the reconciler's resync tells every VPC in
use; the cloud's services ask the standby's pushes until its own reconciler runs."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from karri.cloud.instances.groups import default_group
from karri.cloud.instances.models import Instance
from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.network.group_rules import Peer, Permission
from karri.cloud.network.groups import SecurityGroups
from karri.cloud.push_requests import (
    NO_PUSHES,
    NotifiedPushes,
    PushDispatcher,
    decode,
    encode,
)
from karri.config import Settings
from karri.db.push_notify import CHANNEL, PushListener
from karri.up import open_cloud
from tests.unit.test_reconciler import ACCOUNT, INSTANCE, Cloud, run, running


class Recorder:
    """A ``PushRequests`` that records each call (``calls``); ``gate`` (if set) holds
    every call until it is set."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.gate: threading.Event | None = None

    def _record(self, name: str, argument: Any) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        self.calls.put((name, argument))

    def groups_changed(self, vpc_id: str) -> None:
        self._record("groups", vpc_id)

    def routes_changed(self, vpc_id: str) -> None:
        self._record("routes", vpc_id)

    def acls_changed(self, vpc_id: str) -> None:
        self._record("acls", vpc_id)

    def dhcp_changed(self, vpc_id: str) -> None:
        self._record("dhcp", vpc_id)

    def nat_gateways_changed(self, vpc_id: str) -> None:
        self._record("nat_gateways", vpc_id)

    def interfaces_changed(self, instance_id: str) -> None:
        self._record("interfaces", instance_id)

    def addresses_changed(self, instance_ids: Sequence[str]) -> None:
        self._record("addresses", tuple(instance_ids))

    def got(self, count: int) -> list[tuple[str, Any]]:
        return [self.calls.get(timeout=10) for _ in range(count)]


class Notice:
    def __init__(self, payload: str) -> None:
        self.payload = payload


class Channel:
    """PostgreSQL's channel, faked: ``send`` is pg_notify, ``connect`` a listening
    connection that hears what is sent while it listens; ``drop()`` ends the current
    one (its ``notifies`` raises), ``refusals`` connections are refused first."""

    def __init__(self, refusals: int = 0) -> None:
        self.refusals = refusals
        self.connections: list[Connection] = []

    def send(self, payload: str) -> None:
        for connection in self.connections:
            if connection.listens:
                connection.heard.put(payload)

    def connect(self) -> Connection:
        if self.refusals:
            self.refusals -= 1
            raise OSError("connection refused")
        connection = Connection()
        self.connections.append(connection)
        return connection

    def drop(self) -> None:
        self.connections[-1].heard.put(None)


class Connection:
    def __init__(self) -> None:
        self.listens = False
        self.heard: queue.Queue[str | None] = queue.Queue()
        self.executed: list[str] = []

    def execute(self, query: str) -> None:
        self.executed.append(query)
        self.listens = query == f"LISTEN {CHANNEL}"

    def notifies(self, *, timeout: float | None = None) -> Iterator[Notice]:
        try:
            payload = self.heard.get(timeout=timeout)
        except queue.Empty:
            return
        if payload is None:
            self.listens = False
            raise OSError("server closed the connection unexpectedly")
        yield Notice(payload)

    def close(self) -> None:
        self.listens = False


@pytest.fixture
def leader() -> Iterator[tuple[Channel, Recorder, list[int], PushListener]]:
    """A channel, the leader's target, how many resyncs it was asked for, its listener."""
    channel, target, missed = Channel(refusals=1), Recorder(), [0]
    dispatcher = PushDispatcher(target)
    listener = PushListener(
        channel.connect,
        dispatcher.heard,
        lambda: missed.__setitem__(0, missed[0] + 1),
        retry=0.01,
        wake=0.05,
    )
    listener.start()
    assert listener.listening.wait(5)  # after one refusal
    yield channel, target, missed, listener
    listener.stop()
    dispatcher.close()


def test_each_request_reaches_the_leader_as_the_same_call(leader) -> None:
    channel, target, missed, _listener = leader
    standby = NotifiedPushes(channel.send)
    standby.groups_changed("vpc-1")
    standby.routes_changed("vpc-2")
    standby.acls_changed("vpc-3")
    standby.dhcp_changed("vpc-4")
    standby.nat_gateways_changed("vpc-5")
    standby.interfaces_changed("i-1")
    standby.addresses_changed(["i-2", "i-3"])  # the one that lost the address first
    assert sorted(target.got(7)) == sorted(
        [
            ("groups", "vpc-1"),
            ("routes", "vpc-2"),
            ("acls", "vpc-3"),
            ("dhcp", "vpc-4"),
            ("nat_gateways", "vpc-5"),
            ("interfaces", "i-1"),
            ("addresses", ("i-2", "i-3")),
        ]
    )
    assert missed == [0]  # its first LISTEN missed nothing it must answer for


def test_the_listener_listens_again_after_a_drop_and_asks_for_a_resync(leader) -> None:
    channel, target, missed, listener = leader
    channel.drop()
    deadline = time.monotonic() + 5
    while missed[0] == 0:  # listening again: what was sent meanwhile reached no one
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert listener.listening.is_set()
    NotifiedPushes(channel.send).groups_changed("vpc-1")
    assert target.got(1) == [("groups", "vpc-1")]
    assert [c.executed for c in channel.connections] == [[f"LISTEN {CHANNEL}"]] * 2


def test_a_request_waiting_already_is_not_queued_twice() -> None:
    target = Recorder()
    target.gate = threading.Event()
    dispatcher = PushDispatcher(target, threads=1)
    try:
        dispatcher.heard("groups vpc-1")  # begun: waits at the gate
        deadline = time.monotonic() + 5
        while dispatcher._waiting:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for _ in range(3):  # one push after the one under way serves them all
            dispatcher.heard("groups vpc-1")
        dispatcher.heard("routes vpc-1")
        target.gate.set()
        assert target.got(3) == [("groups", "vpc-1"), ("groups", "vpc-1"), ("routes", "vpc-1")]
        time.sleep(0.1)
        assert target.calls.empty()
    finally:
        dispatcher.close()


def test_payloads(caplog: pytest.LogCaptureFixture) -> None:
    assert decode(encode("addresses", ["i-1", "i-2"])) == ("addresses", ("i-1", "i-2"))
    assert decode(encode("dhcp", ["vpc-1"])) == ("dhcp", ("vpc-1",))
    for wrong in ("", "groups", "groups vpc-1 vpc-2", "forget vpc-1", "addresses"):
        assert decode(wrong) is None
    sent: list[str] = []
    NotifiedPushes(sent.append).addresses_changed([f"i-{n:017x}" for n in range(450)])
    assert [len(p.split()) - 1 for p in sent] == [200, 200, 50]
    assert max(len(p.encode()) for p in sent) < 8000  # PostgreSQL's bound

    def refused(payload: str) -> None:
        raise OSError("the database is gone")

    with caplog.at_level(logging.WARNING, "karri.pushes"):  # committed all the same
        NotifiedPushes(refused).groups_changed("vpc-1")
    assert "cannot ask the leader to push groups vpc-1" in caplog.text


def test_a_resync_asked_tells_every_vpc_in_use_and_public_address_again(tmp_path: Path) -> None:
    cloud = Cloud(tmp_path)  # without resync_every: no periodic resync
    groups = cloud.reconciler.groups
    assert isinstance(groups, SecurityGroups)

    async def scenario() -> None:
        await running(cloud)
        vpc, group = default_vpc_id(ACCOUNT), default_group(ACCOUNT).group_id
        rule = Permission("tcp", 2222, 2222, (Peer(cidr_ipv4="10.9.0.0/16"),))
        # recorded, not told (their ``on_change`` is no one's): as through a standby whose
        # requests were sent while no one listened
        await asyncio.to_thread(groups.authorize, ACCOUNT, group, None, False, [rule])
        with cloud.db.write_session() as session:
            row = session.get(Instance, INSTANCE)
            assert row is not None
            row.public_ip = "127.64.200.7"

        def told() -> tuple[bool, str | None]:
            ports = {r.from_port for g in cloud.node.groups[vpc] for r in g.ingress}
            return 2222 in ports, cloud.node.info(INSTANCE).public_ip

        assert told()[0] is False and told()[1] != "127.64.200.7"
        await asyncio.to_thread(cloud.reconciler.resync)
        deadline = time.monotonic() + 10
        while told() != (True, "127.64.200.7"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    run(cloud, scenario)


def test_the_clouds_changes_go_to_the_standby_pushes_until_its_reconciler_runs(
    tmp_path: Path,
) -> None:
    cloud = open_cloud(Settings(data_dir=tmp_path, region="eucalyptus"))
    assert cloud.standby_pushes is NO_PUSHES  # SQLite: one front end
    target = Recorder()
    cloud.standby_pushes = target
    cloud.groups.members_changed("vpc-1")
    cloud.addresses.on_change(["i-1"])
    assert target.got(2) == [("groups", "vpc-1"), ("addresses", ("i-1",))]
