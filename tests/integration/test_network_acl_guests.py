"""A network ACL in front of a real guest (TCG) through a real `karri up` (issue 16): the
subnet's ACL entry denying tcp/22 closes SSH on the guest's public address although its
security group allows it (ACLs are applied at the subnet's boundary, before the groups);
the entry stays in force while no karri runs and after a restart, and deleting it opens
the port again."""

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


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Karri]]:
    holder = {"karri": start_karri(tmp_path_factory.mktemp("acl-guests") / "data")}
    try:
        yield holder
    finally:
        end_cloud(holder["karri"])


def opens(address: str) -> bool:
    return (ssh_banner(address) or b"").startswith(b"SSH-")


def test_a_deny_entry_closes_a_port_the_group_allows(clouds: dict[str, Karri]) -> None:
    cloud = clouds["karri"]
    ec2: Any = cloud.client("ec2")
    image = tiny_image(cloud, ec2)
    vpc_id = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.9.0.0/24")["Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
    vpc_filter = [{"Name": "vpc-id", "Values": [vpc_id]}]
    (group,) = ec2.describe_security_groups(Filters=vpc_filter)["SecurityGroups"]
    ec2.authorize_security_group_ingress(
        GroupId=group["GroupId"], IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="0.0.0.0/0"
    )
    gateway_id = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    (table,) = ec2.describe_route_tables(Filters=vpc_filter)["RouteTables"]
    ec2.create_route(
        RouteTableId=table["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway_id
    )
    (acl,) = ec2.describe_network_acls(Filters=vpc_filter)["NetworkAcls"]
    instance_id = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t1.micro", SubnetId=subnet_id
    )["Instances"][0]["InstanceId"]
    wait_console(ec2, instance_id, "karri-tiny: boot complete")
    (instance,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"]
    public_ip = instance["PublicIpAddress"]
    wait_for("the SSH banner", lambda: opens(public_ip) or None, timeout=60)

    entry = {"NetworkAclId": acl["NetworkAclId"], "RuleNumber": 50, "Egress": False}
    ec2.create_network_acl_entry(
        **entry, Protocol="6", RuleAction="deny", CidrBlock="0.0.0.0/0",
        PortRange={"From": 22, "To": 22},
    )  # fmt: skip
    assert ssh_banner(public_ip) is None  # in force when the call returned

    # the kernel keeps it with no karri running, and a restarted karri adopts it
    cloud.process.send_signal(signal.SIGKILL)
    cloud.process.wait()
    assert ssh_banner(public_ip) is None
    clouds["karri"] = restarted = start_karri(cloud.data_dir)
    ec2 = restarted.client("ec2")
    wait_state(ec2, instance_id, "running")
    assert ssh_banner(public_ip) is None

    ec2.delete_network_acl_entry(**entry)
    assert opens(public_ip)
    ec2.terminate_instances(InstanceIds=[instance_id])
