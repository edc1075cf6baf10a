"""VPCs and subnets an account makes (issue 16) through boto3 against a real `karri up`
(fake node driver: the model only; tests/integration/test_vpc_guests.py boots guests):
CreateVpc and its parts, DeleteVpc's dependencies, the attributes, the VPC quota,
CreateDefaultVpc, subnets and their ranges, CreateDefaultSubnet, account isolation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Karri, start_karri, stop_karri
from tests.integration.ec2_wire import error_of, unique
from tests.integration.guests import tiny_image, wait_for, wait_state


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("vpcs-own") / "data", "--node-driver", "fake")
    yield karri
    stop_karri(karri)


def fresh_ec2(cloud: Karri) -> Any:
    """An EC2 client of a new account (each has room for 4 VPCs of its own)."""
    return cloud.client("ec2", cloud.create_account(unique("vpc").lower()))


@pytest.fixture
def ec2(cloud: Karri) -> Any:
    return fresh_ec2(cloud)


def parts(ec2: Any, vpc_id: str) -> dict[str, Any]:
    vpc_filter = [{"Name": "vpc-id", "Values": [vpc_id]}]
    return {
        "tables": ec2.describe_route_tables(Filters=vpc_filter)["RouteTables"],
        "acls": ec2.describe_network_acls(Filters=vpc_filter)["NetworkAcls"],
        "groups": ec2.describe_security_groups(Filters=vpc_filter)["SecurityGroups"],
        "subnets": ec2.describe_subnets(Filters=vpc_filter)["Subnets"],
    }


def test_create_vpc_with_its_parts(ec2: Any) -> None:
    vpc = ec2.create_vpc(
        CidrBlock="10.20.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "mine"}]}],
    )["Vpc"]
    vpc_id = vpc["VpcId"]
    assert vpc["CidrBlock"] == "10.20.0.0/16" and vpc["IsDefault"] is False
    assert vpc["InstanceTenancy"] == "default" and vpc["State"] == "available"
    assert vpc["Tags"] == [{"Key": "Name", "Value": "mine"}]
    default = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    assert vpc["DhcpOptionsId"] == default["DhcpOptionsId"]
    assert ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"] == [vpc]
    found = parts(ec2, vpc_id)
    (table,) = found["tables"]
    assert table["Routes"] == [
        {
            "DestinationCidrBlock": "10.20.0.0/16",
            "GatewayId": "local",
            "Origin": "CreateRouteTable",
            "State": "active",
        }
    ]
    (main,) = table["Associations"]
    assert main["Main"] is True and "SubnetId" not in main
    (acl,) = found["acls"]
    assert acl["IsDefault"] is True and len(acl["Entries"]) == 4 and acl["Associations"] == []
    (group,) = found["groups"]
    assert group["GroupName"] == "default"
    assert group["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"] == group["GroupId"]
    assert found["subnets"] == []
    for name, value in (("enableDnsSupport", True), ("enableDnsHostnames", False)):
        answer = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=name)
        member = name[0].upper() + name[1:]
        assert answer[member] == {"Value": value}


def test_vpc_ranges_and_options(ec2: Any) -> None:
    for cidr in ("10.0.0.0/15", "10.0.0.0/29", "127.0.0.0/16", "169.254.0.0/16", "224.0.0.0/16"):
        assert error_of(ec2.create_vpc, CidrBlock=cidr) == ("InvalidVpc.Range", 400), cidr
    for cidr in ("10.0.0.1/16", "nonsense", "10.0.0.0", "10.0.0.0/33"):
        assert error_of(ec2.create_vpc, CidrBlock=cidr) == ("InvalidParameterValue", 400), cidr
    assert error_of(ec2.create_vpc) == ("MissingParameter", 400)
    assert error_of(ec2.create_vpc, CidrBlock="10.1.0.0/16", AmazonProvidedIpv6CidrBlock=True) == (
        "InvalidParameterValue",
        400,
    )
    assert error_of(ec2.create_vpc, CidrBlock="10.1.0.0/16", InstanceTenancy="shared")[0] == (
        "InvalidParameterValue"
    )
    small = ec2.create_vpc(CidrBlock="192.168.7.16/28", InstanceTenancy="dedicated")["Vpc"]
    assert small["CidrBlock"] == "192.168.7.16/28" and small["InstanceTenancy"] == "dedicated"
    assert error_of(
        ec2.create_vpc,
        CidrBlock="10.1.0.0/16",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "a", "Value": "b"}]}],
    ) == ("InvalidParameterValue", 400)
    assert error_of(ec2.create_vpc, CidrBlock="10.1.0.0/16", DryRun=True) == (
        "DryRunOperation",
        412,
    )
    assert len(ec2.describe_vpcs()["Vpcs"]) == 2  # the default one and the /28; nothing half made


def test_the_vpc_quota_counts_the_default_vpc(ec2: Any) -> None:
    for n in range(4):
        ec2.create_vpc(CidrBlock=f"10.{n}.0.0/16")
    assert error_of(ec2.create_vpc, CidrBlock="10.9.0.0/16") == ("VpcLimitExceeded", 400)
    assert len(ec2.describe_vpcs()["Vpcs"]) == 5


def test_modify_vpc_attribute_one_at_a_time(ec2: Any) -> None:
    vpc_id = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": False})
    attribute = ec2.describe_vpc_attribute
    assert attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"] == {
        "Value": True
    }
    assert attribute(VpcId=vpc_id, Attribute="enableDnsSupport")["EnableDnsSupport"] == {
        "Value": False
    }
    both = {"EnableDnsSupport": {"Value": True}, "EnableDnsHostnames": {"Value": True}}
    assert error_of(ec2.modify_vpc_attribute, VpcId=vpc_id, **both) == (
        "InvalidParameterCombination",
        400,
    )
    assert error_of(ec2.modify_vpc_attribute, VpcId=vpc_id)[0] == "MissingParameter"
    assert error_of(
        ec2.modify_vpc_attribute, VpcId="vpc-12345678", EnableDnsSupport={"Value": True}
    ) == ("InvalidVpcID.NotFound", 400)
    assert error_of(
        ec2.modify_vpc_attribute, VpcId="vpc-nope", EnableDnsSupport={"Value": True}
    ) == ("InvalidVpcID.Malformed", 400)


def test_delete_vpc_waits_for_what_is_in_it(ec2: Any) -> None:
    vpc_id = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
    assert error_of(ec2.delete_vpc, VpcId=vpc_id) == ("DependencyViolation", 400)
    ec2.delete_subnet(SubnetId=subnet_id)
    group_id = ec2.create_security_group(GroupName="web", Description="w", VpcId=vpc_id)["GroupId"]
    assert error_of(ec2.delete_vpc, VpcId=vpc_id) == ("DependencyViolation", 400)
    ec2.delete_security_group(GroupId=group_id)
    found = parts(ec2, vpc_id)
    ec2.delete_vpc(VpcId=vpc_id)
    assert error_of(ec2.describe_vpcs, VpcIds=[vpc_id]) == ("InvalidVpcID.NotFound", 400)
    assert error_of(ec2.delete_vpc, VpcId=vpc_id) == ("InvalidVpcID.NotFound", 400)
    table, acl, group = found["tables"][0], found["acls"][0], found["groups"][0]
    assert error_of(ec2.describe_route_tables, RouteTableIds=[table["RouteTableId"]])[0] == (
        "InvalidRouteTableID.NotFound"
    )
    assert error_of(ec2.describe_network_acls, NetworkAclIds=[acl["NetworkAclId"]])[0] == (
        "InvalidNetworkAclID.NotFound"
    )
    assert error_of(ec2.describe_security_groups, GroupIds=[group["GroupId"]])[0] == (
        "InvalidGroup.NotFound"
    )


def test_the_default_vpc_cannot_go_while_its_gateway_is_attached(ec2: Any) -> None:
    default = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    assert error_of(ec2.delete_vpc, VpcId=default["VpcId"]) == ("DependencyViolation", 400)
    assert error_of(ec2.create_default_vpc) == ("DefaultVpcAlreadyExists", 400)


def test_subnets_inside_their_vpc(ec2: Any) -> None:
    vpc_id = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]
    subnet = ec2.create_subnet(
        VpcId=vpc_id,
        CidrBlock="10.50.0.0/24",
        AvailabilityZoneId=zone["ZoneId"],
        TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "tier", "Value": "a"}]}],
    )["Subnet"]
    assert subnet["AvailabilityZone"] == zone["ZoneName"]
    assert subnet["AvailableIpAddressCount"] == 256 - 5
    assert subnet["DefaultForAz"] is False and subnet["MapPublicIpOnLaunch"] is False
    assert subnet["Tags"] == [{"Key": "tier", "Value": "a"}]
    assert ec2.describe_subnets(SubnetIds=[subnet["SubnetId"]])["Subnets"] == [subnet]
    tiny = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.50.1.0/28")["Subnet"]
    assert tiny["AvailableIpAddressCount"] == 11
    for cidr, code in (
        ("10.50.0.128/25", "InvalidSubnet.Conflict"),
        ("10.50.0.0/16", "InvalidSubnet.Conflict"),
        ("10.51.0.0/24", "InvalidSubnet.Range"),
        ("10.50.2.0/29", "InvalidSubnet.Range"),
        ("10.50.2.1/24", "InvalidParameterValue"),
    ):
        assert error_of(ec2.create_subnet, VpcId=vpc_id, CidrBlock=cidr) == (code, 400), cidr
    assert error_of(
        ec2.create_subnet, VpcId=vpc_id, CidrBlock="10.50.3.0/24", AvailabilityZone="mars-1a"
    ) == ("InvalidParameterValue", 400)
    assert error_of(ec2.create_subnet, VpcId="vpc-12345678", CidrBlock="10.50.3.0/24") == (
        "InvalidVpcID.NotFound",
        400,
    )
    acl = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    associated = {a["SubnetId"] for a in acl["NetworkAcls"][0]["Associations"]}
    assert associated == {subnet["SubnetId"], tiny["SubnetId"]}
    ec2.modify_subnet_attribute(SubnetId=tiny["SubnetId"], MapPublicIpOnLaunch={"Value": True})
    (shown,) = ec2.describe_subnets(SubnetIds=[tiny["SubnetId"]])["Subnets"]
    assert shown["MapPublicIpOnLaunch"] is True
    assert error_of(
        ec2.modify_subnet_attribute,
        SubnetId=tiny["SubnetId"],
        AssignIpv6AddressOnCreation={"Value": True},
    )[0] in ("UnsupportedOperation", "InvalidParameterValue")
    ec2.delete_subnet(SubnetId=tiny["SubnetId"])
    assert error_of(ec2.describe_subnets, SubnetIds=[tiny["SubnetId"]]) == (
        "InvalidSubnetID.NotFound",
        400,
    )


def test_a_subnet_with_an_instance_cannot_go(cloud: Karri, ec2: Any) -> None:
    image = tiny_image(cloud, cloud.client("ec2"))
    admin = cloud.client("ec2")
    admin.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})
    vpc_id = ec2.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.60.5.0/24")["Subnet"]["SubnetId"]
    instance = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t2.micro", SubnetId=subnet_id
    )["Instances"][0]
    assert instance["VpcId"] == vpc_id and instance["PrivateIpAddress"] == "10.60.5.4"
    assert "PublicIpAddress" not in instance  # the subnet does not map public addresses
    (group,) = instance["SecurityGroups"]
    (vpc_default,) = parts(ec2, vpc_id)["groups"]
    assert group == {"GroupName": "default", "GroupId": vpc_default["GroupId"]}  # its VPC's
    default_vpc_group = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
    assert error_of(
        ec2.run_instances,
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet_id,
        SecurityGroupIds=[default_vpc_group["GroupId"]],
    ) == ("InvalidParameter", 400)  # a group of another VPC: they "belong to different networks"
    (subnet,) = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
    assert subnet["AvailableIpAddressCount"] == 256 - 5 - 1
    assert error_of(ec2.delete_subnet, SubnetId=subnet_id) == ("DependencyViolation", 400)
    assert error_of(ec2.delete_vpc, VpcId=vpc_id) == ("DependencyViolation", 400)
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    wait_state(ec2, instance["InstanceId"], "terminated")
    ec2.delete_subnet(SubnetId=subnet_id)  # its interface went with it
    ec2.delete_vpc(VpcId=vpc_id)


def test_another_account_sees_none_of_it(cloud: Karri, ec2: Any) -> None:
    vpc_id = ec2.create_vpc(CidrBlock="10.70.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.70.0.0/24")["Subnet"]["SubnetId"]
    other = fresh_ec2(cloud)
    assert error_of(other.describe_vpcs, VpcIds=[vpc_id])[0] == "InvalidVpcID.NotFound"
    assert error_of(other.delete_vpc, VpcId=vpc_id)[0] == "InvalidVpcID.NotFound"
    assert error_of(other.create_subnet, VpcId=vpc_id, CidrBlock="10.70.1.0/24")[0] == (
        "InvalidVpcID.NotFound"
    )
    assert error_of(other.delete_subnet, SubnetId=subnet_id)[0] == "InvalidSubnetID.NotFound"
    assert (
        error_of(
            other.modify_subnet_attribute, SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True}
        )[0]
        == "InvalidSubnetID.NotFound"
    )
    assert (
        error_of(other.modify_vpc_attribute, VpcId=vpc_id, EnableDnsSupport={"Value": False})[0]
        == "InvalidVpcID.NotFound"
    )
    # the same range in another account's VPC is its own business
    mine = other.create_vpc(CidrBlock="10.70.0.0/16")["Vpc"]["VpcId"]
    other.create_subnet(VpcId=mine, CidrBlock="10.70.0.0/24")


def test_default_subnet_deleted_and_made_again(ec2: Any) -> None:
    (subnet,) = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])[
        "Subnets"
    ]
    zone = subnet["AvailabilityZone"]
    assert error_of(ec2.create_default_subnet, AvailabilityZone=zone)[0] == (
        "DefaultSubnetAlreadyExistsInAvailabilityZone"
    )
    ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    assert (
        ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
        == []
    )
    again = ec2.create_default_subnet(AvailabilityZone=zone)["Subnet"]
    assert again["CidrBlock"] == subnet["CidrBlock"] and again["DefaultForAz"] is True
    assert again["MapPublicIpOnLaunch"] is True
    assert error_of(ec2.create_default_subnet)[0] == "MissingParameter"


def gateway_of(ec2: Any, gateway_id: str) -> dict[str, Any]:
    return ec2.describe_internet_gateways(InternetGatewayIds=[gateway_id])["InternetGateways"][0]


def test_internet_gateways_attach_detach_delete(ec2: Any) -> None:
    vpc_id = ec2.create_vpc(CidrBlock="10.80.0.0/16")["Vpc"]["VpcId"]
    other_vpc = ec2.create_vpc(CidrBlock="10.81.0.0/16")["Vpc"]["VpcId"]
    tags = [{"ResourceType": "internet-gateway", "Tags": [{"Key": "Name", "Value": "gw"}]}]
    gateway = ec2.create_internet_gateway(TagSpecifications=tags)["InternetGateway"]
    gateway_id = gateway["InternetGatewayId"]
    assert gateway["Attachments"] == [] and gateway["Tags"] == [{"Key": "Name", "Value": "gw"}]
    assert gateway_of(ec2, gateway_id) == gateway
    second = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    assert error_of(ec2.detach_internet_gateway, InternetGatewayId=gateway_id, VpcId=vpc_id) == (
        "Gateway.NotAttached",
        400,
    )
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    assert gateway_of(ec2, gateway_id)["Attachments"] == [{"State": "available", "VpcId": vpc_id}]
    by_vpc = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}]
    )["InternetGateways"]
    assert [g["InternetGatewayId"] for g in by_vpc] == [gateway_id]
    assert error_of(ec2.attach_internet_gateway, InternetGatewayId=gateway_id, VpcId=other_vpc) == (
        "Resource.AlreadyAssociated",
        400,
    )
    assert error_of(ec2.attach_internet_gateway, InternetGatewayId=second, VpcId=vpc_id) == (
        "Resource.AlreadyAssociated",
        400,
    )
    assert error_of(ec2.delete_internet_gateway, InternetGatewayId=gateway_id) == (
        "DependencyViolation",
        400,
    )
    assert error_of(ec2.delete_vpc, VpcId=vpc_id) == ("DependencyViolation", 400)
    assert error_of(ec2.detach_internet_gateway, InternetGatewayId=gateway_id, VpcId=other_vpc) == (
        "Gateway.NotAttached",
        400,
    )
    ec2.detach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    assert gateway_of(ec2, gateway_id)["Attachments"] == []
    ec2.delete_internet_gateway(InternetGatewayId=gateway_id)
    assert error_of(ec2.describe_internet_gateways, InternetGatewayIds=[gateway_id]) == (
        "InvalidInternetGatewayID.NotFound",
        400,
    )
    assert error_of(ec2.delete_internet_gateway, InternetGatewayId="igw-nope")[0] == (
        "InvalidInternetGatewayId.Malformed"
    )
    ec2.delete_vpc(VpcId=vpc_id)


def test_public_addresses_need_an_attached_gateway(cloud: Karri, ec2: Any) -> None:
    image = tiny_image(cloud, cloud.client("ec2"))
    cloud.client("ec2").modify_image_attribute(
        ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]}
    )
    vpc_id = ec2.create_vpc(CidrBlock="10.90.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.90.0.0/24")["Subnet"]["SubnetId"]
    instance_id = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t2.micro", SubnetId=subnet_id
    )["Instances"][0]["InstanceId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    assert error_of(ec2.associate_address, AllocationId=allocation, InstanceId=instance_id) == (
        "Gateway.NotAttached",
        400,
    )
    gateway_id = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    ec2.associate_address(AllocationId=allocation, InstanceId=instance_id)

    # public DNS names only with enableDnsHostnames (off in a VPC of one's own), as on AWS
    def names() -> tuple[str, str, str]:
        instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
            "Instances"
        ][0]
        interface = instance["NetworkInterfaces"][0]["Association"]
        return instance["PublicIpAddress"], instance["PublicDnsName"], interface["PublicDnsName"]

    public_ip, name, eni_name = names()
    assert public_ip and name == "" and eni_name == ""
    by_name = [{"Name": "dns-name", "Values": ["*"]}, {"Name": "vpc-id", "Values": [vpc_id]}]
    assert ec2.describe_instances(Filters=by_name)["Reservations"] == []
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    _, name, eni_name = names()
    assert name == eni_name and name.startswith("euca-" + public_ip.replace(".", "-"))
    assert ec2.describe_instances(Filters=by_name)["Reservations"]
    assert error_of(ec2.detach_internet_gateway, InternetGatewayId=gateway_id, VpcId=vpc_id) == (
        "DependencyViolation",
        400,
    )
    ec2.disassociate_address(
        AssociationId=ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0][
            "AssociationId"
        ]
    )
    ec2.detach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)


def test_the_default_vpc_deleted_and_made_again(cloud: Karri, ec2: Any) -> None:
    default = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    vpc_id = default["VpcId"]
    (gateway,) = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}]
    )["InternetGateways"]
    ec2.detach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"])
    assert error_of(ec2.delete_vpc, VpcId=vpc_id) == ("DependencyViolation", 400)  # subnets
    for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    ec2.delete_vpc(VpcId=vpc_id)
    assert ec2.describe_vpcs()["Vpcs"] == []
    attribute = ec2.describe_account_attributes(AttributeNames=["default-vpc"])
    assert attribute["AccountAttributes"][0]["AttributeValues"] == [{"AttributeValue": "none"}]
    assert ec2.describe_security_groups()["SecurityGroups"] == []
    again = ec2.create_default_vpc()["Vpc"]
    assert again["VpcId"] == vpc_id and again["IsDefault"] is True
    assert again["CidrBlock"] == "172.31.0.0/16"
    assert error_of(ec2.create_default_vpc) == ("DefaultVpcAlreadyExists", 400)
    found = parts(ec2, vpc_id)
    assert [g["GroupName"] for g in found["groups"]] == ["default"]
    assert [s["DefaultForAz"] for s in found["subnets"]] == [True]
    routes = {r["DestinationCidrBlock"]: r for r in found["tables"][0]["Routes"]}
    assert routes["0.0.0.0/0"]["State"] == "active"
    (gateway,) = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}]
    )["InternetGateways"]


def test_what_was_deleted_stays_deleted_after_a_restart(tmp_path: Any) -> None:
    first = start_karri(tmp_path / "data", "--node-driver", "fake")
    try:
        creds = first.create_account(unique("gone").lower())
        ec2 = first.client("ec2", creds)
        (subnet,) = ec2.describe_subnets()["Subnets"]
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        vpc_id = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    finally:
        stop_karri(first)
    again = start_karri(tmp_path / "data", "--node-driver", "fake")
    try:
        ec2 = again.client("ec2", creds)
        assert ec2.describe_subnets()["Subnets"] == []
        assert {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]} == {vpc_id}
        assert (
            ec2.create_default_subnet(AvailabilityZone=subnet["AvailabilityZone"])["Subnet"][
                "SubnetId"
            ]
            == subnet["SubnetId"]
        )
    finally:
        stop_karri(again)


def routes_of(ec2: Any, table_id: str) -> dict[str, dict[str, Any]]:
    (table,) = ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"]
    return {r["DestinationCidrBlock"]: r for r in table["Routes"]}


def test_route_tables_associations_and_routes(cloud: Karri, ec2: Any) -> None:
    vpc_id = ec2.create_vpc(CidrBlock="10.100.0.0/16")["Vpc"]["VpcId"]
    public = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.100.0.0/24")["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.100.1.0/24")["Subnet"]["SubnetId"]
    tags = [{"ResourceType": "route-table", "Tags": [{"Key": "Name", "Value": "public"}]}]
    table = ec2.create_route_table(VpcId=vpc_id, TagSpecifications=tags)["RouteTable"]
    table_id = table["RouteTableId"]
    assert table["Associations"] == [] and table["Tags"] == tags[0]["Tags"]
    assert [r["GatewayId"] for r in table["Routes"]] == ["local"]
    (main,) = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"]

    gateway_id = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    route = {"RouteTableId": table_id, "DestinationCidrBlock": "0.0.0.0/0"}
    assert error_of(ec2.create_route, GatewayId=gateway_id, **route) == (
        "InvalidParameterValue",  # not attached to this VPC
        400,
    )
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    assert ec2.create_route(GatewayId=gateway_id, **route)["Return"] is True
    assert error_of(ec2.create_route, GatewayId=gateway_id, **route) == ("RouteAlreadyExists", 400)
    assert routes_of(ec2, table_id)["0.0.0.0/0"] == {
        "DestinationCidrBlock": "0.0.0.0/0",
        "GatewayId": gateway_id,
        "Origin": "CreateRoute",
        "State": "active",
    }
    assert error_of(
        ec2.create_route,
        RouteTableId=table_id,
        DestinationCidrBlock="10.100.5.0/24",
        GatewayId=gateway_id,
    ) == ("InvalidParameterValue", 400)  # inside the VPC: interfaces only
    assert (
        error_of(ec2.create_route, RouteTableId=table_id, DestinationCidrBlock="1.0.0.0/8")[0]
        == "MissingParameter"
    )
    assert (
        error_of(
            ec2.create_route,
            GatewayId="igw-12345678",
            RouteTableId=table_id,
            DestinationCidrBlock="1.0.0.0/8",
        )[0]
        == "InvalidGatewayID.NotFound"
    )
    assert error_of(
        ec2.delete_route, RouteTableId=table_id, DestinationCidrBlock="10.100.0.0/16"
    ) == ("InvalidParameterValue", 400)  # the local route stays
    assert error_of(ec2.delete_route, RouteTableId=table_id, DestinationCidrBlock="1.0.0.0/8") == (
        "InvalidRoute.NotFound",
        400,
    )
    found = ec2.describe_route_tables(
        Filters=[{"Name": "route.gateway-id", "Values": [gateway_id]}]
    )["RouteTables"]
    assert [t["RouteTableId"] for t in found] == [table_id]

    association = ec2.associate_route_table(RouteTableId=table_id, SubnetId=public)
    assert association["AssociationState"] == {"State": "associated"}
    assert error_of(ec2.associate_route_table, RouteTableId=table_id, SubnetId=public) == (
        "Resource.AlreadyAssociated",
        400,
    )
    (shown,) = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [public]}]
    )["RouteTables"]
    assert shown["RouteTableId"] == table_id
    assert error_of(ec2.delete_route_table, RouteTableId=table_id) == ("DependencyViolation", 400)
    assert error_of(ec2.delete_route_table, RouteTableId=main["RouteTableId"]) == (
        "DependencyViolation",
        400,
    )
    other_vpc = ec2.create_vpc(CidrBlock="10.101.0.0/16")["Vpc"]["VpcId"]
    foreign = ec2.create_subnet(VpcId=other_vpc, CidrBlock="10.101.0.0/24")["Subnet"]["SubnetId"]
    assert error_of(ec2.associate_route_table, RouteTableId=table_id, SubnetId=foreign) == (
        "InvalidParameterValue",
        400,
    )

    # detaching the gateway leaves its route a blackhole; attaching it again revives it
    ec2.detach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    assert routes_of(ec2, table_id)["0.0.0.0/0"]["State"] == "blackhole"
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    assert routes_of(ec2, table_id)["0.0.0.0/0"]["State"] == "active"

    # the main association moves to the new table, and back
    main_association = next(a for a in main["Associations"] if a["Main"])
    moved = ec2.replace_route_table_association(
        AssociationId=main_association["RouteTableAssociationId"], RouteTableId=table_id
    )["NewAssociationId"]
    (now_main,) = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"]
    assert now_main["RouteTableId"] == table_id
    assert error_of(ec2.disassociate_route_table, AssociationId=moved) == (
        "InvalidParameterValue",
        400,
    )
    ec2.replace_route_table_association(AssociationId=moved, RouteTableId=main["RouteTableId"])
    ec2.disassociate_route_table(AssociationId=association["AssociationId"])
    assert error_of(ec2.disassociate_route_table, AssociationId=association["AssociationId"]) == (
        "InvalidAssociationID.NotFound",
        400,
    )

    # a route to an instance's interface; blackhole once the instance is gone
    image = tiny_image(cloud, cloud.client("ec2"))
    cloud.client("ec2").modify_image_attribute(
        ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]}
    )
    instance = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t2.micro", SubnetId=public
    )["Instances"][0]
    nat = {"RouteTableId": main["RouteTableId"], "DestinationCidrBlock": "0.0.0.0/0"}
    ec2.create_route(InstanceId=instance["InstanceId"], **nat)
    via = routes_of(ec2, main["RouteTableId"])["0.0.0.0/0"]
    assert via["InstanceId"] == instance["InstanceId"] and via["State"] == "active"
    assert via["NetworkInterfaceId"] == instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.replace_route(GatewayId=gateway_id, **nat)
    assert routes_of(ec2, main["RouteTableId"])["0.0.0.0/0"]["GatewayId"] == gateway_id
    ec2.replace_route(
        NetworkInterfaceId=instance["NetworkInterfaces"][0]["NetworkInterfaceId"], **nat
    )
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    wait_for(
        "the route's blackhole",
        lambda: routes_of(ec2, main["RouteTableId"])["0.0.0.0/0"]["State"] == "blackhole" or None,
        timeout=60,
    )
    ec2.delete_route(**nat)
    assert "0.0.0.0/0" not in routes_of(ec2, main["RouteTableId"])

    other = fresh_ec2(cloud)
    assert error_of(other.delete_route_table, RouteTableId=table_id)[0] == (
        "InvalidRouteTableID.NotFound"
    )
    assert error_of(other.create_route, GatewayId=gateway_id, **route)[0] == (
        "InvalidRouteTableID.NotFound"
    )
    ec2.delete_route(**route)
    ec2.delete_route_table(RouteTableId=table_id)
    assert error_of(ec2.describe_route_tables, RouteTableIds=[table_id])[0] == (
        "InvalidRouteTableID.NotFound"
    )
    assert private


def test_another_account_cannot_touch_gateways_or_route_tables(cloud: Karri, ec2: Any) -> None:
    vpc_id = ec2.create_vpc(CidrBlock="10.110.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.110.0.0/24")["Subnet"]["SubnetId"]
    gateway_id = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    table_id = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    association = ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)
    other = fresh_ec2(cloud)
    theirs = other.create_vpc(CidrBlock="10.110.0.0/16")["Vpc"]["VpcId"]
    assert (
        error_of(other.attach_internet_gateway, InternetGatewayId=gateway_id, VpcId=theirs)[0]
        == "InvalidInternetGatewayID.NotFound"
    )
    assert error_of(other.delete_internet_gateway, InternetGatewayId=gateway_id)[0] == (
        "InvalidInternetGatewayID.NotFound"
    )
    assert error_of(other.describe_internet_gateways, InternetGatewayIds=[gateway_id])[0] == (
        "InvalidInternetGatewayID.NotFound"
    )
    own_gateway = other.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    assert (
        error_of(other.attach_internet_gateway, InternetGatewayId=own_gateway, VpcId=vpc_id)[0]
        == "InvalidVpcID.NotFound"
    )
    assert error_of(other.describe_route_tables, RouteTableIds=[table_id])[0] == (
        "InvalidRouteTableID.NotFound"
    )
    assert error_of(other.create_route_table, VpcId=vpc_id)[0] == "InvalidVpcID.NotFound"
    assert (
        error_of(other.disassociate_route_table, AssociationId=association["AssociationId"])[0]
        == "InvalidAssociationID.NotFound"
    )
    their_table = other.create_route_table(VpcId=theirs)["RouteTable"]["RouteTableId"]
    assert (
        error_of(other.associate_route_table, RouteTableId=their_table, SubnetId=subnet_id)[0]
        == "InvalidSubnetID.NotFound"
    )
    assert (
        error_of(
            other.create_route,
            RouteTableId=their_table,
            DestinationCidrBlock="0.0.0.0/0",
            GatewayId=gateway_id,
        )[0]
        == "InvalidGatewayID.NotFound"
    )
    assert [t["RouteTableId"] for t in other.describe_route_tables()["RouteTables"]].count(
        table_id
    ) == 0


def test_secondary_ranges(cloud: Karri, ec2: Any) -> None:
    vpc = ec2.create_vpc(CidrBlock="10.120.0.0/16")["Vpc"]
    vpc_id, primary = vpc["VpcId"], vpc["CidrBlockAssociationSet"][0]["AssociationId"]
    table_id = parts(ec2, vpc_id)["tables"][0]["RouteTableId"]
    added = ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock="10.121.0.0/20")
    association = added["CidrBlockAssociation"]
    assert added["VpcId"] == vpc_id and association["CidrBlock"] == "10.121.0.0/20"
    assert association["CidrBlockState"] == {"State": "associated"}
    (shown,) = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
    assert [a["CidrBlock"] for a in shown["CidrBlockAssociationSet"]] == [
        "10.120.0.0/16",
        "10.121.0.0/20",
    ]
    assert shown["CidrBlock"] == "10.120.0.0/16"
    by_range = ec2.describe_vpcs(
        Filters=[{"Name": "cidr-block-association.cidr-block", "Values": ["10.121.0.0/20"]}]
    )["Vpcs"]
    assert [v["VpcId"] for v in by_range] == [vpc_id]
    assert "10.121.0.0/20" in routes_of(ec2, table_id)  # a local route in every table
    new_table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]
    assert sorted(r["DestinationCidrBlock"] for r in new_table["Routes"]) == [
        "10.120.0.0/16",
        "10.121.0.0/20",
    ]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.121.0.0/24")["Subnet"]["SubnetId"]
    for cidr, code in (
        ("10.120.5.0/24", "InvalidVpc.Range"),  # overlaps the primary
        ("192.168.0.0/16", "InvalidVpc.Range"),  # another private block than the primary's
        ("10.122.0.0/29", "InvalidVpc.Range"),
    ):
        assert error_of(ec2.associate_vpc_cidr_block, VpcId=vpc_id, CidrBlock=cidr) == (
            code,
            400,
        ), cidr
    for n in range(3):
        ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock=f"10.{130 + n}.0.0/16")
    assert (
        error_of(ec2.associate_vpc_cidr_block, VpcId=vpc_id, CidrBlock="10.140.0.0/16")[0]
        == "CidrLimitExceeded"
    )
    assert error_of(ec2.disassociate_vpc_cidr_block, AssociationId=primary) == (
        "InvalidParameterValue",
        400,
    )
    ours = association["AssociationId"]
    assert error_of(ec2.disassociate_vpc_cidr_block, AssociationId=ours) == (
        "InvalidCidrBlock.InUse",
        400,
    )
    assert error_of(fresh_ec2(cloud).disassociate_vpc_cidr_block, AssociationId=ours)[0] == (
        "InvalidVpcCidrBlockAssociationID.NotFound"
    )
    ec2.delete_subnet(SubnetId=subnet_id)
    gone = ec2.disassociate_vpc_cidr_block(AssociationId=ours)["CidrBlockAssociation"]
    assert gone["CidrBlock"] == "10.121.0.0/20"
    assert "10.121.0.0/20" not in routes_of(ec2, table_id)
    assert error_of(ec2.create_subnet, VpcId=vpc_id, CidrBlock="10.121.0.0/24")[0] == (
        "InvalidSubnet.Range"
    )
    ec2.delete_route_table(RouteTableId=new_table["RouteTableId"])
    ec2.delete_vpc(VpcId=vpc_id)


def test_a_default_vpc_made_again_takes_back_its_detached_gateway(ec2: Any) -> None:
    vpc_id = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    (gateway,) = ec2.describe_internet_gateways()["InternetGateways"]
    gateway_id = gateway["InternetGatewayId"]
    ec2.detach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    for subnet in ec2.describe_subnets()["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    ec2.delete_vpc(VpcId=vpc_id)
    assert gateway_of(ec2, gateway_id)["Attachments"] == []  # kept, detached
    ec2.create_default_vpc()
    assert gateway_of(ec2, gateway_id)["Attachments"] == [{"State": "available", "VpcId": vpc_id}]
    (table,) = ec2.describe_route_tables()["RouteTables"]
    assert routes_of(ec2, table["RouteTableId"])["0.0.0.0/0"]["State"] == "active"


def test_a_two_tier_vpc_through_the_aws_cli(cloud: Karri) -> None:
    creds = cloud.create_account(unique("cli").lower())

    def aws(*args: str) -> Any:
        return cloud.aws("ec2", *args, creds=creds)

    vpc_id = aws("create-vpc", "--cidr-block", "10.7.0.0/16")["Vpc"]["VpcId"]
    aws("modify-vpc-attribute", "--vpc-id", vpc_id, "--enable-dns-hostnames")
    attribute = aws(
        "describe-vpc-attribute", "--vpc-id", vpc_id, "--attribute", "enableDnsHostnames"
    )
    assert attribute["EnableDnsHostnames"] == {"Value": True}
    public = aws("create-subnet", "--vpc-id", vpc_id, "--cidr-block", "10.7.0.0/24")["Subnet"]
    aws("modify-subnet-attribute", "--subnet-id", public["SubnetId"], "--map-public-ip-on-launch")
    gateway = aws("create-internet-gateway")["InternetGateway"]["InternetGatewayId"]
    aws("attach-internet-gateway", "--internet-gateway-id", gateway, "--vpc-id", vpc_id)
    table = aws("create-route-table", "--vpc-id", vpc_id)["RouteTable"]["RouteTableId"]
    route = ("--route-table-id", table, "--destination-cidr-block", "0.0.0.0/0")
    assert aws("create-route", *route, "--gateway-id", gateway)["Return"] is True
    association = aws(
        "associate-route-table", "--route-table-id", table, "--subnet-id", public["SubnetId"]
    )["AssociationId"]
    (shown,) = aws(
        "describe-route-tables",
        "--filters",
        f"Name=association.subnet-id,Values={public['SubnetId']}",
    )["RouteTables"]
    assert shown["RouteTableId"] == table
    failed = cloud.aws("ec2", "delete-vpc", "--vpc-id", vpc_id, creds=creds, check=False)
    assert failed.returncode != 0 and "DependencyViolation" in failed.stderr
    aws("disassociate-route-table", "--association-id", association)
    aws("delete-route", *route)
    aws("delete-route-table", "--route-table-id", table)
    aws("detach-internet-gateway", "--internet-gateway-id", gateway, "--vpc-id", vpc_id)
    aws("delete-internet-gateway", "--internet-gateway-id", gateway)
    aws("delete-subnet", "--subnet-id", public["SubnetId"])
    aws("delete-vpc", "--vpc-id", vpc_id)
