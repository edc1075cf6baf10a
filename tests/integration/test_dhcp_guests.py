"""A real guest (TCG) of a VPC with a DHCP option set of the account's own (issue 16):
its lease carries the set's DNS server and domain name, which udhcpc writes to the
guest's /etc/resolv.conf, and AmazonProvidedDNS is the VPC's resolver, which answers for
the VPC's private names (both ways) while the VPC has DNS support. Another set associated
while the guest runs reaches it when it renews its lease (karri's shortest, 120 s: at
60 s)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from karri.node.netns import namespace_name
from tests.conftest import Karri, start_karri
from tests.integration.guests import end_cloud, tiny_image, wait_console

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")

RESOLV = """#!/bin/sh
sed 's/^/karri-test: resolv /' /etc/resolv.conf
md=http://169.254.169.254/latest/meta-data
name=$(timeout 5 wget -q -O - $md/local-hostname)
ip=$(timeout 5 wget -q -O - $md/local-ipv4)
echo "karri-test: name $name $ip"
timeout 10 nslookup "$name" 169.254.169.253 | sed 's/^/karri-test: dns-a /'
timeout 10 nslookup "$ip" 10.50.0.2 | sed 's/^/karri-test: dns-ptr /'
(while sleep 5; do
    sed 's/^/karri-test: now /' /etc/resolv.conf | grep search
done) </dev/null >/dev/console 2>&1 &
"""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("dhcp-guests") / "data", "--dhcp-lease", "120")
    try:
        yield karri
    finally:
        end_cloud(karri)


def test_a_guest_leases_its_vpcs_dhcp_options(cloud: Karri) -> None:
    ec2 = cloud.client("ec2")
    image = tiny_image(cloud, ec2)
    vpc_id = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.50.0.0/24")["Subnet"]["SubnetId"]
    dopt = ec2.create_dhcp_options(
        DhcpConfigurations=[
            {"Key": "domain-name", "Values": ["corp.example"]},
            {"Key": "domain-name-servers", "Values": ["10.50.0.2", "AmazonProvidedDNS"]},
        ]
    )["DhcpOptions"]["DhcpOptionsId"]
    ec2.associate_dhcp_options(DhcpOptionsId=dopt, VpcId=vpc_id)
    instance_id = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t1.micro", SubnetId=subnet_id,
        UserData=RESOLV,
    )["Instances"][0]["InstanceId"]  # fmt: skip
    text = wait_console(ec2, instance_id, "karri-tiny: boot complete")
    resolv = [line for line in text.splitlines() if line.startswith("karri-test: resolv")]
    assert [line.strip() for line in resolv] == [  # AmazonProvidedDNS: the VPC's 10.50.0.2
        "karri-test: resolv search corp.example",
        "karri-test: resolv nameserver 10.50.0.2",
    ]
    described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]
    ip = described["Instances"][0]["PrivateIpAddress"]
    name = described["Instances"][0]["PrivateDnsName"]
    assert f"karri-test: name {name} {ip}" in text
    answers = [line.strip() for line in text.splitlines() if line.startswith("karri-test: dns")]
    assert f"karri-test: dns-a Address: {ip}" in answers, answers
    assert any(line.endswith(f"name = {name}") for line in answers), "\n".join(answers)

    # DNS support off: nothing answers; on again: it does (checked from the namespace)
    namespace = namespace_name(cloud.data_dir, vpc_id)

    def lookup(server: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", namespace, "busybox", "nslookup", name, server],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": False})
    assert lookup("169.254.169.253").returncode != 0
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    found = lookup("10.50.0.2")
    assert found.returncode == 0 and f"Address: {ip}" in found.stdout, found.stdout
    assert lookup("169.254.169.253").returncode == 0

    # a new set, associated while the guest runs: its next renewal brings it
    renewed = ec2.create_dhcp_options(
        DhcpConfigurations=[
            {"Key": "domain-name", "Values": ["renewed.example"]},
            {"Key": "domain-name-servers", "Values": ["AmazonProvidedDNS"]},
        ]
    )["DhcpOptions"]["DhcpOptionsId"]
    ec2.associate_dhcp_options(DhcpOptionsId=renewed, VpcId=vpc_id)
    wait_console(ec2, instance_id, "karri-test: now search renewed.example", timeout=240)
    ec2.terminate_instances(InstanceIds=[instance_id])
