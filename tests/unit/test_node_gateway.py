"""The other direction: a node's ``CloudLink`` → the cloud's node gateway (mutual TLS on
127.0.0.1, a real registry and CA): exits, recoveries and metadata lookups reach the
hearer only about the calling node's own instances; a node is handed the cloud's Ceph
access; a removed node, or malformed calls, get nothing."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from karri.api.nodes import gateway_app, refusal
from karri.cloud.nodes.ca import NodeCA
from karri.cloud.nodes.ceph import NoCephAccess
from karri.cloud.nodes.identity import IdentitySigning
from karri.cloud.nodes.registry import Nodes
from karri.cloud.nodes.reports import NodeReports
from karri.db.engine import Database
from karri.node import ExitReason, InstanceExit, InstanceMetadata, NodeEvent
from karri.node.cephaccess import CephAccess
from karri.node.cloudlink import CloudLink
from karri.node.identity import IdentitySigner
from karri.node.membership import CA, CERT, KEY, Heartbeats, Membership
from karri.node.metadata import identity_document
from karri.node.signedviews import Unavailable
from karri.pki import GATEWAY_NAME, client_context, csr_for, key_pem, new_key, write_file
from karri.serving import MutualTls
from tests.node.signing import check_signature, identity_key
from tests.unit.threaded_server import ThreadedServer

PLACED = {"i-1": "n1", "i-2": "n2"}


def metadata(instance_id: str) -> InstanceMetadata:
    return InstanceMetadata(
        instance_id, "123456789012", "eucalyptus", "eucalyptus-1a", "r-1", "emi-1",
        "t2.micro", "172.31.0.5", "d0:0d:00:00:00:01", datetime(2026, 12, 6, tzinfo=UTC),
        user_data=b"\x00secret",
    )  # fmt: skip


class Hearer:
    def __init__(self) -> None:
        self.exits: list[InstanceExit] = []
        self.recoveries: list[tuple[str, NodeEvent]] = []

    async def lookup(self, instance_id: str) -> InstanceMetadata | None:
        return metadata(instance_id)

    def on_exit(self, report: InstanceExit) -> None:
        self.exits.append(report)

    def on_recovery(self, instance_id: str, event: NodeEvent) -> None:
        self.recoveries.append((instance_id, event))


class Placements:
    def node_of(self, instance_id: str) -> str | None:
        return PLACED.get(instance_id)


class Records:
    """The cloud's records of each instance (``IdentityRecords``)."""

    def metadata(self, instance_id: str) -> InstanceMetadata | None:
        return metadata(instance_id)


IDENTITY_KEY = identity_key()


def joined(nodes: Nodes, directory: Path, name: str) -> ssl.SSLContext:
    key = new_key()
    cert = nodes.join(nodes.new_token(), name, None, csr_for(key, name))
    write_file(directory / f"{name}.pem", cert, 0o644)
    write_file(directory / f"{name}.key", key_pem(key), 0o600)
    return client_context(nodes.ca.cert_path, directory / f"{name}.pem", directory / f"{name}.key")


@pytest.fixture
def world(tmp_path: Path):
    nodes = Nodes(Database(f"sqlite:///{tmp_path / 'k.db'}"), NodeCA(tmp_path), ["eucalyptus-1a"])
    hearer = Hearer()
    cert, key = nodes.ca.gateway_identity(tmp_path, ["127.0.0.1"])
    identity = IdentitySigning(Placements(), Records(), IdentitySigner(IDENTITY_KEY))
    app = gateway_app(nodes, NodeReports(Placements(), lambda: hearer), identity=identity)
    server = ThreadedServer(app, refusal, MutualTls(cert, key, nodes.ca.cert_path))
    try:
        yield nodes, hearer, server
    finally:
        server.stop()


