"""What each node hosting a VPC is told of its ports on the other nodes (many-hosts step
6): ``overlays.overlays`` without a database, then the reconciler with joined
``FakeNode``s at IP addresses, as instances come and go."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from karri.cloud.instances import states
from karri.cloud.instances.fleet import NodeListing
from karri.cloud.instances.models import Instance
from karri.cloud.instances.overlays import PlacedPort, overlays
from karri.cloud.network.defaults import default_vpc_id
from karri.node import Overlay, RemotePort, SubnetLink
from karri.node.fake import FakeNode
from karri.node.overlay import VNI_LIMIT, vni_of, vxlan_name
from tests.unit.test_reconciler import ACCOUNT, INSTANCE, Cloud, run
from tests.unit.test_reconciler_nodes import Registry, add_on, ask, connected, reaches

LINKS = (SubnetLink("172.31.0.0/20", 7),)


def port(name: str, ip: str) -> RemotePort:
    return RemotePort(name, "d0:0d:00:00:00:01", ip, "172.31.0.0/20", "", ("sg-1",))


def test_each_node_is_told_the_ports_of_the_others_at_their_addresses() -> None:
    a, b, c = port("kta", "172.31.0.10"), port("ktb", "172.31.0.11"), port("ktc", "172.31.0.12")
    placed = [PlacedPort(None, a), PlacedPort("n1", b), PlacedPort("n2", c)]
    told = overlays({None: "192.0.2.10", "n1": "192.0.2.11"}, LINKS, placed)
    assert told[None] == Overlay("192.0.2.10", LINKS, (RemotePort(*_with(b, "192.0.2.11")),))
    assert told["n1"].remote == (RemotePort(*_with(a, "192.0.2.10")),)
    # n2's address is not known: its ports are left out, and n2 itself is not told
    assert set(told) == {None, "n1"}
    assert (told[None].port, told["n1"].remote[0].port) == (4789, 4789)
    # on loopback addresses (one host's namespace) each node has a port of its own
    loopback = overlays({None: "127.0.0.1", "n1": "127.0.0.2"}, LINKS, placed)
    assert (loopback[None].port, loopback[None].remote[0].port) == (4791, 4792)
    assert loopback["n1"].port == 4792
    # a node without an address of its own is told of no other
    assert overlays({None: None, "n1": "192.0.2.11"}, LINKS, placed)[None].remote == ()


def _with(p: RemotePort, host: str) -> tuple:
    return (p.name, p.mac, p.ip, p.subnet, host, p.group_ids, p.secondary, 4789)


def test_a_vni_is_stable_and_fits_24_bits() -> None:
    vnis = {vni_of(f"subnet-{n:08x}") for n in range(2000)}
    assert len(vnis) == 2000
    assert all(0 < v < VNI_LIMIT for v in vnis)
    assert vni_of("subnet-1a2b3c4d") == vni_of("subnet-1a2b3c4d")
    assert len(vxlan_name(VNI_LIMIT - 1)) <= 15


def test_the_reconciler_tells_every_node_of_the_vpc_the_others_ports(tmp_path: Path) -> None:
    registry = Registry()
    registry.listing = [
        NodeListing("n1", "z", "ENABLED", "https://192.0.2.11:8776", 8, 8192),
        NodeListing("n2", "z", "ENABLED", "https://192.0.2.12:8776", 4, 4096),
    ]
    cloud = Cloud(tmp_path, directory=registry)
    registry.hearer = lambda: cloud.reconciler
    cloud.reconciler.fleet.local_address = "192.0.2.10"
    vpc = default_vpc_id(ACCOUNT)

    def remote_of(node: FakeNode) -> dict[str, str]:
        overlay = node.overlays.get(vpc)
        return {p.ip: p.host for p in overlay.remote} if overlay else {}

    async def until(check) -> None:
        deadline = time.monotonic() + 10
        while not check():
            assert time.monotonic() < deadline, "never told"
            await asyncio.sleep(0.02)

    async def scenario() -> None:
        await asyncio.to_thread(cloud.add)  # INSTANCE, on the cloud's own node
        with cloud.db.write_session() as session:
            session.get(Instance, INSTANCE).security_groups = [
                {"GroupName": "web", "GroupId": "sg-0000000a"}
            ]
        await connected(cloud, "n1", "n2")
        add_on(cloud, "i-00000001", "n1", 1)
        add_on(cloud, "i-00000002", "n2", 2)
        for instance_id in (INSTANCE, "i-00000001", "i-00000002"):
            await reaches(cloud, instance_id, states.RUNNING)
        own, n1, n2 = cloud.node, registry.nodes["n1"], registry.nodes["n2"]
        mine = cloud.node.info(INSTANCE).private_ip
        await until(lambda: len(remote_of(n2)) == 2)
        assert remote_of(own) == {"172.31.0.21": "192.0.2.11", "172.31.0.22": "192.0.2.12"}
        assert remote_of(n1) == {mine: "192.0.2.10", "172.31.0.22": "192.0.2.12"}
        assert remote_of(n2) == {mine: "192.0.2.10", "172.31.0.21": "192.0.2.11"}
        assert n1.overlays[vpc].local == "192.0.2.11"
        assert n1.overlays[vpc].subnets == own.overlays[vpc].subnets != ()
        told = next(p for p in n1.overlays[vpc].remote if p.ip == mine)
        assert told.group_ids == ("sg-0000000a",)
        assert told.name == "kt" + INSTANCE.split("-")[1]

        ask(cloud, "i-00000001", states.SHUTTING_DOWN, states.TERMINATED)  # gone from n1
        await reaches(cloud, "i-00000001", states.TERMINATED)
        await until(lambda: "172.31.0.21" not in remote_of(n2))
        assert "172.31.0.21" not in remote_of(own)

    run(cloud, scenario)
