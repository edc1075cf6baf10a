"""Two guests of one subnet on two nodes reach each other (many-hosts step 6): a real
`karri up` with its own node and, on the same host, a second `karri node` with the QEMU
driver in the same zone; one RunInstances of two guests places one on each (round robin),
and the first pings the second's private address over the subnet's VXLAN devices (on
loopback addresses, a UDP port per node: ``cloud/instances/overlays.py``). The VPC's
default group admits its own members only: the remote member is in its address set.
Both nodes' overlay runs over loopback (MTU 65536): the guests are told AWS's 9001 by DHCP
and a full-size ping crosses. A volume written by the guest on the cloud's node (its file)
and detached reads back the same bytes in the guest on n1 (over NBD and n1's relay)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Karri, free_port, start_karri
from tests.integration.ebs import wait_until, wait_volume
from tests.integration.guests import (
    end_cloud,
    instance,
    key_file,
    open_port,
    ssh,
    tiny_image,
    wait_console,
    wait_state,
)
from tests.integration.test_ebs_guests import FIND, attachment_state
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


@pytest.fixture(scope="module")
def guests(
    cloud: Karri, node: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """One RunInstances of two guests: the key, the guest on the cloud's own node, the
    guest on n1 (as DescribeInstances shows them)."""
    ec2 = cloud.client("ec2")
    image_id = tiny_image(cloud, ec2)
    key = key_file(ec2, tmp_path_factory.mktemp("key"), "vx")
    open_port(ec2, 22)
    run = ec2.run_instances(ImageId=image_id, MinCount=2, MaxCount=2, KeyName="vx")
    ids = [i["InstanceId"] for i in run["Instances"]]
    for instance_id in ids:
        wait_state(ec2, instance_id, "running", timeout=300)
    for instance_id in ids:  # both booted (under load one may lag the other by far)
        wait_console(ec2, instance_id, "karri-tiny: boot complete")
    on_n1 = [i for i in ids if any(i in line for line in qemu_of(node))]
    assert len(on_n1) == 1  # one guest on each node
    own, far = (instance(ec2, i) for i in sorted(ids, key=lambda i: i in on_n1))
    return key, own, far


def test_two_guests_of_one_subnet_on_two_nodes_reach_each_other(
    cloud: Karri, guests: tuple[Path, dict[str, Any], dict[str, Any]]
) -> None:
    ec2 = cloud.client("ec2")
    key, first, second = guests
    assert json.loads(cloud.cli("node", "list", "--json").stdout)[0]["instances"] == 1
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


def test_the_guests_get_the_overlays_mtu_and_full_size_frames_cross(
    guests: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    """Over loopback (65536) the overlay fits AWS's 9001: each guest asked for DHCP option
    26 and set it; a ping of 9001 bytes (8973 of data) crosses both ways. busybox's ping
    has no ``-M do``, but Linux sets DF on a datagram that fits its route's MTU, and the
    bridges and VXLAN devices on the way forward whole frames only (one too big for a
    device is dropped, not split)."""
    key, first, second = guests
    for guest in guests[1:]:
        mtu = ssh(key, guest["PublicIpAddress"], "cat /sys/class/net/eth0/mtu").strip()
        assert mtu == "9001", guest["InstanceId"]
    for one, other in ((first, second), (second, first)):
        assert "2 packets received" in ping(key, one, other, size=9001 - 28)


def test_a_volume_moves_from_a_guest_on_one_node_to_a_guest_on_another(
    cloud: Karri, node: Path, guests: tuple[Path, dict[str, Any], dict[str, Any]]
) -> None:
    """Written by the guest on the cloud's node (the volume's file), detached, attached to
    the guest on n1 (an NBD export through n1's relay): the same bytes read back."""
    ec2 = cloud.client("ec2")
    key, own, far = guests
    zone = own["Placement"]["AvailabilityZone"]
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    wait_volume(ec2, volume_id)
    marker = f"MOVED-{volume_id}"
    said = []
    for guest, command in (
        (own, f"printf '{marker}' > $DEV; sync; echo written"),
        (far, f"head -c {len(marker)} $DEV"),
    ):
        ec2.attach_volume(VolumeId=volume_id, InstanceId=guest["InstanceId"], Device="/dev/sdf")
        wait_until(lambda: attachment_state(ec2, volume_id) == "attached", 120)
        address = guest["PublicIpAddress"]
        find = FIND.format(vol=volume_id)
        device = wait_until(lambda: ssh(key, address, find).strip(), 60, 1)  # noqa: B023
        said.append(ssh(key, address, command.replace("$DEV", device)))
        relays = list((node / "node" / "nbd").glob("*.sock"))
        assert bool(relays) == (guest is far)  # on n1: over NBD, through its relay
        ec2.detach_volume(VolumeId=volume_id)
        wait_volume(ec2, volume_id)
    assert said == ["written\n", marker]
    assert not list((node / "node" / "nbd").glob("*.sock"))  # the relay ended


def ping(key: Path, one: dict[str, Any], other: dict[str, Any], size: int = 56) -> str:
    """What ``one`` sees pinging ``other``'s private address (twice, ``size`` bytes of
    data)."""
    command = f"ping -c 2 -W 3 -s {size} {other['PrivateIpAddress']}; true"
    return ssh(key, one["PublicIpAddress"], command)
