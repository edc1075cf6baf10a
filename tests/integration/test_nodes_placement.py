"""Instances on several nodes (many-hosts step 5): a real `karri up` (its own node: the
fake driver) and two real `karri node --node-driver fake` processes, joined with tokens,
their agents on 127.0.0.2 and 127.0.0.3: n1 in the cloud's first zone, n2 in a zone
`karri zone create` added. boto3's RunInstances places instances round robin over the
zone's nodes in one reservation; each node runs its own (asked through its agent with the
cloud's certificate); TerminateInstances ends them on their node; a launch in the second
zone lands on n2, and one larger than n2 is InsufficientInstanceCapacity."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from karri.cloud.nodes.remote import RemoteNode
from karri.node import UnknownInstance, VmState
from tests.conftest import KARRI, Karri, free_port, start_karri, stop_karri
from tests.integration.guests import tiny_image, wait_state
from tests.integration.test_node_transport import cloud_tls
from tests.integration.test_nodes_join import nodes, token, wait_for

FIRST, SECOND = "eucalyptus-1a", "eucalyptus-1b"
NODES = {"n1": ("127.0.0.2", FIRST), "n2": ("127.0.0.3", SECOND)}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    data = tmp_path_factory.mktemp("placement") / "data"
    subprocess.run([KARRI, "zone", "create", SECOND, "--data-dir", str(data)], check=True)
    karri = start_karri(
        data, "--node-driver", "fake", "--node-port", str(free_port()), "--scheduler", "roundrobin"
    )
    try:
        yield karri
    finally:
        stop_karri(karri)


@pytest.fixture(scope="module")
def agents(cloud: Karri, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """n1 and n2 joined, serving their agents, and connected by the cloud: their URLs."""
    processes, urls = start_agents(cloud, tmp_path_factory.mktemp("nodes"), NODES)
    try:
        yield urls
    finally:
        stop_agents(processes)


def start_agents(
    cloud: Karri, base: Path, where: dict[str, tuple[str, str]], interval: str = "0.5"
) -> tuple[list[subprocess.Popen], dict[str, str]]:
    """A `karri node --node-driver fake` per name (its agent's address, its zone), joined
    with a token each, ENABLED and connected by the cloud: the processes, the agents' URLs
    (bench/cluster.py starts its nodes this way too)."""
    processes, urls = [], {}
    try:
        for name, (host, zone) in where.items():
            port = free_port()
            log = open(base / f"{name}.out", "ab")  # noqa: SIM115
            command = [
                KARRI, "node", "--data-dir", str(base / name), "--cloud", cloud.ec2_url,
                "--token", token(cloud), "--name", name, "--zone", zone, "--interval", interval,
                "--host", host, "--port", str(port), "--node-driver", "fake",
            ]  # fmt: skip
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
            urls[name] = f"https://{host}:{port}"
        for name, url in urls.items():
            wait_for(lambda n=name: nodes(cloud).get(n, {}).get("state") == "ENABLED")
            assert nodes(cloud)[name]["agent"] == url
        wait_for(lambda: connected(cloud) == sorted(where))
    except BaseException:
        stop_agents(processes)
        raise
    return processes, urls


def stop_agents(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def connected(cloud: Karri) -> list[str]:
    with urllib.request.urlopen(cloud.ec2_url + "/karri/health", timeout=10) as reply:
        return json.loads(reply.read()).get("connected_nodes", [])  # once the node runs


def on_agent(cloud: Karri, name: str, url: str, instance_id: str) -> VmState | None:
    """What the node's agent itself says of the instance (None: it knows nothing of it)."""

    async def ask() -> VmState | None:
        remote = RemoteNode(name, url, cloud_tls(cloud), timeout=20)
        try:
            return remote.info(instance_id).state
        except UnknownInstance:
            return None
        finally:
            await remote.disconnect()

    return asyncio.run(ask())


def per_node(cloud: Karri) -> dict[str, int]:
    listed = json.loads(cloud.cli("node", "list", "--json").stdout)
    return {n["name"]: n["instances"] for n in listed}


def test_round_robin_over_the_zones_nodes(cloud: Karri, agents: dict[str, str]) -> None:
    ec2 = cloud.client("ec2")
    image_id = tiny_image(cloud, ec2)
    run = ec2.run_instances(ImageId=image_id, MinCount=4, MaxCount=4, InstanceType="t1.micro")
    ids = [i["InstanceId"] for i in run["Instances"]]
    assert {i["Placement"]["AvailabilityZone"] for i in run["Instances"]} == {FIRST}
    for instance_id in ids:
        wait_state(ec2, instance_id, "running")
    described = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    assert len(described) == 1 and len(described[0]["Instances"]) == 4  # one reservation
    # round robin: the cloud's own node and n1 in turn (n2 is in the other zone)
    on_n1 = [i for i in ids if on_agent(cloud, "n1", agents["n1"], i) == VmState.RUNNING]
    assert len(on_n1) == 2, on_n1
    assert all(on_agent(cloud, "n2", agents["n2"], i) is None for i in ids)
    assert per_node(cloud) == {"n1": 2, "n2": 0}
    status = cloud.cli("status", "--json")
    assert json.loads(status.stdout)["counts"]["live instances by node"] == {"(cloud)": 2, "n1": 2}

    ec2.terminate_instances(InstanceIds=on_n1[:1])
    wait_state(ec2, on_n1[0], "terminated")
    assert on_agent(cloud, "n1", agents["n1"], on_n1[0]) is None  # ended on n1
    assert on_agent(cloud, "n1", agents["n1"], on_n1[1]) == VmState.RUNNING
    ec2.terminate_instances(InstanceIds=ids)
    for instance_id in ids:
        wait_state(ec2, instance_id, "terminated")
    assert on_agent(cloud, "n1", agents["n1"], on_n1[1]) is None


def test_a_zone_restricted_launch_lands_on_that_zones_node(
    cloud: Karri, agents: dict[str, str]
) -> None:
    ec2 = cloud.client("ec2")
    image_id = tiny_image(cloud, ec2)
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == [FIRST, SECOND]
    run = ec2.run_instances(
        ImageId=image_id, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": SECOND}
    )
    instance_id = run["Instances"][0]["InstanceId"]
    assert run["Instances"][0]["Placement"]["AvailabilityZone"] == SECOND
    wait_state(ec2, instance_id, "running")
    assert on_agent(cloud, "n2", agents["n2"], instance_id) == VmState.RUNNING
    assert per_node(cloud)["n2"] == 1
    # more than n2 has room for (its host's CPUs, over-committed 4 times)
    with pytest.raises(ClientError) as refused:
        ec2.run_instances(
            ImageId=image_id, MinCount=200, MaxCount=200, InstanceType="t1.micro",
            Placement={"AvailabilityZone": SECOND},
        )  # fmt: skip
    assert refused.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated")
    assert on_agent(cloud, "n2", agents["n2"], instance_id) is None
