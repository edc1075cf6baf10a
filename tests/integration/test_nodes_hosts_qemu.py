"""A real guest on a node in another simulated host (issue 19's tests, tests/hosts.py):
the cloud, `karri up --host 10.250.X.1 --node-port …` (QEMU driver), in host 1; `karri
node` with the QEMU driver and its own data dir in host 2, joined over the test network
in a zone of its own. RunInstances into that zone boots the tiny guest (TCG as the
machine allows) on host 2: the node fetched the image through a presigned URL of the
cloud's S3 endpoint (10.250.X.1, over the test network: the node shares no data dir
with the cloud), its metadata and user data came through the gateway, its console is
read from that node. The node's VPC namespace hangs off host 2's namespace, not the
machine's. Clients run in host 1 (see test_nodes_hosts.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from karri.node.netns import host_link_name
from tests.conftest import KARRI, Karri, start_karri
from tests.hosts import Hosts
from tests.integration.guests import end_cloud, terminate_all, tiny_image, wait_console, wait_state
from tests.integration.test_nodes_hosts import NODE_PORT, ZONE, Node, hosts, reachable
from tests.integration.test_nodes_join import nodes, token, wait_for

__all__ = ["hosts"]  # the module's simulated hosts
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("qemu-system-x86_64"),
    reason="guests need root (namespaces) and QEMU",
)
HELLO = '#!/bin/sh\necho "karri-test: hello from host 2"\n'


@pytest.fixture(scope="module")
def cloud(hosts: Hosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    data = tmp_path_factory.mktemp("nshosts-qemu") / "data"
    subprocess.run([KARRI, "zone", "create", ZONE, "--data-dir", str(data)], check=True)
    karri = start_karri(data, "--node-port", str(NODE_PORT), on=hosts.host(1))
    try:
        yield karri
    finally:
        end_cloud(karri, wait=True)


@pytest.fixture(scope="module")
def node(cloud: Karri, hosts: Hosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """n2, QEMU driver, on host 2; its guests ended, then it and its namespaces."""
    base = tmp_path_factory.mktemp("nshosts-qemu-node")
    n2 = Node("n2", hosts.host(2), base / "n2", driver="qemu")
    try:
        n2.start("--cloud", cloud.ec2_url, "--token", token(cloud))
        wait_for(lambda: reachable(cloud) == ["n2"], 180)
        yield n2
    finally:
        terminate_all(cloud.client("ec2"), wait=True, timeout=300)  # while n2 runs: there
        n2.stop()
        down = [KARRI, "down", "--guests", "--data-dir", str(n2.data_dir)]
        subprocess.run(n2.host.ns.exec_args(*down), check=False)  # in its host


def links(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def test_a_guest_boots_on_another_host(cloud: Karri, node: Node) -> None:
    ec2 = cloud.client("ec2")
    run = ec2.run_instances(
        ImageId=tiny_image(cloud, ec2), MinCount=1, MaxCount=1, UserData=HELLO,
        Placement={"AvailabilityZone": ZONE},
    )  # fmt: skip
    instance_id = run["Instances"][0]["InstanceId"]
    wait_state(ec2, instance_id, "running", timeout=300)
    assert nodes(cloud)["n2"]["instances"] == 1
    text = wait_console(ec2, instance_id, "karri-tiny: boot complete")
    assert f"karri-tiny: instance {instance_id} boot 1" in text  # n2's metadata service
    assert "karri-test: hello from host 2" in text  # the user data, through the gateway
    cached = [p for p in (node.data_dir / "node" / "images").rglob("*") if p.is_file()]
    assert cached  # in n2's own image cache, from the presigned URL
    # the host's end of the guest's VPC namespace is in host 2, not in the machine's
    vpc_id = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
        "VpcId"
    ]
    link = host_link_name(node.data_dir, vpc_id)
    assert link in links(node.host.ns.exec_args("ip", "-o", "link"))
    assert link not in links(["ip", "-o", "link"])
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated", timeout=300)
