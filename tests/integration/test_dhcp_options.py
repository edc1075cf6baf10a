"""DHCP option sets (issue 16) through boto3 against a real `karri up` (fake node driver:
the model only; tests/integration/test_network_acl_guests.py shows a guest's lease):
CreateDhcpOptions and AWS's checks, AssociateDhcpOptions (``default`` too),
DeleteDhcpOptions while in use, account isolation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Karri, start_karri, stop_karri
from tests.integration.ec2_wire import error_of, unique


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("dopt") / "data", "--node-driver", "fake")
    yield karri
    stop_karri(karri)


def fresh_ec2(cloud: Karri) -> Any:
    return cloud.client("ec2", cloud.create_account(unique("dopt").lower()))


def config(key: str, *values: str) -> dict[str, Any]:
    return {"Key": key, "Values": list(values)}


def test_create_associate_and_delete(cloud: Karri) -> None:
    ec2 = fresh_ec2(cloud)
    made = ec2.create_dhcp_options(
        DhcpConfigurations=[
            config("domain-name-servers", "10.0.0.2", "AmazonProvidedDNS"),
            config("domain-name", "corp.example"),
            config("ntp-servers", "10.0.0.3"),
        ],
        TagSpecifications=[{"ResourceType": "dhcp-options", "Tags": [{"Key": "k", "Value": "v"}]}],
    )["DhcpOptions"]
    dopt = made["DhcpOptionsId"]
    assert made["DhcpConfigurations"] == [
        {"Key": "domain-name", "Values": [{"Value": "corp.example"}]},
        {"Key": "domain-name-servers", "Values": [{"Value": "10.0.0.2"},
                                                  {"Value": "AmazonProvidedDNS"}]},
        {"Key": "ntp-servers", "Values": [{"Value": "10.0.0.3"}]},
    ]  # fmt: skip
    assert made["Tags"] == [{"Key": "k", "Value": "v"}]
    vpc_id = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    ec2.associate_dhcp_options(DhcpOptionsId=dopt, VpcId=vpc_id)
    assert ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["DhcpOptionsId"] == dopt
    found = ec2.describe_vpcs(Filters=[{"Name": "dhcp-options-id", "Values": [dopt]}])["Vpcs"]
    assert [v["VpcId"] for v in found] == [vpc_id]
    assert error_of(ec2.delete_dhcp_options, DhcpOptionsId=dopt)[0] == "DependencyViolation"
    ec2.associate_dhcp_options(DhcpOptionsId="default", VpcId=vpc_id)
    assert ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["DhcpOptionsId"] == "default"
    ec2.delete_dhcp_options(DhcpOptionsId=dopt)
    assert error_of(ec2.describe_dhcp_options, DhcpOptionsIds=[dopt])[0] == (
        "InvalidDhcpOptionID.NotFound"
    )
    assert error_of(ec2.associate_dhcp_options, DhcpOptionsId=dopt, VpcId=vpc_id)[0] == (
        "InvalidDhcpOptionID.NotFound"
    )
    ec2.delete_vpc(VpcId=vpc_id)


@pytest.mark.parametrize(
    "configurations",
    [
        [config("domain-name-servers", "not-an-ip")],
        [config("domain-name-servers", *(f"10.0.0.{i}" for i in range(1, 6)))],
        [config("ntp-servers", "AmazonProvidedDNS")],
        [config("netbios-node-type", "3")],
        [config("no-such-option", "x")],
        [config("domain-name", "a..b")],
    ],
)
def test_aws_checks_of_a_set(cloud: Karri, configurations: list) -> None:
    ec2 = fresh_ec2(cloud)
    assert error_of(ec2.create_dhcp_options, DhcpConfigurations=configurations)[0] == (
        "InvalidParameterValue"
    )


def test_another_account_sees_and_touches_nothing(cloud: Karri) -> None:
    ec2, other = fresh_ec2(cloud), fresh_ec2(cloud)
    dopt = ec2.create_dhcp_options(DhcpConfigurations=[config("domain-name", "mine.example")])[
        "DhcpOptions"
    ]["DhcpOptionsId"]
    assert error_of(other.describe_dhcp_options, DhcpOptionsIds=[dopt])[0] == (
        "InvalidDhcpOptionID.NotFound"
    )
    assert error_of(other.delete_dhcp_options, DhcpOptionsId=dopt)[0] == (
        "InvalidDhcpOptionID.NotFound"
    )
    theirs = other.create_vpc(CidrBlock="10.41.0.0/16")["Vpc"]["VpcId"]
    assert error_of(other.associate_dhcp_options, DhcpOptionsId=dopt, VpcId=theirs)[0] == (
        "InvalidDhcpOptionID.NotFound"
    )
    mine = ec2.create_vpc(CidrBlock="10.41.0.0/16")["Vpc"]["VpcId"]
    assert error_of(other.associate_dhcp_options, DhcpOptionsId="default", VpcId=mine)[0] == (
        "InvalidVpcID.NotFound"
    )
