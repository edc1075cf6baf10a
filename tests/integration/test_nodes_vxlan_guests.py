"""Two guests of one subnet on two nodes reach each other (many-hosts step 6): a real
`karri up` with its own node and, on the same host, a second `karri node` with the QEMU
driver in the same zone; one RunInstances of two guests places one on each (round robin),
and the first pings the second's private address over the subnet's VXLAN devices (on
loopback addresses, a UDP port per node: ``cloud/instances/overlays.py``). The VPC's
default group admits its own members only: the remote member is in its address set."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Karri, free_port, start_karri
from tests.integration.guests import (
    end_cloud,
    instance,
    key_file,
    open_port,
    ssh,
    tiny_image,
    wait_state,
)
from tests.integration.test_nodes_qemu_guest import qemu_node, qemu_of

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("vxlan") / "data", "--node-port", str(free_port()))
    try:
        yield karri
    finally:
        end_cloud(karri, wait=True)


@pytest.fixture(scope="module")
def node(cloud: Karri, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with qemu_node(cloud, tmp_path_factory.mktemp("vxlan") / "n1", None) as node_dir:
        yield node_dir


def test_two_guests_of_one_subnet_on_two_nodes_reach_each_other(
    cloud: Karri, node: Path, tmp_path: Path
) -> None:
    ec2 = cloud.client("ec2")
    image_id = tiny_image(cloud, ec2)
    key = key_file(ec2, tmp_path, "vx")
    open_port(ec2, 22)
    run = ec2.run_instances(ImageId=image_id, MinCount=2, MaxCount=2, KeyName="vx")
    ids = [i["InstanceId"] for i in run["Instances"]]
    for instance_id in ids:
        wait_state(ec2, instance_id, "running", timeout=300)
    on_n1 = [i for i in ids if any(i in line for line in qemu_of(node))]
    assert len(on_n1) == 1  # one guest on each node
    assert json.loads(cloud.cli("node", "list", "--json").stdout)[0]["instances"] == 1
    first, second = (instance(ec2, i) for i in ids)
    assert first["SubnetId"] == second["SubnetId"]
    for one, other in ((first, second), (second, first)):
        assert "2 packets received" in ping(key, one, other)
    # the default group admits its members only: revoked, neither node lets the other in
    group_id = first["SecurityGroups"][0]["GroupId"]
    members = [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]}]
    ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=members)
    for one, other in ((first, second), (second, first)):
        assert "0 packets received" in ping(key, one, other)
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=members)
    assert "2 packets received" in ping(key, second, first)


def ping(key: Path, one: dict[str, Any], other: dict[str, Any]) -> str:
    """What ``one`` sees pinging ``other``'s private address (twice)."""
    command = f"ping -c 2 -W 3 {other['PrivateIpAddress']}; true"
    return ssh(key, one["PublicIpAddress"], command)
