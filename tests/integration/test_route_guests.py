"""Real guests (TCG) behind a route to an instance (issue 16): a private subnet whose
route table sends 0.0.0.0/0 to an instance in another subnet (a NAT instance), and
SourceDestCheck.

The tiny image has no iptables/nft (nor the kernel's NAT modules in its initramfs), so
the "NAT instance" does not masquerade: it owns 192.0.2.1 (beyond the VPC) on its ``lo``
and answers pings to it. The private guest's pings to 192.0.2.1 reach it only through
the route, and only while the instance's SourceDestCheck is off (with it on, it neither
receives a packet for an address not its own nor answers from one). Terminating the
instance leaves the route a ``blackhole`` (DescribeRouteTables; a stopped one's is too,
tests/unit/test_interface_routes.py: the tiny image is instance-store). A ping from an address
the private guest does not own gets no answer, the same ping from its own one does. An
elastic IP associated with the instance's secondary address leads to it (SSH's banner),
also with karri SIGKILLed and after its restart (the probe through the instance never
failed meanwhile), until it is disassociated. The
full masquerade path is shown at node level (tests/node/test_interface_routes.py
forwards through a namespace standing in for the instance)."""

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

BEYOND = "192.0.2.1"
NAT_IP, PRIVATE_IP = "10.20.0.10", "10.20.1.10"
SECONDARY = "10.20.0.11"
APPLIANCE = f"""#!/bin/sh
ip address add {BEYOND}/32 dev lo
ip address add {SECONDARY}/24 dev eth0
echo "karri-test: appliance ready"
"""
# each change of whether 192.0.2.1 answers is printed; then a spoofed and a true source
PROBE = f"""#!/bin/sh
ip address add 10.20.1.99/32 dev eth0
r=1; ping -c 2 -W 1 -I 10.20.1.99 {NAT_IP} >/dev/null 2>&1 && r=0
echo "karri-test: spoofed $r"
r=1; ping -c 2 -W 1 -I {PRIVATE_IP} {NAT_IP} >/dev/null 2>&1 && r=0
echo "karri-test: own $r"
(last=x; while true; do
  s=1; ping -c 1 -W 1 {BEYOND} >/dev/null 2>&1 && s=0
  [ "$s" != "$last" ] && echo "karri-test: beyond $s"; last=$s; sleep 1
done) &
"""


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Karri]]:
    """The module's cloud, under ``karri`` (the test restarts it and puts the new one there)."""
    holder = {"karri": start_karri(tmp_path_factory.mktemp("route-guests") / "data")}
    try:
        yield holder
    finally:
        end_cloud(holder["karri"])


def run(ec2: Any, image: str, subnet_id: str, ip: str, user_data: str) -> str:
    return ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t1.micro", SubnetId=subnet_id,
        PrivateIpAddress=ip, UserData=user_data,
    )["Instances"][0]["InstanceId"]  # fmt: skip


def printed(ec2: Any, guest: str, line: str, times: int) -> None:
    """Wait until the guest's console shows ``line`` ``times`` times."""
    wait_for(
        f"{line!r} {times} times",
        lambda: (
            ec2.get_console_output(InstanceId=guest).get("Output", "").count(line) >= times or None
        ),
        timeout=60,
    )


def route_state(ec2: Any, table_id: str) -> str:
    (table,) = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"]
    return next(r["State"] for r in table["Routes"] if r["DestinationCidrBlock"] == "0.0.0.0/0")


def test_a_private_subnet_routed_through_an_instance(clouds: dict[str, Karri]) -> None:
    cloud = clouds["karri"]
    ec2 = cloud.client("ec2")
    image = tiny_image(cloud, ec2)
    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    public = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.0.0/24")["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    nat = run(ec2, image, public, NAT_IP, APPLIANCE)
    wait_console(ec2, nat, "karri-test: appliance ready")

    table_id = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table_id, SubnetId=private)
    ec2.create_route(RouteTableId=table_id, DestinationCidrBlock="0.0.0.0/0", InstanceId=nat)
    assert route_state(ec2, table_id) == "active"

    guest = run(ec2, image, private, PRIVATE_IP, PROBE)
    text = wait_console(ec2, guest, "karri-test: beyond 1")  # SourceDestCheck on
    assert "karri-test: spoofed 1" in text  # another source: no answer
    assert "karri-test: own 0" in text  # its own: answered, across the subnets

    ec2.modify_instance_attribute(InstanceId=nat, SourceDestCheck={"Value": False})
    (interface,) = ec2.describe_instances(InstanceIds=[nat])["Reservations"][0]["Instances"][0][
        "NetworkInterfaces"
    ]
    assert interface["SourceDestCheck"] is False
    wait_console(ec2, guest, "karri-test: beyond 0", timeout=60)  # through the instance

    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=interface["NetworkInterfaceId"], SourceDestCheck={"Value": True}
    )
    printed(ec2, guest, "karri-test: beyond 1", 2)  # the check back on
    ec2.modify_instance_attribute(InstanceId=nat, SourceDestCheck={"Value": False})
    printed(ec2, guest, "karri-test: beyond 0", 2)  # the check off again

    # an elastic IP on the instance's secondary address leads to it (1:1)
    gateway_id = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    (main,) = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"]
    ec2.create_route(
        RouteTableId=main["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway_id
    )
    (group,) = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
        "SecurityGroups"
    ]
    ec2.authorize_security_group_ingress(
        GroupId=group["GroupId"], IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="0.0.0.0/0"
    )
    eni_id = interface["NetworkInterfaceId"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=[SECONDARY])
    address = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(
        AllocationId=address["AllocationId"], NetworkInterfaceId=eni_id, PrivateIpAddress=SECONDARY
    )
    banner = wait_for("SSH on the elastic IP", lambda: ssh_banner(address["PublicIp"]), timeout=60)
    assert banner.startswith(b"SSH-")

    # with karri SIGKILLed the kernel keeps it all, and a restarted karri adopts it
    cloud.process.send_signal(signal.SIGKILL)
    cloud.process.wait()
    assert ssh_banner(address["PublicIp"]) is not None
    clouds["karri"] = restarted = start_karri(cloud.data_dir)
    ec2 = restarted.client("ec2")
    wait_state(ec2, nat, "running")
    assert wait_for("SSH after the restart", lambda: ssh_banner(address["PublicIp"]), timeout=60)
    output = wait_console(ec2, guest, "karri-test: beyond 0", timeout=60)
    assert output.count("karri-test: beyond 1") == 2  # never cut off meanwhile
    ec2.disassociate_address(AssociationId=ec2.describe_addresses(
        AllocationIds=[address["AllocationId"]])["Addresses"][0]["AssociationId"])  # fmt: skip
    assert ssh_banner(address["PublicIp"]) is None

    ec2.terminate_instances(InstanceIds=[nat])  # (the tiny image is instance-store: no stop)
    wait_state(ec2, nat, "terminated")
    assert route_state(ec2, table_id) == "blackhole"
    printed(ec2, guest, "karri-test: beyond 1", 3)  # the blackhole
    ec2.terminate_instances(InstanceIds=[guest])
