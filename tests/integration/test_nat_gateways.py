"""NAT gateways (issue 16) through boto3 and the AWS CLI against a real `karri up` (fake
node driver: the model and what the node is told; tests/node/test_nat_gateways.py and
test_nat_gateway_guests.py show the node translating): states as the node reports them,
the elastic IP and the interface, routes to a gateway and their blackhole, AWS's errors
and failures, filters and pagination, account isolation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Karri, start_karri, stop_karri
from tests.integration.ec2_wire import error_of, unique
from tests.integration.guests import tiny_image


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("nat") / "data", "--node-driver", "fake")
    yield karri
    stop_karri(karri)


def fresh_ec2(cloud: Karri) -> Any:
    return cloud.client("ec2", cloud.create_account(unique("nat").lower()))


@pytest.fixture
def ec2(cloud: Karri) -> Any:
    return fresh_ec2(cloud)


def public_vpc(ec2: Any) -> tuple[str, str, str, str]:
    """A VPC with an attached internet gateway, a public subnet (0/0 → the gateway) and a
    private one: (vpc, public subnet, private subnet, private subnet's route table)."""
    vpc_id = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    public = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.40.2.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    main = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"][0]["RouteTableId"]
    ec2.create_route(RouteTableId=main, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=private)
    return vpc_id, public, private, table


def wait_state(ec2: Any, gateway_id: str, state: str) -> dict[str, Any]:
    waiter = {"available": "nat_gateway_available", "deleted": "nat_gateway_deleted"}[state]
    ec2.get_waiter(waiter).wait(
        NatGatewayIds=[gateway_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300}
    )
    return ec2.describe_nat_gateways(NatGatewayIds=[gateway_id])["NatGateways"][0]


def free_count(ec2: Any, subnet_id: str) -> int:
    return ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["AvailableIpAddressCount"]


def test_lifecycle_address_interface_and_routes(cloud: Karri, ec2: Any) -> None:
    vpc_id, public, _private, table = public_vpc(ec2)
    eip = ec2.allocate_address(Domain="vpc")
    before = free_count(ec2, public)
    created = ec2.create_nat_gateway(
        SubnetId=public,
        AllocationId=eip["AllocationId"],
        ClientToken="tok-1",
        TagSpecifications=[{"ResourceType": "natgateway", "Tags": [{"Key": "k", "Value": "v"}]}],
    )
    gateway = created["NatGateway"]
    gateway_id = gateway["NatGatewayId"]
    assert gateway_id.startswith("nat-") and gateway["State"] == "pending"
    assert created["ClientToken"] == "tok-1"
    assert gateway["VpcId"] == vpc_id and gateway["SubnetId"] == public
    assert gateway["ConnectivityType"] == "public" and gateway["Tags"] == [
        {"Key": "k", "Value": "v"}
    ]
    # the same token again: the same gateway
    again = ec2.create_nat_gateway(
        SubnetId=public, AllocationId=eip["AllocationId"], ClientToken="tok-1"
    )
    assert again["NatGateway"]["NatGatewayId"] == gateway_id

    gateway = wait_state(ec2, gateway_id, "available")
    (address,) = gateway["NatGatewayAddresses"]
    assert address["AllocationId"] == eip["AllocationId"] and address["PublicIp"] == eip["PublicIp"]
    assert address["IsPrimary"] is True and address["Status"] == "succeeded"
    assert address["PrivateIp"] == "10.40.1.4"  # the first address past AWS's reserved ones
    eni_id = address["NetworkInterfaceId"]
    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]
    assert eni["InterfaceType"] == "nat_gateway" and eni["PrivateIpAddress"] == "10.40.1.4"
    assert free_count(ec2, public) == before - 1
    held = ec2.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"][0]
    assert held["NetworkInterfaceId"] == eni_id and held["PrivateIpAddress"] == "10.40.1.4"
    assert (
        error_of(ec2.release_address, AllocationId=eip["AllocationId"])[0]
        == "InvalidIPAddress.InUse"
    )
    assert address["AssociationId"] == held["AssociationId"]
    assert error_of(ec2.disassociate_address, AssociationId=held["AssociationId"])[0] == (
        "InvalidIPAddress.InUse"  # only deleting the gateway lets it go
    )
    instance_id = ec2.run_instances(
        ImageId=tiny_image(cloud, ec2), MinCount=1, MaxCount=1, SubnetId=public
    )["Instances"][0]["InstanceId"]
    assert (
        error_of(
            ec2.associate_address,
            AllocationId=eip["AllocationId"],
            InstanceId=instance_id,
            AllowReassociation=True,
        )[0]
        == "Resource.AlreadyAssociated"
    )
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(
        InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300}
    )

    # the private subnet's default route through it
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=gateway_id)
    routes = ec2.describe_route_tables(
        Filters=[{"Name": "route.nat-gateway-id", "Values": [gateway_id]}]
    )["RouteTables"]
    assert [r["RouteTableId"] for r in routes] == [table]
    (route,) = [r for r in routes[0]["Routes"] if r["DestinationCidrBlock"] == "0.0.0.0/0"]
    assert route["NatGatewayId"] == gateway_id and route["State"] == "active"
    assert route["Origin"] == "CreateRoute"
    assert error_of(ec2.delete_subnet, SubnetId=public)[0] == "DependencyViolation"

    assert ec2.delete_nat_gateway(NatGatewayId=gateway_id)["NatGatewayId"] == gateway_id
    gateway = wait_state(ec2, gateway_id, "deleted")
    assert gateway["DeleteTime"] >= gateway["CreateTime"]
    (route,) = [
        r
        for r in ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
        if r["DestinationCidrBlock"] == "0.0.0.0/0"
    ]
    assert route["State"] == "blackhole" and route["NatGatewayId"] == gateway_id
    released = ec2.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"][0]
    assert "NetworkInterfaceId" not in released and "AssociationId" not in released
    assert free_count(ec2, public) == before
    assert error_of(ec2.describe_network_interfaces, NetworkInterfaceIds=[eni_id])[0] == (
        "InvalidNetworkInterfaceID.NotFound"
    )
    ec2.release_address(AllocationId=eip["AllocationId"])
    # deleted, it is still shown, and deleting it again is no error
    assert ec2.delete_nat_gateway(NatGatewayId=gateway_id)["NatGatewayId"] == gateway_id


