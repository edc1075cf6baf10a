"""Every account's default VPC through boto3, as AWS shows it: the VPC, its default
subnet, internet gateway, main route table, default network ACL and DHCP options, the
instances' primary interfaces, their filters, pagination and tags, and account isolation.
Instances run on the fake node driver: no guest is needed for the network's model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Creds, Karri, start_karri, stop_karri
from tests.integration.ec2_wire import error_of, unique
from tests.integration.guests import tiny_image, wait_for

CIDR = "172.31.0.0/16"
MALFORMED = {  # AWS spells these ids' codes unevenly
    "InvalidVpcID": "InvalidVpcID.Malformed",
    "InvalidSubnetID": "InvalidSubnetID.Malformed",
    "InvalidInternetGatewayID": "InvalidInternetGatewayId.Malformed",
    "InvalidRouteTableID": "InvalidRouteTableId.Malformed",
    "InvalidNetworkAclID": "InvalidNetworkAclId.Malformed",
    "InvalidDhcpOptionID": "InvalidDhcpOptionsId.Malformed",
    "InvalidNetworkInterfaceID": "InvalidNetworkInterfaceId.Malformed",
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("vpcs") / "data", "--node-driver", "fake")
    yield karri
    stop_karri(karri)


@pytest.fixture(scope="module")
def ec2(cloud: Karri) -> Any:
    return cloud.client("ec2")


@pytest.fixture(scope="module")
def bob(cloud: Karri) -> Creds:
    return cloud.create_account(unique("bob").lower())


@pytest.fixture(scope="module")
def image(cloud: Karri, ec2: Any) -> str:
    return tiny_image(cloud, ec2)


def default_vpc(ec2: Any) -> dict[str, Any]:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    assert len(vpcs) == 1
    return vpcs[0]


def test_the_default_vpc_as_aws_shows_it(cloud: Karri, ec2: Any) -> None:
    vpc = default_vpc(ec2)
    account = cloud.admin.account_id
    assert vpc["IsDefault"] is True and vpc["CidrBlock"] == CIDR and vpc["State"] == "available"
    assert vpc["OwnerId"] == account and vpc["InstanceTenancy"] == "default"
    (association,) = vpc["CidrBlockAssociationSet"]
    assert association["CidrBlock"] == CIDR
    assert association["CidrBlockState"] == {"State": "associated"}
    assert association["AssociationId"].startswith("vpc-cidr-assoc-")
    vpc_id = vpc["VpcId"]
    assert ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"] == [vpc]
    for name, value in (
        ("cidr", CIDR),
        ("cidr-block-association.cidr-block", CIDR),
        ("cidr-block-association.association-id", association["AssociationId"]),
        ("cidr-block-association.state", "associated"),
        ("state", "available"),
        ("owner-id", account),
        ("vpc-id", vpc_id),
        ("dhcp-options-id", vpc["DhcpOptionsId"]),
        ("isDefault", "true"),
    ):
        assert ec2.describe_vpcs(Filters=[{"Name": name, "Values": [value]}])["Vpcs"] == [vpc]
    assert ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["false"]}])["Vpcs"] == []
    attributes = {
        a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
        for a in ec2.describe_account_attributes()["AccountAttributes"]
    }
    assert attributes["supported-platforms"] == ["VPC"]
    assert attributes["default-vpc"] == [vpc_id]
    for name, expected in (
        ("enableDnsSupport", True),
        ("enableDnsHostnames", True),
        ("enableNetworkAddressUsageMetrics", False),
    ):
        answer = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=name)
        assert answer["VpcId"] == vpc_id
        assert answer[name[0].upper() + name[1:]] == {"Value": expected}


def test_the_default_subnet_of_the_zone(ec2: Any) -> None:
    vpc_id = default_vpc(ec2)["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    subnets = ec2.describe_subnets()["Subnets"]
    assert [s["AvailabilityZone"] for s in subnets] == zones
    subnet = subnets[0]
    assert subnet["CidrBlock"] == "172.31.0.0/20" and subnet["VpcId"] == vpc_id
    assert subnet["DefaultForAz"] is True and subnet["MapPublicIpOnLaunch"] is True
    assert subnet["State"] == "available"
    assert subnet["SubnetArn"].endswith(f":subnet/{subnet['SubnetId']}")
    assert subnet["AvailableIpAddressCount"] <= 4096 - 5
    for name, value in (
        ("default-for-az", "true"),
        ("availability-zone", zones[0]),
        ("vpc-id", vpc_id),
        ("cidr-block", "172.31.0.0/20"),
        ("map-public-ip-on-launch", "true"),
        ("subnet-id", subnet["SubnetId"]),
    ):
        found = ec2.describe_subnets(Filters=[{"Name": name, "Values": [value]}])["Subnets"]
        assert [s["SubnetId"] for s in found] == [subnet["SubnetId"]]
    assert (
        ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["false"]}])["Subnets"]
        == []
    )


def test_gateway_route_table_acl_and_dhcp_options(cloud: Karri, ec2: Any) -> None:
    vpc = default_vpc(ec2)
    vpc_id = vpc["VpcId"]
    by_vpc = [{"Name": "attachment.vpc-id", "Values": [vpc_id]}]
    (gateway,) = ec2.describe_internet_gateways(Filters=by_vpc)["InternetGateways"]
    assert gateway["InternetGatewayId"].startswith("igw-")
    assert gateway["Attachments"] == [{"State": "available", "VpcId": vpc_id}]
    igw = gateway["InternetGatewayId"]

    main = [
        {"Name": "association.main", "Values": ["true"]},
        {"Name": "vpc-id", "Values": [vpc_id]},
    ]
    (table,) = ec2.describe_route_tables(Filters=main)["RouteTables"]
    assert table["Routes"] == [
        {
            "DestinationCidrBlock": CIDR,
            "GatewayId": "local",
            "Origin": "CreateRouteTable",
            "State": "active",
        },
        {
            "DestinationCidrBlock": "0.0.0.0/0",
            "GatewayId": igw,
            "Origin": "CreateRoute",
            "State": "active",
        },
    ]
    (association,) = table["Associations"]
    assert association["Main"] is True and association["RouteTableId"] == table["RouteTableId"]
    assert association["RouteTableAssociationId"].startswith("rtbassoc-")
    assert "SubnetId" not in association
    found = ec2.describe_route_tables(Filters=[{"Name": "route.gateway-id", "Values": [igw]}])
    assert [t["RouteTableId"] for t in found["RouteTables"]] == [table["RouteTableId"]]

    (acl,) = ec2.describe_network_acls(Filters=[{"Name": "default", "Values": ["true"]}])[
        "NetworkAcls"
    ]
    assert acl["IsDefault"] is True and acl["VpcId"] == vpc_id
    rules = {(e["Egress"], e["RuleNumber"], e["RuleAction"], e["Protocol"]) for e in acl["Entries"]}
    assert rules == {
        (egress, number, action, "-1")
        for egress in (False, True)
        for number, action in ((100, "allow"), (32767, "deny"))
    }
    assert all(e["CidrBlock"] == "0.0.0.0/0" for e in acl["Entries"])
    subnet_ids = {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    assert {a["SubnetId"] for a in acl["Associations"]} == subnet_ids
    assert all(a["NetworkAclAssociationId"].startswith("aclassoc-") for a in acl["Associations"])

    (options,) = ec2.describe_dhcp_options(DhcpOptionsIds=[vpc["DhcpOptionsId"]])["DhcpOptions"]
    region = ec2.meta.region_name
    domain = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
    assert options["DhcpConfigurations"] == [
        {"Key": "domain-name", "Values": [{"Value": domain}]},
        {"Key": "domain-name-servers", "Values": [{"Value": "AmazonProvidedDNS"}]},
    ]
    found = ec2.describe_dhcp_options(Filters=[{"Name": "key", "Values": ["domain-name"]}])
    assert [d["DhcpOptionsId"] for d in found["DhcpOptions"]] == [vpc["DhcpOptionsId"]]


def test_unknown_and_malformed_ids(ec2: Any) -> None:
    for call, member, good, bad, code in (
        (ec2.describe_vpcs, "VpcIds", "vpc-0123456789abcdef0", "vpc-x", "InvalidVpcID"),
        (ec2.describe_subnets, "SubnetIds", "subnet-12345678", "subnet", "InvalidSubnetID"),
        (
            ec2.describe_internet_gateways,
            "InternetGatewayIds",
            "igw-12345678",
            "igw-?",
            "InvalidInternetGatewayID",
        ),
        (ec2.describe_route_tables, "RouteTableIds", "rtb-12345678", "x", "InvalidRouteTableID"),
        (ec2.describe_network_acls, "NetworkAclIds", "acl-12345678", "acl-", "InvalidNetworkAclID"),
        (ec2.describe_dhcp_options, "DhcpOptionsIds", "dopt-12345678", "d", "InvalidDhcpOptionID"),
        (
            ec2.describe_network_interfaces,
            "NetworkInterfaceIds",
            "eni-12345678",
            "eni-1",
            "InvalidNetworkInterfaceID",
        ),
    ):
        assert error_of(call, **{member: [good]}) == (f"{code}.NotFound", 400)
        malformed, status = error_of(call, **{member: [bad]})
        assert status == 400 and malformed == MALFORMED[code]
    assert error_of(ec2.describe_vpcs, Filters=[{"Name": "nope", "Values": ["1"]}])[0] == (
        "InvalidParameterValue"
    )
    vpc_id = default_vpc(ec2)["VpcId"]
    assert error_of(ec2.describe_vpc_attribute, VpcId=vpc_id, Attribute="nope")[0] == (
        "InvalidParameterValue"
    )


def test_tags_on_every_part(ec2: Any) -> None:
    vpc = default_vpc(ec2)
    parts = {
        "vpc": (vpc["VpcId"], ec2.describe_vpcs, "Vpcs"),
        "subnet": (
            ec2.describe_subnets()["Subnets"][0]["SubnetId"],
            ec2.describe_subnets,
            "Subnets",
        ),
        "internet-gateway": (
            ec2.describe_internet_gateways()["InternetGateways"][0]["InternetGatewayId"],
            ec2.describe_internet_gateways,
            "InternetGateways",
        ),
        "route-table": (
            ec2.describe_route_tables()["RouteTables"][0]["RouteTableId"],
            ec2.describe_route_tables,
            "RouteTables",
        ),
        "network-acl": (
            ec2.describe_network_acls()["NetworkAcls"][0]["NetworkAclId"],
            ec2.describe_network_acls,
            "NetworkAcls",
        ),
        "dhcp-options": (vpc["DhcpOptionsId"], ec2.describe_dhcp_options, "DhcpOptions"),
    }
    key = unique("net")
    ec2.create_tags(
        Resources=[resource for resource, _call, _member in parts.values()],
        Tags=[{"Key": key, "Value": "yes"}],
    )
    for resource_type, (resource, describe, member) in parts.items():
        items = describe(Filters=[{"Name": f"tag:{key}", "Values": ["yes"]}])[member]
        assert len(items) == 1 and {"Key": key, "Value": "yes"} in items[0]["Tags"]
        tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource]}])["Tags"]
        assert tags == [
            {"Key": key, "ResourceId": resource, "ResourceType": resource_type, "Value": "yes"}
        ]
    ec2.delete_tags(Resources=[vpc["VpcId"]], Tags=[{"Key": key}])
    assert ec2.describe_vpcs(Filters=[{"Name": "tag-key", "Values": [key]}])["Vpcs"] == []
    assert error_of(
        ec2.create_tags, Resources=["subnet-12345678"], Tags=[{"Key": "k", "Value": "v"}]
    ) == ("InvalidSubnetID.NotFound", 400)


def test_another_account_has_its_own_default_vpc(cloud: Karri, ec2: Any, bob: Creds) -> None:
    theirs = cloud.client("ec2", bob)
    mine = default_vpc(ec2)
    own = default_vpc(theirs)
    assert own["VpcId"] != mine["VpcId"] and own["CidrBlock"] == mine["CidrBlock"]
    assert own["OwnerId"] == bob.account_id
    assert theirs.describe_vpcs()["Vpcs"] == [own]
    attributes = theirs.describe_account_attributes(AttributeNames=["default-vpc"])
    assert attributes["AccountAttributes"][0]["AttributeValues"] == [
        {"AttributeValue": own["VpcId"]}
    ]
    my_subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    for call, member, resource, code in (
        (theirs.describe_vpcs, "VpcIds", mine["VpcId"], "InvalidVpcID.NotFound"),
        (theirs.describe_subnets, "SubnetIds", my_subnet, "InvalidSubnetID.NotFound"),
        (
            theirs.describe_dhcp_options,
            "DhcpOptionsIds",
            mine["DhcpOptionsId"],
            "InvalidDhcpOptionID.NotFound",
        ),
    ):
        assert error_of(call, **{member: [resource]}) == (code, 400)
    hidden = theirs.describe_subnets(Filters=[{"Name": "subnet-id", "Values": [my_subnet]}])
    assert hidden["Subnets"] == []
    assert error_of(
        theirs.create_tags, Resources=[mine["VpcId"]], Tags=[{"Key": "k", "Value": "v"}]
    ) == ("InvalidVpcID.NotFound", 400)
    assert error_of(
        theirs.describe_vpc_attribute, VpcId=mine["VpcId"], Attribute="enableDnsSupport"
    ) == ("InvalidVpcID.NotFound", 400)


def _instances(ec2: Any, reservation: dict[str, Any]) -> list[dict[str, Any]]:
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def test_instances_land_in_the_default_subnet(cloud: Karri, ec2: Any, image: str) -> None:
    subnet = ec2.describe_subnets()["Subnets"][0]
    vpc_id = subnet["VpcId"]
    before = subnet["AvailableIpAddressCount"]
    run = ec2.run_instances(ImageId=image, MinCount=6, MaxCount=6)
    instances = _instances(ec2, run)
    assert len(instances) == 6
    region = ec2.meta.region_name
    domain = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
    for instance in instances:
        ip = instance["PrivateIpAddress"]
        assert instance["VpcId"] == vpc_id and instance["SubnetId"] == subnet["SubnetId"]
        assert ip.startswith("172.31.") and int(ip.split(".")[-1]) >= 4
        assert instance["PrivateDnsName"] == f"ip-{ip.replace('.', '-')}.{domain}"
        (interface,) = instance["NetworkInterfaces"]
        assert interface["NetworkInterfaceId"].startswith("eni-")
        assert interface["PrivateIpAddress"] == ip and interface["VpcId"] == vpc_id
        assert interface["SubnetId"] == subnet["SubnetId"]
        assert interface["OwnerId"] == cloud.admin.account_id
        assert interface["Status"] == "in-use" and interface["SourceDestCheck"] is True
        assert interface["Attachment"]["DeviceIndex"] == 0
        assert interface["Attachment"]["DeleteOnTermination"] is True
        assert interface["Attachment"]["AttachmentId"].startswith("eni-attach-")
        assert interface["Groups"] == instance["SecurityGroups"]
        assert interface["MacAddress"] == interface["MacAddress"].lower()
    ids = [i["InstanceId"] for i in instances]
    named = ec2.describe_instances(
        Filters=[{"Name": "private-dns-name", "Values": [instances[0]["PrivateDnsName"]]}]
    )["Reservations"]
    assert [i["InstanceId"] for r in named for i in r["Instances"]] == [ids[0]]
    macs = {i["NetworkInterfaces"][0]["MacAddress"] for i in instances}
    assert len(macs) == 6
    after = ec2.describe_subnets(SubnetIds=[subnet["SubnetId"]])["Subnets"][0]
    assert after["AvailableIpAddressCount"] == before - 6

    # DescribeNetworkInterfaces: the primary interfaces, filters, pagination
    by_instance = [{"Name": "attachment.instance-id", "Values": ids}]
    interfaces = ec2.describe_network_interfaces(Filters=by_instance)["NetworkInterfaces"]
    assert len(interfaces) == 6
    first = interfaces[0]
    assert first["Description"] == "Primary network interface"
    assert first["InterfaceType"] == "interface" and first["Attachment"]["Status"] == "attached"
    for name, value in (
        ("network-interface-id", first["NetworkInterfaceId"]),
        ("private-ip-address", first["PrivateIpAddress"]),
        ("mac-address", first["MacAddress"]),
        ("attachment.instance-id", first["Attachment"]["InstanceId"]),
    ):
        found = ec2.describe_network_interfaces(Filters=[{"Name": name, "Values": [value]}])
        assert [n["NetworkInterfaceId"] for n in found["NetworkInterfaces"]] == [
            first["NetworkInterfaceId"]
        ]
    page = ec2.describe_network_interfaces(Filters=by_instance, MaxResults=5)
    assert len(page["NetworkInterfaces"]) == 5 and page["NextToken"]
    rest = ec2.describe_network_interfaces(
        Filters=by_instance, MaxResults=5, NextToken=page["NextToken"]
    )
    seen = {n["NetworkInterfaceId"] for n in page["NetworkInterfaces"] + rest["NetworkInterfaces"]}
    assert len(seen) == 6 and "NextToken" not in rest

    # DescribeInstances' VPC filters
    for name, value in (
        ("vpc-id", vpc_id),
        ("subnet-id", subnet["SubnetId"]),
        ("network-interface.network-interface-id", first["NetworkInterfaceId"]),
        ("network-interface.mac-address", first["MacAddress"]),
        ("network-interface.private-ip-address", first["PrivateIpAddress"]),
    ):
        filters = [
            {"Name": name, "Values": [value]},
            {"Name": "instance-id", "Values": ids},
        ]
        reservations = ec2.describe_instances(Filters=filters)["Reservations"]
        found = {i["InstanceId"] for r in reservations for i in r["Instances"]}
        assert found == (
            set(ids) if name in ("vpc-id", "subnet-id") else {first["Attachment"]["InstanceId"]}
        )

    # tags on an interface
    ec2.create_tags(Resources=[first["NetworkInterfaceId"]], Tags=[{"Key": "eni", "Value": "1"}])
    found = ec2.describe_network_interfaces(Filters=[{"Name": "tag:eni", "Values": ["1"]}])
    assert [n["NetworkInterfaceId"] for n in found["NetworkInterfaces"]] == [
        first["NetworkInterfaceId"]
    ]

    # Terminated: the interfaces are gone
    ec2.terminate_instances(InstanceIds=ids)
    wait_for(
        "the interfaces to go",
        lambda: not ec2.describe_network_interfaces(Filters=by_instance)["NetworkInterfaces"],
        120,
    )


def test_run_in_a_named_subnet(cloud: Karri, ec2: Any, bob: Creds, image: str) -> None:
    subnet = ec2.describe_subnets()["Subnets"][0]
    run = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet["SubnetId"])
    assert run["Instances"][0]["SubnetId"] == subnet["SubnetId"]
    ip = "172.31.7.9"
    run = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        NetworkInterfaces=[
            {
                "DeviceIndex": 0,
                "SubnetId": subnet["SubnetId"],
                "PrivateIpAddress": ip,
                "AssociatePublicIpAddress": False,
            }
        ],
    )
    mine = run["Instances"][0]
    assert mine["PrivateIpAddress"] == ip and mine["SubnetId"] == subnet["SubnetId"]
    # another VPC may use the same address; this one may not twice
    assert error_of(
        ec2.run_instances, ImageId=image, MinCount=1, MaxCount=1, PrivateIpAddress=ip
    ) == ("InvalidIPAddress.InUse", 400)
    theirs = cloud.client("ec2", bob)
    bobs = theirs.run_instances(ImageId=image, MinCount=1, MaxCount=1, PrivateIpAddress=ip)
    assert bobs["Instances"][0]["PrivateIpAddress"] == ip
    assert bobs["Instances"][0]["VpcId"] != mine["VpcId"]
    # reserved addresses, other accounts' subnets, zones that do not match
    assert error_of(
        ec2.run_instances, ImageId=image, MinCount=1, MaxCount=1, PrivateIpAddress="172.31.0.3"
    ) == ("InvalidParameterValue", 400)
    assert error_of(
        theirs.run_instances, ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet["SubnetId"]
    ) == ("InvalidSubnetID.NotFound", 400)
    assert error_of(
        ec2.run_instances,
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet["SubnetId"],
        Placement={"AvailabilityZone": "nowhere-1z"},
    ) == ("InvalidParameterValue", 400)
    their_ids = theirs.describe_network_interfaces()["NetworkInterfaces"]
    assert [n["Attachment"]["InstanceId"] for n in their_ids] == [
        bobs["Instances"][0]["InstanceId"]
    ]
    mine_eni = mine["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert error_of(theirs.describe_network_interfaces, NetworkInterfaceIds=[mine_eni]) == (
        "InvalidNetworkInterfaceID.NotFound",
        400,
    )
    ec2.terminate_instances(InstanceIds=[run["Instances"][0]["InstanceId"]])
    theirs.terminate_instances(InstanceIds=[bobs["Instances"][0]["InstanceId"]])
