"""The node contract through the network: ``RemoteNode`` → a node agent (``agent_app``
over mutual TLS on 127.0.0.1, in a thread) → ``FakeNode`` behaves as the ``FakeNode`` in
process (each behaviour test runs on both), and only the cloud's certificate, reaching the
node it names, gets answers; a node that does not answer is a ``NodeError`` in bounded
time."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from karri.cloud.instances.node_driver import NodeDriver
from karri.cloud.nodes.ca import NodeCA
from karri.cloud.nodes.remote import NodeUnreachable, RemoteNode
from karri.node import (
    AddressTaken,
    AdoptReport,
    Capacity,
    ExitReason,
    FileTarget,
    GroupRules,
    ImageRef,
    ImageRoot,
    InstanceExists,
    InstanceSpec,
    InterfaceRoute,
    NatGateway,
    Node,
    NodeError,
    NodeSettings,
    Resolver,
    Rule,
    SubnetRoutes,
    SynthesizedNames,
    UnknownInstance,
    VmState,
    VolumeDisk,
    VolumeError,
    VpcRoutes,
)
from karri.node.agent import agent_app, refusal
from karri.node.fake import FakeNode
from karri.pki import client_context, csr_for, key_pem, new_key, write_file
from karri.serving import MutualTls
from tests.unit.threaded_server import ThreadedServer


@dataclass
class Identity:
    cert: Path
    key: Path


def node_identity(ca: NodeCA, directory: Path, name: str) -> Identity:
    key = new_key()
    cert, _serial = ca.issue(csr_for(key, name), name)
    identity = Identity(directory / f"{name}.pem", directory / f"{name}.key")
    write_file(identity.cert, cert, 0o644)
    write_file(identity.key, key_pem(key), 0o600)
    return identity


class Agent(ThreadedServer):
    """A node agent serving ``node`` on 127.0.0.1 from a thread."""

    def __init__(self, node: Any, ca: NodeCA, identity: Identity) -> None:
        tls = MutualTls(identity.cert, identity.key, ca.cert_path)
        super().__init__(agent_app(node, NodeDriver), refusal, tls)


def served(node: Any, tmp_path: Path) -> tuple[Agent, ssl.SSLContext]:
    """``node`` behind an agent (n1) and the cloud's TLS to reach it."""
    ca = NodeCA(tmp_path / "cloud")
    cert, key = ca.cloud_identity(tmp_path / "cloud")
    agent = Agent(node, ca, node_identity(ca, tmp_path, "n1"))
    return agent, client_context(ca.cert_path, cert, key)


@pytest.fixture
def ca(tmp_path: Path) -> NodeCA:
    return NodeCA(tmp_path / "cloud")


@pytest.fixture
def cloud_tls(ca: NodeCA, tmp_path: Path):
    cert, key = ca.cloud_identity(tmp_path / "cloud")
    return client_context(ca.cert_path, cert, key)


@pytest.fixture(params=["in-process", "remote"])
def nodes(request, ca: NodeCA, cloud_tls, tmp_path: Path) -> Iterator[tuple[Any, FakeNode]]:
    """(what the cloud calls, the FakeNode behind it)."""
    fake = FakeNode()
    if request.param == "in-process":
        yield fake, fake
        return
    agent = Agent(fake, ca, node_identity(ca, tmp_path, "n1"))
    remote = RemoteNode("n1", agent.url, cloud_tls, timeout=10)
    try:
        yield remote, fake
    finally:
        done(remote)
        agent.stop()


def done(*nodes: RemoteNode) -> None:
    """Close the nodes' connections (else the agent's TLS waits on them as it stops)."""
    for node in nodes:
        asyncio.run(node.disconnect())


def run(node: Any, scenario: Callable[[], Awaitable[None]]) -> None:
    """``scenario`` on a loop of its own, the node's connections on it closed after."""

    async def whole() -> None:
        try:
            await scenario()
        finally:
            if isinstance(node, RemoteNode):
                await node.disconnect()

    asyncio.run(whole())