def test_failures_as_aws_reports_them(ec2: Any) -> None:
    vpc_id = ec2.create_vpc(CidrBlock="10.41.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.41.1.0/24")["Subnet"]["SubnetId"]
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    # no internet gateway attached: failed, as AWS reports it after the call
    gateway = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip)["NatGateway"]
    assert gateway["State"] == "failed" and gateway["FailureCode"] == "Gateway.NotAttached"
    assert gateway["FailureMessage"] == f"Network {vpc_id} has no Internet gateway attached"
    assert free_count(ec2, subnet) == 251  # no address taken
    ec2.release_address(AllocationId=eip)  # nor the elastic IP held

    vpc_id, public, _private, _table = public_vpc(ec2)
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    first = ec2.create_nat_gateway(SubnetId=public, AllocationId=eip)["NatGateway"]
    second = ec2.create_nat_gateway(SubnetId=public, AllocationId=eip)["NatGateway"]
    assert second["State"] == "failed" and second["FailureCode"] == "Resource.AlreadyAssociated"
    assert second["FailureMessage"] == f"Elastic IP address {eip} is already associated"
    listed = ec2.describe_nat_gateways(Filter=[{"Name": "state", "Values": ["failed"]}])
    assert sorted(g["NatGatewayId"] for g in listed["NatGateways"]) == sorted(
        [gateway["NatGatewayId"], second["NatGatewayId"]]
    )
    # a private NAT gateway takes no elastic IP
    private = ec2.create_nat_gateway(SubnetId=public, ConnectivityType="private")["NatGateway"]
    assert private["ConnectivityType"] == "private"
    assert "AllocationId" not in private["NatGatewayAddresses"][0]
    wait_state(ec2, private["NatGatewayId"], "available")
    wait_state(ec2, first["NatGatewayId"], "available")


def test_errors(ec2: Any) -> None:
    _vpc_id, public, _private, table = public_vpc(ec2)
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    assert error_of(ec2.create_nat_gateway, SubnetId="subnet-12345678", AllocationId=eip) == (
        "InvalidSubnetID.NotFound",
        400,
    )
    assert error_of(ec2.create_nat_gateway, SubnetId=public, AllocationId="eipalloc-12345678") == (
        "InvalidAllocationID.NotFound",
        400,
    )
    assert error_of(ec2.create_nat_gateway, SubnetId=public)[0] == "MissingParameter"
    assert (
        error_of(
            ec2.create_nat_gateway, SubnetId=public, AllocationId=eip, ConnectivityType="private"
        )[0]
        == "InvalidParameterCombination"
    )
    assert (
        error_of(
            ec2.create_nat_gateway, SubnetId=public, AllocationId=eip, ConnectivityType="bogus"
        )[0]
        == "InvalidParameterValue"
    )
    assert error_of(ec2.delete_nat_gateway, NatGatewayId="nat-0123456789abcdef0")[0] == (
        "NatGatewayNotFound"
    )
    assert error_of(ec2.describe_nat_gateways, NatGatewayIds=["nat-0123456789abcdef0"])[0] == (
        "NatGatewayNotFound"
    )
    assert error_of(ec2.describe_nat_gateways, NatGatewayIds=["bogus"])[0] == "NatGatewayMalformed"
    assert error_of(
        ec2.create_route, RouteTableId=table, DestinationCidrBlock="0.0.0.0/0",
        NatGatewayId="nat-0123456789abcdef0",
    )[0] == "NatGatewayNotFound"  # fmt: skip
    assert (
        error_of(ec2.describe_nat_gateways, Filter=[{"Name": "nonsense", "Values": ["x"]}])[0]
        == "InvalidParameterValue"
    )
    # five per zone (AWS's quota): the sixth is refused
    for _ in range(5):
        ec2.create_nat_gateway(SubnetId=public, ConnectivityType="private")
    assert error_of(ec2.create_nat_gateway, SubnetId=public, ConnectivityType="private")[0] == (
        "NatGatewayLimitExceeded"
    )


