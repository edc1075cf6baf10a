"""Real guests (TCG) in a VPC of the account's own (issue 16): a guest in a subnet of a new
VPC gets its DHCP lease and its metadata in that VPC's namespace, and is cut off from the
default VPC's guests even at the same addresses (the new VPC has the default one's range);
its public address leads to it only while its subnet's route table sends 0.0.0.0/0 to an
internet gateway attached to the VPC."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Karri, start_karri
from tests.integration.guests import (
    end_cloud,
    ssh_banner,
    tiny_image,
    wait_console,
    wait_for,
    wait_state,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")

PROBE = """#!/bin/sh
arping -c 2 -w 3 -I eth0 {gateway} >/dev/null 2>&1; echo "karri-test: gateway arp $?"
arping -c 2 -w 3 -I eth0 {other} >/dev/null 2>&1; echo "karri-test: other-vpc arp $?"
"""
PING = """#!/bin/sh
r=1; for i in $(seq 60); do ping -c 1 -W 1 {peer} >/dev/null 2>&1 && {{ r=0; break; }}; done
echo "karri-test: cross-subnet ping $r"
"""


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Karri]]:
    """The module's cloud, under ``karri`` (a test that restarts it puts the new one there)."""
    holder = {"karri": start_karri(tmp_path_factory.mktemp("vpc-guests") / "data")}
    try:
        yield holder
    finally:
        end_cloud(holder["karri"])


@pytest.fixture
def cloud(clouds: dict[str, Karri]) -> Karri:
    return clouds["karri"]


def run(ec2: Any, image: str, **extra: Any) -> str:
    return ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t1.micro", **extra
    )["Instances"][0]["InstanceId"]


def test_a_guest_in_a_new_vpc_is_served_there_and_isolated(cloud: Karri) -> None:
    ec2 = cloud.client("ec2")
    image = tiny_image(cloud, ec2)
    in_default = run(ec2, image)
    default_ip = ec2.describe_instances(InstanceIds=[in_default])["Reservations"][0]["Instances"][
        0
    ]["PrivateIpAddress"]
    wait_console(ec2, in_default, "karri-tiny: boot complete")

    vpc_id = ec2.create_vpc(CidrBlock="172.31.0.0/16")["Vpc"]["VpcId"]  # the default's range
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="172.31.0.0/24")["Subnet"]["SubnetId"]
    mine = run(
        ec2,
        image,
        SubnetId=subnet_id,
        PrivateIpAddress="172.31.0.9",
        UserData=PROBE.format(gateway="172.31.0.1", other=default_ip),
    )
    text = wait_console(ec2, mine, "karri-tiny: boot complete")
    assert "lease of 172.31.0.9 obtained from 172.31.0.1" in text  # its VPC's dnsmasq
    assert f"karri-tiny: instance {mine} boot 1" in text  # its VPC's metadata service
    assert "karri-test: gateway arp 0" in text  # its subnet's bridge answers
    assert "karri-test: other-vpc arp 1" in text  # the default VPC's guest is not there
    (instance,) = ec2.describe_instances(InstanceIds=[mine])["Reservations"][0]["Instances"]
    assert instance["VpcId"] == vpc_id and instance["SubnetId"] == subnet_id

    # another subnet of the VPC reaches it through the implicit local route (the default
    # group admits its members)
    second = ec2.create_subnet(VpcId=vpc_id, CidrBlock="172.31.1.0/28")["Subnet"]["SubnetId"]
    neighbour = run(ec2, image, SubnetId=second, UserData=PING.format(peer="172.31.0.9"))
    text = wait_console(ec2, neighbour, "karri-tiny: boot complete")
    assert "lease of 172.31.1.4 obtained from 172.31.1.1" in text
    assert "karri-test: cross-subnet ping 0" in text
    ec2.terminate_instances(InstanceIds=[in_default, mine, neighbour])


def test_a_public_address_leads_in_only_with_a_route_to_an_attached_gateway(
    clouds: dict[str, Karri], cloud: Karri
) -> None:
    ec2 = cloud.client("ec2")
    image = tiny_image(cloud, ec2)
    vpc_id = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.8.0.0/24")["Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
    (group,) = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
        "SecurityGroups"
    ]
    ec2.authorize_security_group_ingress(
        GroupId=group["GroupId"], IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="0.0.0.0/0"
    )
    instance_id = run(ec2, image, SubnetId=subnet_id)
    wait_console(ec2, instance_id, "karri-tiny: boot complete")
    (instance,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"]
    public_ip = instance["PublicIpAddress"]  # AWS gives it, though nothing routes to it
    assert ssh_banner(public_ip) is None

    gateway_id = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    assert ssh_banner(public_ip) is None  # attached, but no route yet
    (main,) = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
        "RouteTables"
    ]
    route = {"RouteTableId": main["RouteTableId"], "DestinationCidrBlock": "0.0.0.0/0"}
    ec2.create_route(GatewayId=gateway_id, **route)
    banner = wait_for("the SSH banner", lambda: ssh_banner(public_ip), timeout=60)
    assert banner.startswith(b"SSH-")

    # the kernel keeps it with no karri running, and a restarted karri adopts it
    cloud.process.send_signal(signal.SIGKILL)
    cloud.process.wait()
    assert wait_for("the SSH banner", lambda: ssh_banner(public_ip), timeout=60)
    clouds["karri"] = restarted = start_karri(cloud.data_dir)
    ec2 = restarted.client("ec2")
    wait_state(ec2, instance_id, "running")
    assert wait_for("the SSH banner", lambda: ssh_banner(public_ip), timeout=60)

    ec2.delete_route(**route)
    assert ssh_banner(public_ip) is None
    ec2.terminate_instances(InstanceIds=[instance_id])
