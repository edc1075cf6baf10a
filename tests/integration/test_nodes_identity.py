"""Identity documents signed for a joined node: a real `karri up --node-port` (its own node:
the fake driver, round robin: ``test_nodes_placement``'s ``cloud``) and a real `karri node
--node-driver fake` on 127.0.0.2, joined with a token. With the node's own certificate (its
data dir), the gateway's ``sign_identity`` answers the document the cloud builds from its
records of the node's instance, signed with the cloud's key, verified with the certificate
`karri cloud-cert` prints; the cloud's own node's instance, an unknown one and a terminated
one are refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest

from karri.node.cloudlink import CloudLink
from karri.node.identity import SignedIdentity
from karri.node.membership import Membership, tls
from tests.conftest import Karri
from tests.integration.guests import tiny_image, wait_state
from tests.integration.test_nodes_placement import FIRST, cloud, on_agent, start_agents, stop_agents
from tests.node.signing import check_signature, pkcs7_content

__all__ = ["cloud"]  # the module's cloud: `karri up --node-port`, round robin
ZONE = FIRST


@pytest.fixture(scope="module")
def node(cloud: Karri, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """n1 joined and connected: its data dir and its agent's URL."""
    base = tmp_path_factory.mktemp("nodes")
    processes, urls = start_agents(cloud, base, {"n1": ("127.0.0.2", ZONE)})
    try:
        yield base / "n1", urls["n1"]
    finally:
        stop_agents(processes)


def sign(node_dir: Path, instance_id: str) -> SignedIdentity | None:
    """What the gateway answers the node (its own certificate) for ``instance_id``."""
    membership = Membership.load(node_dir)
    assert membership is not None

    async def ask() -> SignedIdentity | None:
        link = CloudLink(membership.gateway, tls(node_dir))
        try:
            return await link.sign_identity(instance_id)
        finally:
            await link.close()

    return asyncio.run(ask())


def test_the_cloud_signs_its_own_record_of_the_nodes_instance(
    cloud: Karri, node: tuple[Path, str], tmp_path: Path
) -> None:
    node_dir, agent = node
    ec2 = cloud.client("ec2")
    image_id = tiny_image(cloud, ec2)
    run = ec2.run_instances(ImageId=image_id, MinCount=2, MaxCount=2, InstanceType="t1.micro")
    ids = [i["InstanceId"] for i in run["Instances"]]
    for instance_id in ids:
        wait_state(ec2, instance_id, "running")
    on_n1 = [i for i in ids if on_agent(cloud, "n1", agent, i) is not None]
    assert len(on_n1) == 1  # round robin: one on the cloud's own node, one on n1
    (mine,) = on_n1
    (own,) = set(ids) - {mine}

    signed = sign(node_dir, mine)
    assert signed is not None
    described = ec2.describe_instances(InstanceIds=[mine])["Reservations"][0]["Instances"][0]
    document = json.loads(signed.document)
    assert document["instanceId"] == mine and document["imageId"] == image_id
    assert document["privateIp"] == described["PrivateIpAddress"]
    assert document["availabilityZone"] == ZONE and document["instanceType"] == "t1.micro"
    launched = described["LaunchTime"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert document["pendingTime"] == launched and document["region"] == cloud.region

    cert = cloud.cli("cloud-cert").stdout.encode()  # how a user gets it to verify with
    check_signature(cert, signed.document, signed.views["signature"])
    assert pkcs7_content(cert, signed.views["pkcs7"].decode(), tmp_path) == signed.document
    assert signed.views["rsa2048"] == signed.views["pkcs7"]

    assert sign(node_dir, own) is None  # the cloud's own node's
    assert sign(node_dir, "i-00000000") is None  # unknown
    ec2.terminate_instances(InstanceIds=ids)
    wait_state(ec2, mine, "terminated")
    assert sign(node_dir, mine) is None  # no longer live
