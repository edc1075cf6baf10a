"""Real guests on two simulated hosts (issue 19's tests, tests/hosts.py): the cloud,
`karri up --host 10.250.X.1 --node-port …`, in host 1 (its volumes' files there too);
`karri node` with the QEMU driver in hosts 2 and 3, joined over the test network in a
zone of their own. One RunInstances of two guests in that zone puts one on each host, in
one subnet: they reach each other over the subnet's VXLAN devices, whose underlay is the
test network between the hosts (not loopback), and a change of their security group
applies on both hosts. A volume (the cloud's file in host 1) written by the guest in
host 2, detached and attached to the guest in host 3, reads back the same bytes: over
NBD with TLS from host 1, through each node's relay. SSH reaches each guest from its own
host (the public address is mapped on the node that hosts the guest); clients run in
host 1 (see test_nodes_hosts.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KARRI, Karri
from tests.hosts import Hosts
from tests.integration.ebs import wait_until, wait_volume
from tests.integration.guests import (
    instance,
    key_file,
    open_port,
    ssh,
    terminate_all,
    tiny_image,
    wait_console,
    wait_state,
)
from tests.integration.test_ebs_guests import FIND, attachment_state
from tests.integration.test_nodes_hosts import ZONE, Node, hosts, reachable
from tests.integration.test_nodes_hosts_qemu import cloud
from tests.integration.test_nodes_join import token, wait_for

__all__ = ["cloud", "hosts"]  # the module's cloud (in host 1) and simulated hosts
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("qemu-system-x86_64"),
    reason="guests need root (namespaces) and QEMU",
)
KEY = "hosts"
Guest = tuple[dict[str, Any], Node]  # as DescribeInstances shows it, and its node


@pytest.fixture(scope="module")
def fleet(
    cloud: Karri, hosts: Hosts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Node]]:
    """n2 and n3, QEMU driver, on hosts 2 and 3; their guests ended, then they and what
    they left in their hosts."""
    base = tmp_path_factory.mktemp("nshosts-guests-nodes")
    joined = {f"n{n}": Node(f"n{n}", hosts.host(n), base / f"n{n}", "qemu") for n in (2, 3)}
    try:
        tokens = [token(cloud) for _ in joined]
        for node, given in zip(joined.values(), tokens, strict=True):
            node.start("--cloud", cloud.ec2_url, "--token", given)
        wait_for(lambda: reachable(cloud) == sorted(joined), 180)
        yield joined
    finally:
        terminate_all(cloud.client("ec2"), wait=True, timeout=300)  # while the nodes run
        for node in joined.values():
            node.stop()
            down = [KARRI, "down", "--guests", "--data-dir", str(node.data_dir)]
            subprocess.run(node.host.ns.exec_args(*down), check=False)  # in its host


@pytest.fixture(scope="module")
def key(cloud: Karri, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return key_file(cloud.client("ec2"), tmp_path_factory.mktemp("key"), KEY)


@pytest.fixture(scope="module")
def guests(cloud: Karri, fleet: dict[str, Node], key: Path) -> dict[str, Guest]:
    """The guest on each node, by node name: as DescribeInstances shows it, and its node."""
    ec2 = cloud.client("ec2")
    image_id = tiny_image(cloud, ec2)
    open_port(ec2, 22)
    run = ec2.run_instances(
        ImageId=image_id, MinCount=2, MaxCount=2, KeyName=KEY,
        Placement={"AvailabilityZone": ZONE},
    )  # fmt: skip
    placed = {}
    for launched in run["Instances"]:
        wait_state(ec2, launched["InstanceId"], "running", timeout=300)
        wait_console(ec2, launched["InstanceId"], "karri-tiny: boot complete")
        described = instance(ec2, launched["InstanceId"])
        hosting = [n for n in fleet.values() if _runs(n, launched["InstanceId"])]
        assert len(hosting) == 1, described
        placed[hosting[0].name] = (described, hosting[0])
    assert sorted(placed) == ["n2", "n3"]  # one guest on each host
    return placed


def _runs(node: Node, instance_id: str) -> bool:
    return (node.data_dir / "node" / "instances" / instance_id / "instance.json").exists()


def in_guest(key: Path, guest: Guest, command: str) -> str:
    """``command``'s output in the guest, over SSH from the host of its node."""
    described, node = guest
    return ssh(key, described["PublicIpAddress"], command, via=node.host.ns.exec_args())


def ping(key: Path, one: Guest, other: Guest) -> str:
    return in_guest(key, one, f"ping -c 2 -W 3 {other[0]['PrivateIpAddress']}; true")


def test_guests_on_two_hosts_reach_each_other_and_their_group_applies_on_both(
    cloud: Karri, key: Path, guests: dict[str, Guest]
) -> None:
    ec2 = cloud.client("ec2")
    first, second = guests["n2"], guests["n3"]
    assert first[0]["SubnetId"] == second[0]["SubnetId"]
    for one, other in ((first, second), (second, first)):
        assert "2 packets received" in ping(key, one, other)
    mtu = in_guest(key, first, "cat /sys/class/net/eth0/mtu").strip()
    assert mtu == "1450"  # the test network's 1500 less VXLAN's 50, told by DHCP
    group_id = first[0]["SecurityGroups"][0]["GroupId"]
    members = [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]}]
    ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=members)
    for one, other in ((first, second), (second, first)):
        assert "0 packets received" in ping(key, one, other)
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=members)
    for one, other in ((first, second), (second, first)):
        assert "2 packets received" in ping(key, one, other)


def test_a_volume_moves_between_guests_on_two_hosts(
    cloud: Karri, key: Path, guests: dict[str, Guest]
) -> None:
    ec2 = cloud.client("ec2")
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, volume_id)
    marker = f"CROSSED-{volume_id}"
    said = []
    for name, command in (
        ("n2", f"printf '{marker}' > $DEV; sync; echo written"),
        ("n3", f"head -c {len(marker)} $DEV"),
    ):
        guest = guests[name]
        ec2.attach_volume(VolumeId=volume_id, InstanceId=guest[0]["InstanceId"], Device="/dev/sdf")
        wait_until(lambda: attachment_state(ec2, volume_id) == "attached", 120)
        find = FIND.format(vol=volume_id)
        device = wait_until(lambda: in_guest(key, guest, find).strip(), 60, 1)  # noqa: B023
        said.append(in_guest(key, guest, command.replace("$DEV", device)))
        assert list((guest[1].data_dir / "node" / "nbd").glob("*.sock"))  # its relay
        ec2.detach_volume(VolumeId=volume_id)
        wait_volume(ec2, volume_id)
    assert said == ["written\n", marker]
