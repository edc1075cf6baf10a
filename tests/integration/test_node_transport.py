"""The cloud <-> node transport (issue 19, step 4) between a real `karri up --node-port`
and a real `karri node` process (fake driver) on loopback: the cloud's client certificate
(made by `karri up` from its node CA) drives the node's agent through ``RemoteNode``; the
node's reports reach the gateway with its own certificate and are heard only about its own
instances (the test's own instance is no instance of the cloud's, so none here); a
certificate of another CA, another node's, or none gets nothing."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from karri.cloud.nodes.ca import NodeCA
from karri.cloud.nodes.remote import NodeUnreachable, RemoteNode
from karri.node import (
    AdoptReport,
    ExitReason,
    ImageRef,
    ImageRoot,
    InstanceSpec,
    UnknownInstance,
    VmState,
)
from karri.pki import client_context
from tests.conftest import KARRI, Karri, free_port, start_karri, stop_karri
from tests.integration.test_nodes_join import nodes, token, wait_for


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    data = tmp_path_factory.mktemp("transport") / "data"
    karri = start_karri(data, "--node-driver", "fake", "--node-port", str(free_port()))
    try:
        yield karri
    finally:
        stop_karri(karri)


@pytest.fixture(scope="module")
def node(cloud: Karri, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A joined `karri node` (n1) serving its agent: (its data dir, the agent's URL)."""
    node_dir = tmp_path_factory.mktemp("node") / "n1"
    port = free_port()
    log = open(node_dir.parent / "n1.out", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [KARRI, "node", "--data-dir", str(node_dir), "--cloud", cloud.ec2_url,
         "--token", token(cloud), "--name", "n1", "--interval", "0.5",
         "--host", "127.0.0.1", "--port", str(port), "--node-driver", "fake"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: nodes(cloud).get("n1", {}).get("state") == "ENABLED")
        wait_for(lambda: "agent on 127.0.0.1" in (node_dir.parent / "n1.out").read_text())
        yield node_dir, f"https://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def cloud_tls(cloud: Karri) -> ssl.SSLContext:
    d = cloud.data_dir
    return client_context(d / "node-ca.pem", d / "node-cloud.pem", d / "node-cloud.key")


IMAGE = ImageRef("emi-1", 1, "0" * 64, "http://127.0.0.1/emi-1")  # the fake fetches nothing


def spec() -> InstanceSpec:
    return InstanceSpec(
        "i-0123456789abcdef0", 1, 256, ImageRoot(IMAGE),
        "d0:0d:00:00:00:01", "172.31.0.5", public_ip=False,
    )  # fmt: skip


def test_the_cloud_drives_the_node_through_the_transport(cloud: Karri, node) -> None:
    node_dir, url = node

    async def scenario() -> None:
        remote = RemoteNode("n1", url, cloud_tls(cloud), timeout=20)
        try:
            assert await remote.start() == AdoptReport()
            assert remote.accelerator == "fake"
            info = await remote.launch(spec())
            assert info.state == VmState.RUNNING and remote.info(spec().instance_id) == info
            with pytest.raises(UnknownInstance):
                remote.health("i-404")
            ended = await remote.shutdown(spec().instance_id, timeout=5)
            assert ended.reason == ExitReason.HOST_SHUTDOWN
            await remote.destroy(spec().instance_id)
        finally:
            await remote.disconnect()

    asyncio.run(scenario())
    # the guest's end went to the gateway with n1's certificate, which heard it and
    # refused it: the instance is not placed on n1 (the cloud has no such instance)
    log = node_dir.parent / "n1.out"
    wait_for(lambda: "the cloud refused exit" in log.read_text())
    assert "no such instance on this node" in log.read_text()


def test_what_gets_nothing(cloud: Karri, node, tmp_path: Path) -> None:
    node_dir, url = node
    d = cloud.data_dir
    as_node = client_context(d / "node-ca.pem", node_dir / "node.pem", node_dir / "node.key")
    other = NodeCA(tmp_path / "other")
    stranger_cert, stranger_key = other.cloud_identity(tmp_path / "other")
    stranger = client_context(d / "node-ca.pem", stranger_cert, stranger_key)
    no_cert = ssl.create_default_context(cafile=str(d / "node-ca.pem"))

    # the agent: only the cloud's certificate is answered
    callers = [RemoteNode("n1", url, context) for context in (as_node, stranger, no_cert)]
    try:
        with pytest.raises(NodeUnreachable, match="HTTP 403"):
            callers[0].capacity()
        for caller in callers[1:]:
            with pytest.raises(NodeUnreachable):
                caller.capacity()
    finally:
        for caller in callers:
            asyncio.run(caller.disconnect())

    # the gateway: a node's own certificate, about an instance not placed on it: 404
    gateway = json.loads((node_dir / "node.json").read_text())["gateway"]
    body = {"instance_id": "i-0123456789abcdef0"}
    with httpx.Client(verify=as_node, timeout=10) as client:
        assert client.post(gateway + "/v1/metadata", json=body).status_code == 404
    for context in (stranger, no_cert):
        with pytest.raises(httpx.HTTPError), httpx.Client(verify=context, timeout=10) as client:
            client.post(gateway + "/v1/metadata", json=body)
