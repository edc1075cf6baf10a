"""IAM's List* calls page as AWS's do (``MaxItems``, ``Marker``, ``IsTruncated``): boto3's
paginators walk every page and find what one big page holds; a bad marker is refused."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Creds, Karri
from tests.integration.ec2_wire import error_of, unique
from tests.integration.iam import TRUST_EC2, policy

ALLOW = policy({"Effect": "Allow", "Action": "ec2:DescribeRegions", "Resource": "*"})


@pytest.fixture(scope="module")
def account(karri: Karri) -> Creds:
    return karri.create_account(unique("iampages").lower())


def walked(iam: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    """Every item of a listing through boto3's paginator, two at a time; the same items as
    one page of 1,000, and more than one page when there are more than two."""
    pages = list(iam.get_paginator(operation).paginate(PaginationConfig={"PageSize": 2}, **kwargs))
    items = [item for page in pages for item in page[key]]
    whole = getattr(iam, operation)(MaxItems=1000, **kwargs)
    assert whole["IsTruncated"] is False and "Marker" not in whole
    assert items == whole[key]
    assert len(pages) == max(1, (len(items) + 1) // 2)
    assert all(page["IsTruncated"] for page in pages[:-1]) and not pages[-1]["IsTruncated"]
    return items


def test_every_listing_walks_page_by_page(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    users = [unique("pu") for _ in range(5)]
    for name in users:
        iam.create_user(UserName=name)
    first = users[0]
    assert [u["UserName"] for u in walked(iam, "list_users", "Users")] == sorted(
        users, key=str.lower
    )
    keys = [iam.create_access_key(UserName=first)["AccessKey"]["AccessKeyId"] for _ in range(2)]
    assert sorted(
        k["AccessKeyId"]
        for k in walked(iam, "list_access_keys", "AccessKeyMetadata", UserName=first)
    ) == sorted(keys)
    arns = []
    for i in range(5):
        arn = iam.create_policy(PolicyName=unique(f"pp{i}"), PolicyDocument=ALLOW)["Policy"]["Arn"]
        arns.append(arn)
        if i < 3:
            iam.attach_user_policy(UserName=first, PolicyArn=arn)
    local = walked(iam, "list_policies", "Policies", Scope="Local")
    assert sorted(p["Arn"] for p in local) == sorted(arns)
    attached = walked(iam, "list_policies", "Policies", Scope="Local", OnlyAttached=True)
    assert sorted(p["Arn"] for p in attached) == sorted(arns[:3])
    every = walked(iam, "list_policies", "Policies")  # with AWS's own
    assert set(arns) < {p["Arn"] for p in every}
    assert sorted(
        p["PolicyArn"]
        for p in walked(iam, "list_attached_user_policies", "AttachedPolicies", UserName=first)
    ) == sorted(arns[:3])
    for i in range(3):
        iam.put_user_policy(UserName=first, PolicyName=f"inline{i}", PolicyDocument=ALLOW)
    assert walked(iam, "list_user_policies", "PolicyNames", UserName=first) == [
        "inline0",
        "inline1",
        "inline2",
    ]
    groups = [unique("pg") for _ in range(3)]
    for group in groups:
        iam.create_group(GroupName=group)
        iam.add_user_to_group(GroupName=group, UserName=first)
        iam.attach_group_policy(GroupName=group, PolicyArn=arns[0])
    assert [
        g["GroupName"] for g in walked(iam, "list_groups_for_user", "Groups", UserName=first)
    ] == sorted(groups, key=str.lower)
    for user in users[1:]:
        iam.add_user_to_group(GroupName=groups[0], UserName=user)
    members = walked(iam, "get_group", "Users", GroupName=groups[0])
    assert sorted(u["UserName"] for u in members) == sorted(users)
    roles = [unique("pr") for _ in range(3)]
    for role in roles:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST_EC2)
        iam.attach_role_policy(RoleName=role, PolicyArn=arns[0])
        iam.create_instance_profile(InstanceProfileName=role)
    assert [r["RoleName"] for r in walked(iam, "list_roles", "Roles")] == sorted(
        roles, key=str.lower
    )
    profiles = walked(iam, "list_instance_profiles", "InstanceProfiles")
    assert [p["InstanceProfileName"] for p in profiles] == sorted(roles, key=str.lower)
    # ListEntitiesForPolicy pages over users, groups and roles together
    pages = list(
        iam.get_paginator("list_entities_for_policy").paginate(
            PolicyArn=arns[0], PaginationConfig={"PageSize": 2}
        )
    )
    assert len(pages) == 4  # 1 user, 3 groups, 3 roles
    found = {
        (kind, item[f"{kind[6:-1]}Name"])
        for page in pages
        for kind in ("PolicyUsers", "PolicyGroups", "PolicyRoles")
        for item in page[kind]
    }
    assert found == {("PolicyUsers", first)} | {("PolicyGroups", g) for g in groups} | {
        ("PolicyRoles", r) for r in roles
    }
    for _ in range(4):
        iam.create_policy_version(PolicyArn=arns[0], PolicyDocument=ALLOW)
    versions = walked(iam, "list_policy_versions", "Versions", PolicyArn=arns[0])
    assert [v["VersionId"] for v in versions] == ["v1", "v2", "v3", "v4", "v5"]


def test_a_page_continues_after_its_marker_despite_changes(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    prefix = f"/{unique('churn')}/"
    names = [f"c{i}" + unique("") for i in range(4)]
    for name in names:
        iam.create_role(RoleName=name, Path=prefix, AssumeRolePolicyDocument=TRUST_EC2)
    first = iam.list_roles(PathPrefix=prefix, MaxItems=2)
    assert first["IsTruncated"] and [r["RoleName"] for r in first["Roles"]] == names[:2]
    iam.delete_role(RoleName=names[0])
    rest = iam.list_roles(PathPrefix=prefix, MaxItems=2, Marker=first["Marker"])
    assert [r["RoleName"] for r in rest["Roles"]] == names[2:] and not rest["IsTruncated"]


def test_a_bad_or_foreign_marker_or_max_items_is_refused(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    for i in range(2):
        iam.create_user(UserName=unique(f"m{i}"))
    marker = iam.list_users(MaxItems=1)["Marker"]
    assert error_of(iam.list_roles, Marker=marker) == ("ValidationError", 400)
    assert error_of(iam.list_users, Marker="not a marker of ours") == ("ValidationError", 400)
    unchecked = karri.client("iam", account, parameter_validation=False)
    assert error_of(unchecked.list_users, MaxItems=0) == ("ValidationError", 400)
    assert error_of(unchecked.list_users, MaxItems=1001) == ("ValidationError", 400)
