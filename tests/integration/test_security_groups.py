"""Security groups over the wire (boto3 and the AWS CLI) against a real karri: every
action, the filters, AWS's errors, the default group, and isolation between accounts.
No guest boots: ModifyInstanceAttribute runs against a cloud with the fake node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Creds, Karri, start_karri
from tests.integration.ec2_wire import error_of, unique
from tests.integration.guests import end_cloud, tiny_image, wait_state


def _one(ec2: Any, group_id: str) -> dict[str, Any]:
    return ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def _named(ec2: Any, name: str) -> str:
    return ec2.create_security_group(GroupName=name, Description=f"{name} group")["GroupId"]


def _ids(answer: dict[str, Any]) -> set[str]:
    return {g["GroupId"] for g in answer["SecurityGroups"]}


def test_default_group_and_a_new_group(ec2: Any) -> None:
    (default,) = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"]
    assert default["VpcId"].startswith("vpc-")
    assert default["IpPermissions"] == [
        {
            "IpProtocol": "-1",
            "IpRanges": [],
            "Ipv6Ranges": [],
            "PrefixListIds": [],
            "UserIdGroupPairs": [{"GroupId": default["GroupId"], "UserId": default["OwnerId"]}],
        }
    ]
    assert default["IpPermissionsEgress"][0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    name = unique("web")
    created = ec2.create_security_group(
        GroupName=name,
        Description="Web servers",
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": "t", "Value": "1"}]}
        ],
    )
    assert created["Tags"] == [{"Key": "t", "Value": "1"}]
    group = _one(ec2, created["GroupId"])
    assert (group["GroupName"], group["VpcId"], group["IpPermissions"]) == (
        name,
        default["VpcId"],
        [],
    )
    assert group["IpPermissionsEgress"][0]["IpProtocol"] == "-1"
    assert error_of(ec2.create_security_group, GroupName=name, Description="x") == (
        "InvalidGroup.Duplicate",
        400,
    )
    for bad in ("default", "sg-1", "x" * 256, "caf\u00e9"):
        assert error_of(ec2.create_security_group, GroupName=bad, Description="d")[0] == (
            "InvalidParameterValue"
        )
    assert (
        error_of(
            ec2.create_security_group, GroupName=unique("v"), Description="d", VpcId="vpc-12345678"
        )[0]
        == "InvalidVpcID.NotFound"
    )
    assert error_of(ec2.delete_security_group, GroupId=default["GroupId"])[0] == "CannotDelete"
    assert ec2.delete_security_group(GroupName=name)["GroupId"] == created["GroupId"]
    assert error_of(ec2.delete_security_group, GroupId=created["GroupId"])[0] == (
        "InvalidGroup.NotFound"
    )
    assert error_of(ec2.describe_security_groups, GroupIds=["sg-nothex"])[0] == (
        "InvalidGroupId.Malformed"
    )


def test_authorize_describe_revoke(ec2: Any) -> None:
    web, app = _named(ec2, unique("web")), _named(ec2, unique("app"))
    answer = ec2.authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 80,
                "ToPort": 80,
                "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "http"}],
                "Ipv6Ranges": [{"CidrIpv6": "::/0"}],
            },
            {
                "IpProtocol": "tcp",
                "FromPort": 8080,
                "ToPort": 8080,
                "UserIdGroupPairs": [{"GroupId": app}],
            },
            {
                "IpProtocol": "icmp",
                "FromPort": 8,
                "ToPort": -1,
                "IpRanges": [{"CidrIp": "10.0.0.0/8"}],
            },
        ],
        TagSpecifications=[
            {"ResourceType": "security-group-rule", "Tags": [{"Key": "r", "Value": "x"}]}
        ],
    )
    assert answer["Return"] is True and len(answer["SecurityGroupRules"]) == 4
    assert all(r["Tags"] == [{"Key": "r", "Value": "x"}] for r in answer["SecurityGroupRules"])
    # the old flat form of ingress
    ec2.authorize_security_group_ingress(
        GroupId=web, IpProtocol="udp", FromPort=53, ToPort=53, CidrIp="192.168.0.0/16"
    )
    group = _one(ec2, web)
    http = group["IpPermissions"][0]
    assert http["IpRanges"] == [{"CidrIp": "0.0.0.0/0", "Description": "http"}]
    assert http["Ipv6Ranges"] == [{"CidrIpv6": "::/0"}]
    assert [p["IpProtocol"] for p in group["IpPermissions"]] == ["tcp", "tcp", "icmp", "udp"]
    assert group["IpPermissions"][1]["UserIdGroupPairs"][0]["GroupId"] == app

    errors = [
        (
            {
                "IpProtocol": "tcp",
                "FromPort": 80,
                "ToPort": 80,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            },
            "InvalidPermission.Duplicate",
        ),
        (
            {
                "IpProtocol": "tcp",
                "FromPort": 90,
                "ToPort": 70,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            },
            "InvalidParameterValue",
        ),
        ({"IpProtocol": "bogus", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}, "InvalidParameterValue"),
        (
            {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "IpRanges": [{"CidrIp": "1.2.3/99"}]},
            "InvalidParameterValue",
        ),
        ({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1}, "InvalidPermission.Malformed"),
        (
            {
                "IpProtocol": "tcp",
                "FromPort": 1,
                "ToPort": 1,
                "UserIdGroupPairs": [{"GroupId": "sg-0000dead"}],
            },
            "InvalidGroup.NotFound",
        ),
        (
            {
                "IpProtocol": "tcp",
                "FromPort": 1,
                "ToPort": 1,
                "PrefixListIds": [{"PrefixListId": "pl-0000beef"}],
            },
            "InvalidPrefixListId.NotFound",  # karri has no prefix lists
        ),
    ]
    for permission, code in errors:
        assert (
            error_of(ec2.authorize_security_group_ingress, GroupId=web, IpPermissions=[permission])[
                0
            ]
            == code
        ), permission

    # egress: revoke the all-traffic rule, add one
    ec2.revoke_security_group_egress(
        GroupId=web, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    ec2.authorize_security_group_egress(
        GroupId=web,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )
    assert _one(ec2, web)["IpPermissionsEgress"][0]["FromPort"] == 443

    # revoke: a miss in the default VPC is answered, not refused
    revoked = ec2.revoke_security_group_ingress(
        GroupId=web,
        IpPermissions=[
            {
                "IpProtocol": "udp",
                "FromPort": 53,
                "ToPort": 53,
                "IpRanges": [{"CidrIp": "192.168.0.0/16"}],
            },
            {
                "IpProtocol": "tcp",
                "FromPort": 1,
                "ToPort": 1,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            },
        ],
    )
    assert len(revoked["RevokedSecurityGroupRules"]) == 1
    assert revoked["UnknownIpPermissions"][0]["FromPort"] == 1
    assert (
        error_of(
            ec2.revoke_security_group_ingress, GroupId=web, SecurityGroupRuleIds=["sgr-0000dead"]
        )[0]
        == "InvalidSecurityGroupRuleId.NotFound"
    )

    # referenced: the group cannot go
    assert error_of(ec2.delete_security_group, GroupId=app)[0] == "DependencyViolation"


def test_rules_by_id_modify_descriptions_and_tags(ec2: Any) -> None:
    web = _named(ec2, unique("web"))
    (rule,) = ec2.authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "1.2.3.4/32"}],
            }
        ],
    )["SecurityGroupRules"]
    rule_id = rule["SecurityGroupRuleId"]
    listed = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [web]}])
    assert {r["SecurityGroupRuleId"] for r in listed["SecurityGroupRules"]} >= {rule_id}
    assert len(listed["SecurityGroupRules"]) == 2  # and the all-egress rule
    ec2.modify_security_group_rules(
        GroupId=web,
        SecurityGroupRules=[
            {
                "SecurityGroupRuleId": rule_id,
                "SecurityGroupRule": {
                    "IpProtocol": "tcp",
                    "FromPort": 2222,
                    "ToPort": 2222,
                    "CidrIpv4": "5.6.7.8/32",
                    "Description": "ssh",
                },
            }
        ],
    )
    (changed,) = ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule_id])[
        "SecurityGroupRules"
    ]
    assert (changed["FromPort"], changed["CidrIpv4"], changed["Description"]) == (
        2222,
        "5.6.7.8/32",
        "ssh",
    )
    ec2.update_security_group_rule_descriptions_ingress(
        GroupId=web,
        SecurityGroupRuleDescriptions=[{"SecurityGroupRuleId": rule_id, "Description": "admin"}],
    )
    ec2.create_tags(Resources=[web, rule_id], Tags=[{"Key": "env", "Value": "prod"}])
    tagged = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["env"]}])["Tags"]
    assert {(t["ResourceId"], t["ResourceType"]) for t in tagged} >= {
        (web, "security-group"),
        (rule_id, "security-group-rule"),
    }
    by_tag = ec2.describe_security_group_rules(Filters=[{"Name": "tag:env", "Values": ["prod"]}])
    assert [r["SecurityGroupRuleId"] for r in by_tag["SecurityGroupRules"]] == [rule_id]
    assert by_tag["SecurityGroupRules"][0]["Description"] == "admin"
    ec2.delete_tags(Resources=[rule_id])
    assert error_of(ec2.create_tags, Resources=["sgr-0000dead"], Tags=[{"Key": "a"}])[0] == (
        "InvalidSecurityGroupRuleId.NotFound"
    )
    ec2.revoke_security_group_ingress(GroupId=web, SecurityGroupRuleIds=[rule_id])
    assert error_of(ec2.describe_security_group_rules, SecurityGroupRuleIds=[rule_id])[0] == (
        "InvalidSecurityGroupRuleId.NotFound"
    )


def test_filters_and_pagination(karri: Karri, ec2: Any) -> None:
    mark = unique("flt")
    ids = [_named(ec2, f"{mark}-{n}") for n in range(7)]
    ec2.authorize_security_group_ingress(
        GroupId=ids[0],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 5432,
                "ToPort": 5433,
                "IpRanges": [{"CidrIp": "172.16.0.0/12"}],
                "UserIdGroupPairs": [{"GroupId": ids[1]}],
            }
        ],
    )
    ec2.create_tags(Resources=[ids[2]], Tags=[{"Key": "role", "Value": mark}])
    first = ec2.describe_security_groups(GroupIds=ids[:1])["SecurityGroups"][0]

    def found(name: str, *values: str) -> set[str]:
        answer = ec2.describe_security_groups(Filters=[{"Name": name, "Values": list(values)}])
        return _ids(answer) & set(ids)

    assert found("group-name", f"{mark}-*") == set(ids)
    assert found("description", f"{mark}-3 group") == {ids[3]}
    assert found("group-id", ids[4]) == {ids[4]}
    assert found("ip-permission.cidr", "172.16.0.0/12") == {ids[0]}
    assert found("ip-permission.from-port", "5432") == {ids[0]}
    assert found("ip-permission.to-port", "5433") == {ids[0]}
    assert found("ip-permission.protocol", "tcp") == {ids[0]}
    assert found("ip-permission.group-id", ids[1]) == {ids[0]}
    assert found("ip-permission.group-name", f"{mark}-1") == {ids[0]}
    assert found("ip-permission.user-id", first["OwnerId"]) == {ids[0]}
    assert found("ip-permission.ipv6-cidr", "::/0") == set()
    assert found("ip-permission.prefix-list-id", "pl-12345678") == set()
    assert found("egress.ip-permission.cidr", "0.0.0.0/0") == set(ids)
    assert found("egress.ip-permission.protocol", "-1") == set(ids)
    assert found("owner-id", first["OwnerId"]) == set(ids)
    assert found("vpc-id", first["VpcId"]) == set(ids)
    assert found("tag:role", mark) == {ids[2]}
    assert found("tag-key", "role") >= {ids[2]}
    assert (
        error_of(ec2.describe_security_groups, Filters=[{"Name": "nonsense", "Values": ["x"]}])[0]
        == "InvalidParameterValue"
    )

    seen: list[str] = []
    kwargs: dict[str, Any] = {
        "Filters": [{"Name": "group-name", "Values": [f"{mark}-*"]}],
        "MaxResults": 5,
    }
    while True:
        page = ec2.describe_security_groups(**kwargs)
        seen += [g["GroupId"] for g in page["SecurityGroups"]]
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    assert sorted(seen) == sorted(ids)
    unchecked = karri.client("ec2", parameter_validation=False)
    assert error_of(unchecked.describe_security_groups, MaxResults=4)[0] == (
        "InvalidParameterValue"
    )
    rules = ec2.describe_security_group_rules(MaxResults=5)
    assert len(rules["SecurityGroupRules"]) == 5 and rules["NextToken"]


def test_accounts_are_isolated(karri: Karri, ec2: Any, other_account: Creds) -> None:
    bob = karri.client("ec2", other_account)
    mine = _named(ec2, unique("mine"))
    (bobs_default,) = bob.describe_security_groups()["SecurityGroups"]
    assert bobs_default["GroupName"] == "default" and bobs_default["GroupId"] != mine
    assert error_of(bob.describe_security_groups, GroupIds=[mine])[0] == "InvalidGroup.NotFound"
    assert error_of(bob.delete_security_group, GroupId=mine)[0] == "InvalidGroup.NotFound"
    permission = {
        "IpProtocol": "tcp",
        "FromPort": 1,
        "ToPort": 1,
        "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
    }
    assert (
        error_of(bob.authorize_security_group_ingress, GroupId=mine, IpPermissions=[permission])[0]
        == "InvalidGroup.NotFound"
    )
    assert error_of(bob.create_tags, Resources=[mine], Tags=[{"Key": "a"}])[0] == (
        "InvalidGroup.NotFound"
    )
    # nor reference it, with or without its owner
    for pair in ({"GroupId": mine}, {"GroupId": mine, "UserId": karri.admin.account_id}):
        assert (
            error_of(
                bob.authorize_security_group_ingress,
                GroupId=bobs_default["GroupId"],
                IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [pair]}],
            )[0]
            == "InvalidGroup.NotFound"
        )
    assert (
        error_of(
            bob.create_security_group,
            GroupName="x",
            Description="x",
            VpcId=_one(ec2, mine)["VpcId"],
        )[0]
        == "InvalidVpcID.NotFound"
    )


def test_aws_cli(karri: Karri) -> None:
    name = unique("cli")
    group_id = karri.aws(
        "ec2", "create-security-group", "--group-name", name, "--description", "from the CLI"
    )["GroupId"]
    karri.aws(
        "ec2",
        "authorize-security-group-ingress",
        "--group-id",
        group_id,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        "203.0.113.0/24",
    )
    karri.aws(
        "ec2",
        "authorize-security-group-ingress",
        "--group-name",
        name,
        "--ip-permissions",
        "IpProtocol=tcp,FromPort=80,ToPort=80,IpRanges=[{CidrIp=0.0.0.0/0}]",
    )
    (group,) = karri.aws("ec2", "describe-security-groups", "--group-ids", group_id)[
        "SecurityGroups"
    ]
    assert [(p["FromPort"], p["IpRanges"][0]["CidrIp"]) for p in group["IpPermissions"]] == [
        (22, "203.0.113.0/24"),
        (80, "0.0.0.0/0"),
    ]
    karri.aws("ec2", "delete-security-group", "--group-id", group_id)


@pytest.fixture(scope="module")
def fake_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("sg") / "data", "--node-driver", "fake")
    try:
        yield karri
    finally:
        end_cloud(karri)


def test_instances_use_real_groups(fake_cloud: Karri) -> None:
    ec2 = fake_cloud.client("ec2")
    image_id = tiny_image(fake_cloud, ec2)
    web, db = _named(ec2, "web"), _named(ec2, "db")
    run = {"ImageId": image_id, "MinCount": 1, "MaxCount": 1, "InstanceType": "t1.micro"}
    assert error_of(ec2.run_instances, **run, SecurityGroups=["nope"])[0] == (
        "InvalidGroup.NotFound"
    )
    assert error_of(ec2.run_instances, **run, SecurityGroupIds=["sg-bad"])[0] == (
        "InvalidGroupId.Malformed"
    )
    instance_id = ec2.run_instances(**run, SecurityGroups=["web"])["Instances"][0]["InstanceId"]
    wait_state(ec2, instance_id, "running")
    assert error_of(ec2.delete_security_group, GroupId=web)[0] == "DependencyViolation"
    ec2.modify_instance_attribute(InstanceId=instance_id, Groups=[db, web])
    groups = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="groupSet")
    assert [g["GroupId"] for g in groups["Groups"]] == [db, web]
    described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]
    assert [g["GroupName"] for g in described["Instances"][0]["SecurityGroups"]] == ["db", "web"]
    assert (
        error_of(ec2.modify_instance_attribute, InstanceId=instance_id, Groups=["sg-0000dead"])[0]
        == "InvalidGroup.NotFound"
    )
    ec2.modify_instance_attribute(InstanceId=instance_id, Groups=[db])
    ec2.delete_security_group(GroupId=web)
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated")
    ec2.delete_security_group(GroupId=db)