def wait_for(check, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_node_is_heard_about_its_own_instances_only(world, tmp_path: Path) -> None:
    nodes, hearer, server = world
    tls = joined(nodes, tmp_path, "n1")
    joined(nodes, tmp_path, "n2")
    exit = InstanceExit("i-1", ExitReason.GUEST_SHUTDOWN, "poweroff", 1.5)
    event = NodeEvent("system-reboot", "relaunched under TCG", 2.5)

    async def scenario() -> None:
        link = CloudLink(server.url, tls)
        assert await link.lookup("i-1") == metadata("i-1")
        assert await link.lookup("i-2") is None  # n2's
        assert await link.lookup("i-404") is None
        link.on_exit(exit)
        link.on_exit(InstanceExit("i-2", ExitReason.CRASHED, "", 1.0))
        link.on_recovery("i-1", event)
        link.on_recovery("i-2", event)
        await link.close()

    asyncio.run(scenario())
    wait_for(lambda: bool(hearer.exits and hearer.recoveries))
    assert hearer.exits == [exit] and hearer.recoveries == [("i-1", event)]

    nodes.remove("n1")  # its certificate gets nothing from now on

    async def removed() -> None:
        link = CloudLink(server.url, tls)
        assert await link.lookup("i-1") is None
        async with httpx.AsyncClient(verify=tls) as client:
            reply = await client.post(server.url + "/v1/metadata", json={"instance_id": "i-1"})
            assert reply.status_code == 403
        await link.close()

    asyncio.run(removed())


def test_a_node_has_its_own_instances_identity_signed(world, tmp_path: Path) -> None:
    nodes, _hearer, server = world
    tls = joined(nodes, tmp_path, "n1")

    async def scenario() -> None:
        link = CloudLink(server.url, tls)
        signed = await link.sign_identity("i-1")
        assert signed is not None and signed.document == identity_document(metadata("i-1"))
        check_signature(IDENTITY_KEY.certificate_pem, signed.document, signed.views["signature"])
        assert await link.sign_identity("i-2") is None  # n2's
        assert await link.sign_identity("i-404") is None
        await link.close()

    asyncio.run(scenario())
    nodes.remove("n1")

    async def removed() -> None:
        link = CloudLink(server.url, tls)
        assert await link.sign_identity("i-1") is None  # 403
        await link.close()

    asyncio.run(removed())


def test_an_unreachable_cloud_is_unavailable_to_the_signing(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"https://127.0.0.1:{closed.getsockname()[1]}"  # nothing listens

        async def scenario() -> None:
            link = CloudLink(url, ssl.create_default_context())
            with pytest.raises(Unavailable):
                await link.sign_identity("i-1")
            await link.close()

        asyncio.run(scenario())


def test_malformed_calls_are_refused(world, tmp_path: Path) -> None:
    nodes, hearer, server = world
    tls = joined(nodes, tmp_path, "n1")
    bad = [
        ("/v1/metadata", {"instance_id": 5}),
        ("/v1/metadata", {"instance_id": "i-1", "more": 1}),
        ("/v1/exit", {"report": {"instance_id": "i-1", "reason": "bored", "detail": "", "at": 1}}),
        ("/v1/recovery", {"instance_id": "i-1"}),
        ("/v1/exit", [1]),
        # a node cannot hand the cloud a document to sign: it names the instance only
        ("/v1/sign_identity", {"instance_id": "i-1", "document": "e30="}),
    ]
    with httpx.Client(verify=tls) as client:
        for path, body in bad:
            reply = client.post(server.url + path, json=body)
            assert reply.status_code == 400 and reply.json()["error"], (path, body)
        assert client.post(server.url + "/v1/launch", json={}).status_code == 404
        for junk in (b"{not json", b"[" * 60_000):
            assert client.post(server.url + "/v1/metadata", content=junk).status_code == 400
    assert not hearer.exits and not hearer.recoveries


def test_a_node_cannot_pose_as_the_gateway(world, tmp_path: Path) -> None:
    """A node's certificate serves its agent (serverAuth) and names the node: one named
    like the gateway's host still does not pass for the gateway, which a node checks by
    the gateway's own name."""
    nodes, hearer, _server = world
    tls = joined(nodes, tmp_path, "n1")
    joined(nodes, tmp_path, "localhost")  # the host in the gateway's URL, below
    app = gateway_app(nodes, NodeReports(Placements(), lambda: hearer))
    cert = MutualTls(tmp_path / "localhost.pem", tmp_path / "localhost.key", nodes.ca.cert_path)
    impostor = ThreadedServer(app, refusal, cert)
    url = impostor.url.replace("127.0.0.1", "localhost")

    async def scenario() -> None:
        async with httpx.AsyncClient(verify=tls) as plain:  # checked by URL alone: passes
            reply = await plain.post(url + "/v1/metadata", json={"instance_id": "i-1"})
            assert reply.status_code == 200
        link = CloudLink(url, tls)
        assert await link.lookup("i-1") is None  # TLS refused the impostor
        await link.close()

    try:
        asyncio.run(scenario())
    finally:
        impostor.stop()


def test_a_heartbeat_says_where_the_agent_answers(world, tmp_path: Path) -> None:
    nodes, _hearer, server = world
    tls = joined(nodes, tmp_path, "n1")
    beat = {"vcpus": 2, "memory_mib": 2048, "interval": 1}

    def agent_of() -> str | None:
        return {n.name: n.agent_url for n in nodes.list()}["n1"]

    with httpx.Client(verify=tls) as client:

        def send(body: dict) -> int:
            return client.post(
                server.url + "/v1/heartbeat", json=body, extensions={"sni_hostname": GATEWAY_NAME}
            ).status_code

        assert send(beat) == 200 and agent_of() is None  # an old node says nothing of it
        assert send(beat | {"agent": {"host": "127.0.0.9", "port": 8776}}) == 200
        assert agent_of() == "https://127.0.0.9:8776"
        # listening on every address: reached at the address it calls from
        assert send(beat | {"agent": {"host": None, "port": 9000}}) == 200
        assert agent_of() == "https://127.0.0.1:9000"
        assert send(beat | {"agent": {"host": "fe80::1", "port": 9000}}) == 200
        assert agent_of() == "https://[fe80::1]:9000"
        for bad in ({"port": 0}, {"port": 9000, "host": "a/b"}, {"host": "h"}, [9000]):
            assert send(beat | {"agent": bad}) == 400, bad
        assert agent_of() == "https://[fe80::1]:9000"


ACCESS = CephAccess("2f0e6a1c-0000-4000-8000-000000000001", "[v2:10.0.0.1:3300]", "karri", "QUJD==")


def test_a_node_gets_the_clouds_ceph_access(tmp_path: Path) -> None:
    """A current node is handed the Ceph access (none when volumes are not on Ceph, 503
    when the cloud's own configuration lacks it); a removed one gets nothing."""
    nodes = Nodes(Database(f"sqlite:///{tmp_path / 'k.db'}"), NodeCA(tmp_path), ["eucalyptus-1a"])
    cert, key = nodes.ca.gateway_identity(tmp_path, ["127.0.0.1"])
    answers: list[CephAccess | Exception | None] = [ACCESS, None, NoCephAccess("no key")]

    def ceph() -> CephAccess | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    app = gateway_app(nodes, NodeReports(Placements(), lambda: None), ceph)
    server = ThreadedServer(app, refusal, MutualTls(cert, key, nodes.ca.cert_path))
    tls = joined(nodes, tmp_path, "n1")

    async def scenario() -> None:
        link = CloudLink(server.url, tls)
        assert await link.ceph_access() == ACCESS
        assert await link.ceph_access() is None
        with pytest.raises(LookupError, match="503"):
            await link.ceph_access()
        nodes.remove("n1")
        with pytest.raises(LookupError, match="403"):
            await link.ceph_access()
        await link.close()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_heartbeats_pass_a_dead_gateway_for_a_live_one_and_learn_the_list(
    tmp_path: Path,
) -> None:
    """Over real TLS: the node's gateway refuses connections, the next one (any gateway
    certificate of the cloud CA will do) takes the beat and lists the live gateways,
    which the node keeps."""
    nodes = Nodes(Database(f"sqlite:///{tmp_path / 'k.db'}"), NodeCA(tmp_path), ["eucalyptus-1a"])
    cert, key = nodes.ca.gateway_identity(tmp_path, ["127.0.0.2"])  # another host's name
    live = ["https://127.0.0.1:1", "https://127.0.0.1:2"]
    app = gateway_app(nodes, NodeReports(Placements(), lambda: None), gateways=lambda: live)
    server = ThreadedServer(app, refusal, MutualTls(cert, key, nodes.ca.cert_path))
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    joined(nodes, node_dir, "n1")
    for name, target in (("n1.pem", CERT), ("n1.key", KEY)):
        (node_dir / name).rename(node_dir / target)
    (node_dir / CA).write_bytes(nodes.ca.pem)
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{unused.getsockname()[1]}"
    Membership("n1", None, dead, (dead, server.url)).save(node_dir)
    try:
        gateways = Membership.load(node_dir).reached(node_dir)  # type: ignore[union-attr]
        Heartbeats(node_dir, gateways, interval=1).beat()
        assert nodes.list()[0].state == "ENABLED"
        assert Membership.load(node_dir) == Membership("n1", None, server.url, tuple(live))
    finally:
        server.stop()