def test_filters_and_pages(ec2: Any) -> None:
    vpc_id, public, private, _table = public_vpc(ec2)
    ids = sorted(
        ec2.create_nat_gateway(
            SubnetId=subnet,
            ConnectivityType="private",
            TagSpecifications=[
                {"ResourceType": "natgateway", "Tags": [{"Key": "tier", "Value": tier}]}
            ],
        )["NatGateway"]["NatGatewayId"]
        for subnet, tier in ((public, "a"), (private, "b"), (private, "c"))
    )

    def listed(**kwargs: Any) -> list[str]:
        return sorted(g["NatGatewayId"] for g in ec2.describe_nat_gateways(**kwargs)["NatGateways"])

    assert listed() == ids
    assert listed(Filter=[{"Name": "vpc-id", "Values": [vpc_id]}]) == ids
    assert len(listed(Filter=[{"Name": "subnet-id", "Values": [private]}])) == 2
    assert len(listed(Filter=[{"Name": "tag:tier", "Values": ["a", "c"]}])) == 2
    assert listed(Filter=[{"Name": "nat-gateway-id", "Values": [ids[1]]}]) == [ids[1]]
    pages = ec2.get_paginator("describe_nat_gateways").paginate(PaginationConfig={"PageSize": 5})
    assert sorted(g["NatGatewayId"] for p in pages for g in p["NatGateways"]) == ids
    first = ec2.describe_nat_gateways(MaxResults=5)
    assert "NextToken" not in first  # three fit in one page of five


def test_accounts_are_isolated(cloud: Karri, ec2: Any) -> None:
    _vpc_id, public, _private, _table = public_vpc(ec2)
    gateway_id = ec2.create_nat_gateway(SubnetId=public, ConnectivityType="private")["NatGateway"][
        "NatGatewayId"
    ]
    other = fresh_ec2(cloud)
    assert other.describe_nat_gateways()["NatGateways"] == []
    assert error_of(other.describe_nat_gateways, NatGatewayIds=[gateway_id])[0] == (
        "NatGatewayNotFound"
    )
    assert error_of(other.delete_nat_gateway, NatGatewayId=gateway_id)[0] == "NatGatewayNotFound"
    assert error_of(other.create_nat_gateway, SubnetId=public, ConnectivityType="private")[0] == (
        "InvalidSubnetID.NotFound"
    )
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    _v, other_public, _p, other_table = public_vpc(other)
    assert error_of(other.create_nat_gateway, SubnetId=other_public, AllocationId=eip)[0] == (
        "InvalidAllocationID.NotFound"
    )
    assert error_of(
        other.create_route, RouteTableId=other_table, DestinationCidrBlock="0.0.0.0/0",
        NatGatewayId=gateway_id,
    )[0] == "NatGatewayNotFound"  # fmt: skip
    assert ec2.describe_nat_gateways(NatGatewayIds=[gateway_id])["NatGateways"][0]["State"] in (
        "pending",
        "available",
    )


def test_the_cli(cloud: Karri) -> None:
    creds = cloud.create_account(unique("natcli").lower())
    ec2 = cloud.client("ec2", creds)
    _vpc_id, public, _private, table = public_vpc(ec2)
    eip = cloud.aws("ec2", "allocate-address", "--domain", "vpc", creds=creds)["AllocationId"]
    out = cloud.aws(
        "ec2", "create-nat-gateway", "--subnet-id", public, "--allocation-id", eip, creds=creds
    )
    gateway_id = out["NatGateway"]["NatGatewayId"]
    cloud.aws("ec2", "wait", "nat-gateway-available", "--nat-gateway-ids", gateway_id, creds=creds)
    cloud.aws(
        "ec2", "create-route", "--route-table-id", table, "--destination-cidr-block",
        "0.0.0.0/0", "--nat-gateway-id", gateway_id, creds=creds,
    )  # fmt: skip
    described = cloud.aws(
        "ec2", "describe-nat-gateways", "--filter", f"Name=nat-gateway-id,Values={gateway_id}",
        creds=creds,
    )  # fmt: skip
    assert described["NatGateways"][0]["State"] == "available"
    assert described["NatGateways"][0]["NatGatewayAddresses"][0]["AllocationId"] == eip
    deleted = cloud.aws("ec2", "delete-nat-gateway", "--nat-gateway-id", gateway_id, creds=creds)
    assert deleted["NatGatewayId"] == gateway_id