def spec(instance_id: str = "i-1", **changes: Any) -> InstanceSpec:
    values: dict[str, Any] = {
        "instance_id": instance_id,
        "vcpus": 1,
        "memory_mib": 256,
        "root": ImageRoot(ImageRef("emi-1", 1, "0" * 64, "http://127.0.0.1/emi-1")),
        "mac": "d0:0d:00:00:00:01",
        "private_ip": "172.31.0.5",
        "volumes": (VolumeDisk("vol-1", FileTarget(Path("/volumes/vol-1")), secret="pw"),),
    }
    return InstanceSpec(**(values | changes))


def test_remote_node_implements_the_contract(cloud_tls) -> None:
    node = RemoteNode("n1", "https://127.0.0.1:1", cloud_tls)
    assert isinstance(node, NodeDriver)


def test_launch_info_and_the_instance_questions(nodes) -> None:
    node, fake = nodes

    async def scenario() -> None:
        assert await node.start() == AdoptReport()
        info = await node.launch(spec())
        assert info == fake.info("i-1") and info.state == VmState.RUNNING
        assert info.volumes[0].target == FileTarget(Path("/volumes/vol-1"))
        assert fake._specs["i-1"].volumes[0].secret == "pw"  # the passphrase travelled
        assert node.info("i-1") == info
        with pytest.raises(InstanceExists):
            await node.launch(spec())
        with pytest.raises(UnknownInstance) as unknown:
            node.info("i-404")
        assert isinstance(unknown.value, KeyError) and unknown.value.instance_id == "i-404"
        assert node.console_output("i-1").startswith(b"fake node")
        assert node.health("i-1").system.status == "insufficient-data"
        assert node.capacity() == Capacity(10_000, 10_000 * 32 * 1024, 0, 0)
        assert node.summary()["accelerator"] == "fake" and node.accelerator == "fake"
        await node.reboot("i-1")
        ended = await node.shutdown("i-1", timeout=5)
        assert ended.reason == ExitReason.HOST_SHUTDOWN and node.info("i-1").exit == ended
        await node.destroy("i-1")
        await node.destroy("i-1")  # an unknown id is not an error
        await node.close()

    run(node, scenario)


def test_networking_arrives_as_given(nodes) -> None:
    node, fake = nodes
    groups = (GroupRules("sg-1", ingress=(Rule("tcp", 22, 22, cidrs=("0.0.0.0/0",)),)),)
    resolver = Resolver("10.0.0.2", (SynthesizedNames("ec2.internal", "10.0.0.0/16", "ip-"),))

    async def scenario() -> None:
        await node.set_groups("vpc-1", groups)
        assert fake.groups["vpc-1"] == groups
        await node.set_internet_subnets("vpc-1", None, "192.0.2.1")
        assert fake.internet["vpc-1"] is None and fake.masquerade["vpc-1"] == "192.0.2.1"
        await node.set_dhcp_options("vpc-1", {"domain-name": ["example.internal"]})
        assert fake.dhcp["vpc-1"] == {"domain-name": ("example.internal",)}
        await node.set_resolver("vpc-1", resolver)
        assert fake.resolvers["vpc-1"] == resolver
        await node.set_network_acls("vpc-1", None)
        assert fake.acls["vpc-1"] is None
        routes = VpcRoutes(
            (SubnetRoutes("10.0.1.0/24", (InterfaceRoute("0.0.0.0/0", "10.0.0.4"),)),),
            ("10.0.0.4",),
            (("198.51.100.7", "10.0.0.5"),),
        )
        await node.set_vpc_routes("vpc-1", routes)
        assert fake.routes["vpc-1"] == routes
        fake.held_elsewhere.add("198.51.100.9")
        report = await node.set_nat_gateways(
            "vpc-1", [NatGateway("nat-1", "198.51.100.9", ("10.0.1.0/24",))]
        )
        assert report is not None and report.refused == ("nat-1",)
        await node.launch(spec(public_ip=False))
        with pytest.raises(AddressTaken):
            await node.set_public_ip("i-1", "198.51.100.9")
        assert await node.set_public_ip("i-1", "198.51.100.10") == "198.51.100.10"
        await node.set_instance_groups("i-1", ["sg-1"])
        assert fake._specs["i-1"].security_groups == ("sg-1",)

    run(node, scenario)


