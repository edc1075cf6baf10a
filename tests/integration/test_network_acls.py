"""Network ACLs (issue 16) through boto3 and the AWS CLI against a real `karri up` (fake
node driver: the model only; tests/node/test_network_acls.py shows the node enforcing
them): ACLs and their entries, associations moving, AWS's errors, filters, the entry
quota, account isolation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Karri, start_karri, stop_karri
from tests.integration.ec2_wire import error_of, unique


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("acls") / "data", "--node-driver", "fake")
    yield karri
    stop_karri(karri)


def fresh_ec2(cloud: Karri) -> Any:
    return cloud.client("ec2", cloud.create_account(unique("acl").lower()))


@pytest.fixture
def ec2(cloud: Karri) -> Any:
    return fresh_ec2(cloud)


def vpc_and_subnet(ec2: Any, cidr: str = "10.30.0.0/16") -> tuple[str, str]:
    vpc_id = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    subnet = cidr.replace("0.0/16", "1.0/24")
    return vpc_id, ec2.create_subnet(VpcId=vpc_id, CidrBlock=subnet)["Subnet"]["SubnetId"]


def acl_of(ec2: Any, acl_id: str) -> dict[str, Any]:
    return ec2.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"][0]


def entries(ec2: Any, acl_id: str) -> list[tuple]:
    return [
        (e["RuleNumber"], e["Egress"], e["Protocol"], e["RuleAction"], e["CidrBlock"],
         e.get("PortRange"), e.get("IcmpTypeCode"))
        for e in acl_of(ec2, acl_id)["Entries"]
    ]  # fmt: skip


def test_entries_in_order_and_aws_errors(ec2: Any) -> None:
    vpc_id, _subnet = vpc_and_subnet(ec2)
    acl = ec2.create_network_acl(
        VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "network-acl", "Tags": [{"Key": "k", "Value": "v"}]}],
    )["NetworkAcl"]
    acl_id = acl["NetworkAclId"]
    assert acl["IsDefault"] is False and acl["Associations"] == []
    assert acl["Tags"] == [{"Key": "k", "Value": "v"}] and acl["VpcId"] == vpc_id
    assert entries(ec2, acl_id) == [
        (32767, False, "-1", "deny", "0.0.0.0/0", None, None),
        (32767, True, "-1", "deny", "0.0.0.0/0", None, None),
    ]
    base = {"NetworkAclId": acl_id, "CidrBlock": "10.0.0.0/8"}
    ec2.create_network_acl_entry(
        **base, RuleNumber=200, Egress=False, Protocol="6", RuleAction="allow",
        PortRange={"From": 80, "To": 80},
    )  # fmt: skip
    ec2.create_network_acl_entry(
        **base, RuleNumber=100, Egress=False, Protocol="1", RuleAction="deny",
        IcmpTypeCode={"Type": 8, "Code": -1},
    )  # fmt: skip
    ec2.create_network_acl_entry(
        NetworkAclId=acl_id, RuleNumber=100, Egress=True, Protocol="-1", RuleAction="allow",
        CidrBlock="0.0.0.0/0",
    )  # fmt: skip
    assert entries(ec2, acl_id) == [
        (100, False, "1", "deny", "10.0.0.0/8", None, {"Type": 8, "Code": -1}),
        (200, False, "6", "allow", "10.0.0.0/8", {"From": 80, "To": 80}, None),
        (32767, False, "-1", "deny", "0.0.0.0/0", None, None),
        (100, True, "-1", "allow", "0.0.0.0/0", None, None),
        (32767, True, "-1", "deny", "0.0.0.0/0", None, None),
    ]
    again = {"RuleNumber": 200, "Egress": False, "Protocol": "-1", "RuleAction": "deny"}
    assert error_of(ec2.create_network_acl_entry, **base, **again) == (
        "NetworkAclEntryAlreadyExists",
        400,
    )
    ec2.replace_network_acl_entry(**base, **again)
    assert entries(ec2, acl_id)[1] == (200, False, "-1", "deny", "10.0.0.0/8", None, None)
    missing = {**again, "RuleNumber": 300}
    assert error_of(ec2.replace_network_acl_entry, **base, **missing)[0] == (
        "InvalidNetworkAclEntry.NotFound"
    )
    assert error_of(
        ec2.delete_network_acl_entry, NetworkAclId=acl_id, RuleNumber=300, Egress=False
    )[0] == ("InvalidNetworkAclEntry.NotFound")
    for number in (0, 32767, 32768):  # the ``*`` rule is immutable
        assert error_of(
            ec2.delete_network_acl_entry, NetworkAclId=acl_id, RuleNumber=number, Egress=True
        )[0] == ("InvalidParameterValue")
        assert error_of(ec2.create_network_acl_entry, **base, **{**again, "RuleNumber": number})[
            0
        ] == ("InvalidParameterValue")
    tcp = {**again, "RuleNumber": 300, "Protocol": "tcp"}
    assert error_of(ec2.create_network_acl_entry, **base, **tcp)[0] == "MissingParameter"
    icmp = {**again, "RuleNumber": 300, "Protocol": "1"}
    assert error_of(ec2.create_network_acl_entry, **base, **icmp)[0] == "MissingParameter"
    for bad in ({"Protocol": "300"}, {"Protocol": "gre"}, {"RuleAction": "maybe"}):
        assert error_of(ec2.create_network_acl_entry, **base, **{**tcp, **bad})[0] == (
            "InvalidParameterValue"
        )
    reversed_ports = {**tcp, "PortRange": {"From": 90, "To": 80}}
    assert error_of(ec2.create_network_acl_entry, **base, **reversed_ports)[0] == (
        "InvalidParameterValue"
    )
    bad_cidr = {**tcp, "PortRange": {"From": 80, "To": 80}, "CidrBlock": "10.0.0.0/33"}
    assert error_of(ec2.create_network_acl_entry, NetworkAclId=acl_id, **bad_cidr)[0] == (
        "InvalidParameterValue"
    )
    ec2.delete_network_acl_entry(NetworkAclId=acl_id, RuleNumber=100, Egress=True)
    assert [e[:2] for e in entries(ec2, acl_id)] == [
        (100, False), (200, False), (32767, False), (32767, True)
    ]  # fmt: skip
    assert error_of(ec2.delete_network_acl, NetworkAclId="acl-nothere")[0] == (
        "InvalidNetworkAclId.Malformed"
    )
    assert error_of(ec2.delete_network_acl, NetworkAclId="acl-0123abcd")[0] == (
        "InvalidNetworkAclID.NotFound"
    )


def test_associations_move_and_deletes_wait(ec2: Any) -> None:
    vpc_id, subnet_id = vpc_and_subnet(ec2, "10.31.0.0/16")
    (default,) = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
        "NetworkAcls"
    ]
    assert default["IsDefault"] is True
    (association,) = default["Associations"]
    assert association["SubnetId"] == subnet_id
    acl_id = ec2.create_network_acl(VpcId=vpc_id)["NetworkAcl"]["NetworkAclId"]
    moved = ec2.replace_network_acl_association(
        AssociationId=association["NetworkAclAssociationId"], NetworkAclId=acl_id
    )["NewAssociationId"]
    assert moved != association["NetworkAclAssociationId"]
    assert acl_of(ec2, acl_id)["Associations"] == [
        {"NetworkAclAssociationId": moved, "NetworkAclId": acl_id, "SubnetId": subnet_id}
    ]
    assert acl_of(ec2, default["NetworkAclId"])["Associations"] == []
    assert error_of(
        ec2.replace_network_acl_association,
        AssociationId=association["NetworkAclAssociationId"],
        NetworkAclId=acl_id,
    )[0] == ("InvalidAssociationID.NotFound")
    assert error_of(ec2.delete_network_acl, NetworkAclId=acl_id)[0] == "DependencyViolation"
    assert error_of(ec2.delete_vpc, VpcId=vpc_id)[0] == "DependencyViolation"
    other_vpc = ec2.create_vpc(CidrBlock="10.32.0.0/16")["Vpc"]["VpcId"]
    elsewhere = ec2.create_network_acl(VpcId=other_vpc)["NetworkAcl"]["NetworkAclId"]
    assert error_of(
        ec2.replace_network_acl_association, AssociationId=moved, NetworkAclId=elsewhere
    )[0] == ("InvalidParameterValue")
    back = ec2.replace_network_acl_association(
        AssociationId=moved, NetworkAclId=default["NetworkAclId"]
    )["NewAssociationId"]
    ec2.delete_network_acl(NetworkAclId=acl_id)
    assert error_of(ec2.delete_network_acl, NetworkAclId=default["NetworkAclId"])[0] == (
        "InvalidParameterValue"
    )
    by_subnet = ec2.describe_network_acls(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}]
    )["NetworkAcls"]
    assert [a["NetworkAclId"] for a in by_subnet] == [default["NetworkAclId"]]
    assert by_subnet[0]["Associations"][0]["NetworkAclAssociationId"] == back
    ec2.delete_subnet(SubnetId=subnet_id)
    ec2.delete_vpc(VpcId=vpc_id)  # the default ACL goes with it


def test_filters_and_the_entry_quota(ec2: Any) -> None:
    vpc_id, _subnet = vpc_and_subnet(ec2, "10.33.0.0/16")
    acl_id = ec2.create_network_acl(VpcId=vpc_id)["NetworkAcl"]["NetworkAclId"]
    ec2.create_tags(Resources=[acl_id], Tags=[{"Key": "tier", "Value": "web"}])
    for number in range(1, 21):
        ec2.create_network_acl_entry(
            NetworkAclId=acl_id, RuleNumber=number, Egress=False, Protocol="6",
            RuleAction="allow", CidrBlock="0.0.0.0/0",
            PortRange={"From": 1000 + number, "To": 1000 + number},
        )  # fmt: skip
    assert error_of(
        ec2.create_network_acl_entry, NetworkAclId=acl_id, RuleNumber=21, Egress=False,
        Protocol="-1", RuleAction="allow", CidrBlock="0.0.0.0/0",
    )[0] == "NetworkAclEntryLimitExceeded"  # fmt: skip
    ec2.create_network_acl_entry(  # the other direction has its own 20
        NetworkAclId=acl_id, RuleNumber=21, Egress=True, Protocol="-1", RuleAction="allow",
        CidrBlock="0.0.0.0/0",
    )  # fmt: skip

    def found(*filters: tuple[str, str]) -> list[str]:
        given = [{"Name": n, "Values": [v]} for n, v in filters] + [
            {"Name": "vpc-id", "Values": [vpc_id]}
        ]
        return [a["NetworkAclId"] for a in ec2.describe_network_acls(Filters=given)["NetworkAcls"]]

    assert found(("entry.port-range.from", "1007")) == [acl_id]
    assert found(("entry.port-range.to", "999")) == []
    assert found(("entry.rule-number", "21"), ("entry.egress", "true")) == [acl_id]
    assert found(("tag:tier", "web")) == [acl_id]
    assert len(found(("default", "true"))) == 1 and found(("default", "false")) == [acl_id]
    assert found(("entry.rule-action", "allow"), ("entry.protocol", "6")) == [acl_id]


def test_another_account_sees_and_touches_nothing(cloud: Karri, ec2: Any) -> None:
    vpc_id, subnet_id = vpc_and_subnet(ec2, "10.34.0.0/16")
    acl_id = ec2.create_network_acl(VpcId=vpc_id)["NetworkAcl"]["NetworkAclId"]
    (default,) = ec2.describe_network_acls(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}]
    )["NetworkAcls"]
    association = default["Associations"][0]["NetworkAclAssociationId"]
    other = fresh_ec2(cloud)
    assert error_of(other.describe_network_acls, NetworkAclIds=[acl_id])[0] == (
        "InvalidNetworkAclID.NotFound"
    )
    assert acl_id not in {a["NetworkAclId"] for a in other.describe_network_acls()["NetworkAcls"]}
    assert error_of(other.delete_network_acl, NetworkAclId=acl_id)[0] == (
        "InvalidNetworkAclID.NotFound"
    )
    assert error_of(
        other.create_network_acl_entry, NetworkAclId=acl_id, RuleNumber=1, Egress=False,
        Protocol="-1", RuleAction="allow", CidrBlock="0.0.0.0/0",
    )[0] == "InvalidNetworkAclID.NotFound"  # fmt: skip
    assert error_of(
        other.delete_network_acl_entry, NetworkAclId=default["NetworkAclId"], RuleNumber=100,
        Egress=False,
    )[0] == "InvalidNetworkAclID.NotFound"  # fmt: skip
    assert error_of(other.create_network_acl, VpcId=vpc_id)[0] == "InvalidVpcID.NotFound"
    theirs = other.create_vpc(CidrBlock="10.34.0.0/16")["Vpc"]["VpcId"]
    their_acl = other.create_network_acl(VpcId=theirs)["NetworkAcl"]["NetworkAclId"]
    assert error_of(
        other.replace_network_acl_association, AssociationId=association, NetworkAclId=their_acl
    )[0] == ("InvalidAssociationID.NotFound")
    assert acl_of(ec2, default["NetworkAclId"])["Associations"][0]["SubnetId"] == subnet_id


def test_entries_through_the_aws_cli(cloud: Karri) -> None:
    creds = cloud.create_account(unique("aclcli").lower())

    def aws(*args: str) -> Any:
        return cloud.aws("ec2", *args, creds=creds)

    vpc_id = aws("create-vpc", "--cidr-block", "10.35.0.0/16")["Vpc"]["VpcId"]
    acl_id = aws("create-network-acl", "--vpc-id", vpc_id)["NetworkAcl"]["NetworkAclId"]
    entry = ("--network-acl-id", acl_id, "--rule-number", "110", "--ingress")
    cloud.aws(
        "ec2", "create-network-acl-entry", *entry, "--protocol", "tcp", "--rule-action",
        "allow", "--cidr-block", "0.0.0.0/0", "--port-range", "From=22,To=22", creds=creds,
    )  # fmt: skip
    (shown,) = aws("describe-network-acls", "--network-acl-ids", acl_id)["NetworkAcls"]
    assert shown["Entries"][0] == {
        "CidrBlock": "0.0.0.0/0", "Egress": False, "PortRange": {"From": 22, "To": 22},
        "Protocol": "6", "RuleAction": "allow", "RuleNumber": 110,
    }  # fmt: skip
    failed = cloud.aws(
        "ec2", "create-network-acl-entry", *entry, "--protocol", "-1", "--rule-action", "deny",
        "--cidr-block", "0.0.0.0/0", creds=creds, check=False,
    )  # fmt: skip
    assert failed.returncode != 0 and "NetworkAclEntryAlreadyExists" in failed.stderr
    cloud.aws("ec2", "delete-network-acl-entry", *entry, creds=creds)
    cloud.aws("ec2", "delete-network-acl", "--network-acl-id", acl_id, creds=creds)