def test_volumes(nodes, tmp_path: Path) -> None:
    node, _fake = nodes
    disk = tmp_path / "vol-2"
    disk.write_bytes(b"x" * 512)

    async def scenario() -> None:
        await node.launch(spec())
        await node.attach_volume("i-1", "vol-2", FileTarget(disk))
        with pytest.raises(VolumeError):
            await node.attach_volume("i-1", "vol-2", FileTarget(disk))
        await node.resize_volume("i-1", "vol-2", 4096)
        assert disk.stat().st_size == 4096
        await node.backup_volume("i-1", "vol-2", tmp_path / "copy")
        assert (tmp_path / "copy").stat().st_size == 4096
        await node.detach_volume("i-1", "vol-2")
        with pytest.raises(VolumeError):
            await node.detach_volume("i-1", "vol-2")

    run(node, scenario)


def test_only_the_cloud_reaching_the_node_it_names_gets_answers(
    ca: NodeCA, cloud_tls, tmp_path: Path
) -> None:
    fake = FakeNode()
    agent = Agent(fake, ca, node_identity(ca, tmp_path, "n1"))
    other_ca = NodeCA(tmp_path / "other")
    nodes: list[RemoteNode] = []
    try:
        n2 = node_identity(ca, tmp_path, "n2")  # another node: same CA, not the cloud
        as_node = RemoteNode("n1", agent.url, client_context(ca.cert_path, n2.cert, n2.key))
        stranger_cert, stranger_key = other_ca.cloud_identity(tmp_path / "other")
        stranger = RemoteNode(  # the cloud's subject, from another CA
            "n1", agent.url, client_context(ca.cert_path, stranger_cert, stranger_key)
        )
        wrong_name = RemoteNode("n2", agent.url, cloud_tls)  # the agent is n1's
        cloud = RemoteNode("n1", agent.url, cloud_tls)
        nodes += [as_node, stranger, wrong_name, cloud]
        with pytest.raises(NodeUnreachable, match="HTTP 403"):
            as_node.capacity()
        with pytest.raises(NodeUnreachable):
            stranger.capacity()
        with pytest.raises(NodeUnreachable):
            wrong_name.capacity()
        with pytest.raises(NodeUnreachable, match="HTTP 404"):
            cloud.call("guest_ended", None, {})
        assert cloud.capacity().vcpus_total == 10_000
        for junk in (b"{not json", b"[" * 60_000, b'{"spec": {"vcpus": 1}}', b"[]"):
            reply = cloud._sync.post(
                f"{agent.url}/v1/launch", content=junk, extensions={"sni_hostname": "n1"}
            )
            assert reply.status_code == 400 and reply.json()["refused"], junk
        assert not fake._instances
    finally:
        done(*nodes)
        agent.stop()


def test_a_node_that_does_not_answer_is_a_node_error(cloud_tls) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel does), never answers
    url = f"https://127.0.0.1:{silent.getsockname()[1]}"
    try:
        node = RemoteNode("n1", url, cloud_tls, 1)
        with pytest.raises(NodeUnreachable, match="no answer"):
            node.capacity()
        with pytest.raises(NodeError):
            asyncio.run(node.reboot("i-1"))
    finally:
        silent.close()
    closed = RemoteNode("n1", url, cloud_tls, 1)
    with pytest.raises(NodeUnreachable):
        closed.capacity()


class SlowNode(FakeNode):
    async def reboot(self, instance_id: str) -> None:
        await asyncio.sleep(30)


def test_an_answer_that_does_not_come_is_a_node_error(tmp_path: Path) -> None:
    agent, tls = served(SlowNode(), tmp_path)
    node = RemoteNode("n1", agent.url, tls, timeout=1)
    try:
        with pytest.raises(NodeUnreachable, match="no answer to reboot"):
            run(node, lambda: node.reboot("i-1"))
    finally:
        agent.stop()


def test_a_real_nodes_answers_travel_too(tmp_path: Path) -> None:
    """``Node`` behind the agent, not started (no guests, no namespaces)."""
    agent, tls = served(
        Node(tmp_path, NodeSettings(accelerator_cache=tmp_path / "a.json")), tmp_path
    )
    node = RemoteNode("n1", agent.url, tls, timeout=10)
    try:
        assert node.capacity().vcpus_total > 0
        assert node.summary()["accelerator"] == node.accelerator == "tcg"
        with pytest.raises(UnknownInstance):
            node.info("i-1")
        run(node, lambda: node.set_groups("vpc-1", [GroupRules("sg-1")]))
    finally:
        agent.stop()
