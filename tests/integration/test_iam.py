"""IAM (Euare) against a real `karri up`, with boto3 and the AWS CLI: users and their keys,
groups, policies, roles, instance profiles, IAM's errors, isolation between accounts."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.conftest import Creds, Karri
from tests.integration.ec2_wire import error_of, unique
from tests.integration.iam import TRUST_EC2, user_creds

ALLOW_GET_USER = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}],
    }
)


@pytest.fixture(scope="module")
def account(karri: Karri) -> Creds:
    """An account of this module's own, so its counts are its own."""
    return karri.create_account(unique("iam").lower())


def test_a_user_with_keys_is_who_sts_says(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    name = unique("alice")
    creds, key = user_creds(karri, account, name)
    assert key["AccessKeyId"].startswith("AKIA") and key["Status"] == "Active"
    user = iam.get_user(UserName=name)["User"]
    assert user["UserId"].startswith("AIDA")
    assert user["Arn"] == f"arn:aws:iam::{account.account_id}:user/{name}"
    identity = karri.client("sts", creds).get_caller_identity()
    assert (identity["UserId"], identity["Account"], identity["Arn"]) == (
        user["UserId"],
        account.account_id,
        user["Arn"],
    )
    used = last_used(iam, key["AccessKeyId"])
    assert used["UserName"] == name
    assert used["AccessKeyLastUsed"]["ServiceName"] == "sts"
    assert "LastUsedDate" in used["AccessKeyLastUsed"]
    # the key is known to EC2 too: authenticated, then refused, since no policy allows
    assert error_of(karri.client("ec2", creds).describe_regions)[0] == "UnauthorizedOperation"
    # the secret is shown once
    listed = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]]
    assert "SecretAccessKey" not in listed[0]


def last_used(iam: Any, key_id: str) -> dict[str, Any]:
    """GetAccessKeyLastUsed once the key's use is recorded (off the request path)."""
    for _ in range(100):
        used = iam.get_access_key_last_used(AccessKeyId=key_id)
        if "LastUsedDate" in used["AccessKeyLastUsed"]:
            return used
        time.sleep(0.1)
    return used


def test_a_keys_use_on_ec2_and_s3_is_recorded(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    for service in ("ec2", "s3"):
        creds, key = user_creds(karri, account, unique(f"used-{service}"))
        before = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])
        assert before["AccessKeyLastUsed"] == {"ServiceName": "N/A", "Region": "N/A"}
        if service == "ec2":
            error_of(karri.client("ec2", creds).describe_regions)  # refused: used all the same
        else:
            error_of(karri.client("s3", creds).list_buckets)
        used = last_used(iam, key["AccessKeyId"])["AccessKeyLastUsed"]
        assert (used["ServiceName"], used["Region"]) == (service, karri.region)
        assert used["LastUsedDate"] >= key["CreateDate"]


def test_a_deleted_or_inactive_key_stops_working_at_once(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    name = unique("bob")
    creds, key = user_creds(karri, account, name)
    iam.attach_user_policy(UserName=name, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    sts, ec2 = karri.client("sts", creds), karri.client("ec2", creds)
    s3 = karri.client("s3", creds)
    sts.get_caller_identity()
    ec2.describe_regions()
    s3.list_buckets()
    iam.update_access_key(UserName=name, AccessKeyId=key["AccessKeyId"], Status="Inactive")
    assert error_of(sts.get_caller_identity) == ("InvalidClientTokenId", 403)
    assert error_of(ec2.describe_regions) == ("AuthFailure", 401)
    assert error_of(s3.list_buckets) == ("InvalidAccessKeyId", 403)
    iam.update_access_key(UserName=name, AccessKeyId=key["AccessKeyId"], Status="Active")
    sts.get_caller_identity()
    iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    assert error_of(sts.get_caller_identity) == ("InvalidClientTokenId", 403)
    assert error_of(ec2.describe_regions) == ("AuthFailure", 401)
    assert error_of(s3.list_buckets) == ("InvalidAccessKeyId", 403)


def test_a_users_policy_decides_its_iam_calls(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    name = unique("carol")
    creds, _ = user_creds(karri, account, name)
    as_user = karri.client("iam", creds)
    assert error_of(as_user.get_user) == ("AccessDenied", 403)
    group = unique("readers")
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=name)
    iam.put_group_policy(GroupName=group, PolicyName="get", PolicyDocument=ALLOW_GET_USER)
    assert as_user.get_user()["User"]["UserName"] == name  # no name: the caller
    assert error_of(as_user.list_users) == ("AccessDenied", 403)
    iam.attach_user_policy(UserName=name, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert name in [u["UserName"] for u in as_user.list_users()["Users"]]
    assert error_of(as_user.create_user, UserName=unique("x")) == ("AccessDenied", 403)


def test_managed_policies_versions_and_attachments(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    user, role = unique("dave"), unique("app")
    iam.create_user(UserName=user)
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST_EC2, MaxSessionDuration=7200)
    arn = iam.create_policy(PolicyName=unique("p"), PolicyDocument=ALLOW_GET_USER)["Policy"]["Arn"]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["PolicyId"].startswith("ANPA")
    v2 = iam.create_policy_version(PolicyArn=arn, PolicyDocument=ALLOW_GET_USER, SetAsDefault=True)
    assert v2["PolicyVersion"]["VersionId"] == "v2"
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v2"
    document = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]["Document"]
    assert document == json.loads(ALLOW_GET_USER)
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    entities = iam.list_entities_for_policy(PolicyArn=arn)
    assert [u["UserName"] for u in entities["PolicyUsers"]] == [user]
    assert [r["RoleName"] for r in entities["PolicyRoles"]] == [role]
    assert error_of(iam.delete_policy, PolicyArn=arn) == ("DeleteConflict", 409)
    assert error_of(iam.delete_policy_version, PolicyArn=arn, VersionId="v2") == (
        "DeleteConflict",
        409,
    )
    got = iam.get_role(RoleName=role)["Role"]
    assert got["RoleId"].startswith("AROA") and got["MaxSessionDuration"] == 7200
    assert got["AssumeRolePolicyDocument"] == json.loads(TRUST_EC2)


def test_instance_profiles(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    role, profile = unique("web"), unique("web-profile")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST_EC2)
    made = iam.create_instance_profile(InstanceProfileName=profile)["InstanceProfile"]
    assert made["InstanceProfileId"].startswith("AIPA") and made["Roles"] == []
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    got = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]
    assert [r["RoleName"] for r in got["Roles"]] == [role]
    for_role = iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"]
    assert [p["InstanceProfileName"] for p in for_role] == [profile]
    assert error_of(iam.delete_role, RoleName=role) == ("DeleteConflict", 409)
    assert (
        error_of(iam.add_role_to_instance_profile, InstanceProfileName=profile, RoleName=role)[0]
        == "LimitExceeded"
    )
    iam.remove_role_from_instance_profile(InstanceProfileName=profile, RoleName=role)
    iam.delete_instance_profile(InstanceProfileName=profile)
    iam.delete_role(RoleName=role)


def test_iams_errors(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    name = unique("erin")
    iam.create_user(UserName=name)
    assert error_of(iam.get_user, UserName=unique("nobody")) == ("NoSuchEntity", 404)
    assert error_of(iam.create_user, UserName=name.upper()) == ("EntityAlreadyExists", 409)
    assert error_of(iam.create_user, UserName="bad name!") == ("ValidationError", 400)
    iam.create_access_key(UserName=name)
    iam.create_access_key(UserName=name)
    assert error_of(iam.create_access_key, UserName=name) == ("LimitExceeded", 409)
    assert error_of(iam.delete_user, UserName=name) == ("DeleteConflict", 409)
    assert error_of(
        iam.put_user_policy, UserName=name, PolicyName="p", PolicyDocument="{not json"
    ) == ("MalformedPolicyDocument", 400)
    big = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": f"ec2:Describe{i:04}", "Resource": "*"}
                for i in range(60)
            ],
        }
    )
    assert error_of(iam.put_user_policy, UserName=name, PolicyName="p", PolicyDocument=big) == (
        "LimitExceeded",
        409,
    )
    assert error_of(iam.get_policy, PolicyArn="not-an-arn-of-any-kind-at-all") == (
        "InvalidInput",
        400,
    )


def test_account_summary_and_alias(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    summary = iam.get_account_summary()["SummaryMap"]
    assert summary["Users"] == len(iam.list_users()["Users"])
    alias = unique("acme").lower()
    iam.create_account_alias(AccountAlias=alias)
    assert iam.list_account_aliases()["AccountAliases"] == [alias]
    other = karri.create_account(unique("other").lower())
    assert error_of(karri.client("iam", other).create_account_alias, AccountAlias=alias) == (
        "EntityAlreadyExists",
        409,
    )


def test_nothing_of_one_accounts_iam_is_visible_to_another(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    name = unique("frank")
    iam.create_user(UserName=name)
    arn = iam.create_policy(PolicyName=unique("mine"), PolicyDocument=ALLOW_GET_USER)["Policy"][
        "Arn"
    ]
    other = karri.client("iam", karri.create_account(unique("stranger").lower()))
    assert other.list_users()["Users"] == []
    assert error_of(other.get_user, UserName=name) == ("NoSuchEntity", 404)
    assert error_of(other.get_policy, PolicyArn=arn) == ("NoSuchEntity", 404)
    other.create_user(UserName=name)  # the same name is free there
    assert error_of(other.attach_user_policy, UserName=name, PolicyArn=arn) == (
        "NoSuchEntity",
        404,
    )
    assert [p["Arn"] for p in other.list_policies(Scope="Local")["Policies"]] == []


def test_the_aws_cli_finds_iam_through_karrirc(karri: Karri, account: Creds) -> None:
    name = unique("cli")
    made = karri.aws("iam", "create-user", "--user-name", name, creds=account)
    assert made["User"]["UserName"] == name
    users = karri.aws("iam", "list-users", creds=account)["Users"]
    assert name in [u["UserName"] for u in users]
    rc = (karri.data_dir / "karrirc").read_text()
    assert f"AWS_ENDPOINT_URL_IAM={karri.ec2_url}/services/Euare" in rc
    assert f"AWS_ENDPOINT_URL_STS={karri.ec2_url}/services/Tokens" in rc


def test_the_policy_simulator(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    name = unique("sim")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    iam.put_user_policy(UserName=name, PolicyName="get", PolicyDocument=ALLOW_GET_USER)
    results = iam.simulate_principal_policy(
        PolicySourceArn=arn, ActionNames=["iam:GetUser", "iam:CreateUser"]
    )["EvaluationResults"]
    assert [(r["EvalActionName"], r["EvalDecision"]) for r in results] == [
        ("iam:GetUser", "allowed"),
        ("iam:CreateUser", "implicitDeny"),
    ]
    deny = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Action": "ec2:*",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:RequestedRegion": "far"}},
                }
            ],
        }
    )
    custom = iam.simulate_custom_policy(
        PolicyInputList=[deny],
        ActionNames=["ec2:RunInstances"],
        ContextEntries=[
            {
                "ContextKeyName": "aws:RequestedRegion",
                "ContextKeyValues": ["far"],
                "ContextKeyType": "string",
            }
        ],
    )["EvaluationResults"]
    assert custom[0]["EvalDecision"] == "explicitDeny"
    assert custom[0]["MatchedStatements"][0]["SourcePolicyId"] == "PolicyInputList.1"


def test_login_profiles(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    name = unique("console")
    iam.create_user(UserName=name)
    assert error_of(iam.get_login_profile, UserName=name) == ("NoSuchEntity", 404)
    assert error_of(iam.create_login_profile, UserName=name, Password="short")[0] == (
        "PasswordPolicyViolation"
    )
    made = iam.create_login_profile(
        UserName=name, Password="Str0ng-enough", PasswordResetRequired=True
    )
    assert made["LoginProfile"]["PasswordResetRequired"] is True
    assert error_of(iam.create_login_profile, UserName=name, Password="Str0ng-enough") == (
        "EntityAlreadyExists",
        409,
    )
    iam.update_login_profile(UserName=name, PasswordResetRequired=False)
    assert iam.get_login_profile(UserName=name)["LoginProfile"]["PasswordResetRequired"] is False
    assert error_of(iam.delete_user, UserName=name) == ("DeleteConflict", 409)
    iam.delete_login_profile(UserName=name)
    iam.delete_user(UserName=name)


def test_root_keys_through_iam(karri: Karri) -> None:
    """With root credentials and no UserName the key calls act on the account's root keys,
    as on AWS; even the last may go (AWS allows it), except the admin account's."""
    name = unique("rootkeys").lower()
    root = karri.create_account(name)
    iam = karri.client("iam", root)
    (listed,) = iam.list_access_keys()["AccessKeyMetadata"]
    assert (listed["AccessKeyId"], listed["Status"]) == (root.access_key_id, "Active")
    assert "UserName" not in listed
    new = iam.create_access_key()["AccessKey"]
    assert error_of(iam.create_access_key) == ("LimitExceeded", 409)
    second = Creds(root.account_id, name, new["AccessKeyId"], new["SecretAccessKey"])
    identity = karri.client("sts", second).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:iam::{root.account_id}:root"
    iam = karri.client("iam", second)
    iam.update_access_key(AccessKeyId=root.access_key_id, Status="Inactive")
    assert error_of(karri.client("ec2", root).describe_regions)[0] == "AuthFailure"
    statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys()["AccessKeyMetadata"]}
    assert statuses == {root.access_key_id: "Inactive", second.access_key_id: "Active"}
    iam.delete_access_key(AccessKeyId=root.access_key_id)
    assert karri.cli("account", "credentials", name, "-o", str(karri.data_dir / "x.rc"))
    iam.delete_access_key(AccessKeyId=second.access_key_id)  # the last one
    refused = error_of(karri.client("sts", second).get_caller_identity)
    assert refused == ("InvalidClientTokenId", 403)
    out = karri.cli("account", "credentials", name, check=False)
    assert out.returncode != 0 and "no active access key" in out.stdout + out.stderr
    # the admin account keeps a way in
    admin = karri.client("iam")
    key = karri.admin.access_key_id
    assert error_of(admin.delete_access_key, AccessKeyId=key) == ("DeleteConflict", 409)
    refused = error_of(admin.update_access_key, AccessKeyId=key, Status="Inactive")
    assert refused == ("DeleteConflict", 409)
    # another account's root key is not this account's to touch
    other = karri.client("iam", karri.create_account(unique("rootkeys2").lower()))
    assert error_of(other.delete_access_key, AccessKeyId=key) == ("NoSuchEntity", 404)


def test_role_and_user_tags(karri: Karri, account: Creds) -> None:
    """What Terraform's aws_iam_role and aws_iam_user call to keep tags."""
    iam = karri.client("iam", account)
    role, user = unique("tagged"), unique("tagged")
    iam.create_role(
        RoleName=role, AssumeRolePolicyDocument=TRUST_EC2, Tags=[{"Key": "a", "Value": "1"}]
    )
    iam.create_user(UserName=user)
    for kind, name in (("role", role), ("user", user)):
        word = kind.capitalize()
        getattr(iam, f"tag_{kind}")(
            **{f"{word}Name": name},
            Tags=[{"Key": "b", "Value": "2"}, {"Key": "c", "Value": "3"}],
        )
        getattr(iam, f"untag_{kind}")(**{f"{word}Name": name}, TagKeys=["c"])
        tags = getattr(iam, f"list_{kind}_tags")(**{f"{word}Name": name})["Tags"]
        assert {t["Key"]: t["Value"] for t in tags} == (
            {"a": "1", "b": "2"} if kind == "role" else {"b": "2"}
        )
    assert {t["Key"] for t in iam.get_role(RoleName=role)["Role"]["Tags"]} == {"a", "b"}
    too_many = [{"Key": f"k{i}", "Value": ""} for i in range(50)]
    assert error_of(iam.tag_role, RoleName=role, Tags=too_many) == ("LimitExceeded", 409)
    assert error_of(iam.list_role_tags, RoleName=unique("none")) == ("NoSuchEntity", 404)
    described = iam.update_role_description(RoleName=role, Description="for tests")["Role"]
    assert described["Description"] == "for tests"


def test_update_group(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    old, new, user = unique("grp"), unique("grp"), unique("member")
    iam.create_group(GroupName=old)
    iam.create_user(UserName=user)
    iam.add_user_to_group(GroupName=old, UserName=user)
    iam.update_group(GroupName=old, NewGroupName=new, NewPath="/team/")
    group = iam.get_group(GroupName=new)
    assert group["Group"]["Path"] == "/team/"
    assert [u["UserName"] for u in group["Users"]] == [user]
    assert error_of(iam.get_group, GroupName=old) == ("NoSuchEntity", 404)
    iam.create_group(GroupName=old)
    assert error_of(iam.update_group, GroupName=old, NewGroupName=new) == (
        "EntityAlreadyExists",
        409,
    )


def test_account_authorization_details(karri: Karri) -> None:
    """Everything of the account with its policies, walked two at a time across lists."""
    creds = karri.create_account(unique("details").lower())
    iam = karri.client("iam", creds)
    user, group, role = unique("u"), unique("g"), unique("r")
    iam.create_user(UserName=user)
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="inline", PolicyDocument=ALLOW_GET_USER)
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST_EC2)
    iam.create_instance_profile(InstanceProfileName=role)
    iam.add_role_to_instance_profile(InstanceProfileName=role, RoleName=role)
    arn = iam.create_policy(PolicyName=unique("p"), PolicyDocument=ALLOW_GET_USER)["Policy"]["Arn"]
    iam.attach_group_policy(GroupName=group, PolicyArn=arn)
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    pages = list(
        iam.get_paginator("get_account_authorization_details").paginate(
            PaginationConfig={"PageSize": 2}
        )
    )
    assert len(pages) == 3
    every: dict[str, list] = {}
    for page in pages:
        for key in ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies"):
            every.setdefault(key, []).extend(page.get(key, []))
    (u,) = every["UserDetailList"]
    assert (u["UserName"], u["GroupList"]) == (user, [group])
    assert u["UserPolicyList"][0]["PolicyDocument"] == json.loads(ALLOW_GET_USER)
    (g,) = every["GroupDetailList"]
    assert g["AttachedManagedPolicies"][0]["PolicyArn"] == arn
    (r,) = every["RoleDetailList"]
    assert [p["InstanceProfileName"] for p in r["InstanceProfileList"]] == [role]
    assert sorted(p["Arn"] for p in every["Policies"]) == sorted(
        [arn, "arn:aws:iam::aws:policy/ReadOnlyAccess"]
    )
    only = iam.get_account_authorization_details(Filter=["Role"])
    assert [x["RoleName"] for x in only["RoleDetailList"]] == [role]
    assert "UserDetailList" not in only or only["UserDetailList"] == []
    refused = error_of(iam.get_account_authorization_details, Filter=["Everything"])
    assert refused == ("ValidationError", 400)


def _tags(listing: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in listing}


def test_policy_and_instance_profile_tags(karri: Karri, account: Creds) -> None:
    """Tags given at creation, changed by Tag*/Untag*, shown by Get* and List*Tags; AWS's
    rules on keys, values and counts; AWS's own policies refuse them."""
    iam = karri.client("iam", account)
    first = [{"Key": "a", "Value": "1"}]
    policy = iam.create_policy(
        PolicyName=unique("tagged"), PolicyDocument=ALLOW_GET_USER, Tags=first
    )["Policy"]
    assert _tags(policy["Tags"]) == {"a": "1"}
    profile = unique("tagged")
    made = iam.create_instance_profile(InstanceProfileName=profile, Tags=first)
    assert _tags(made["InstanceProfile"]["Tags"]) == {"a": "1"}
    arn = policy["Arn"]
    iam.tag_policy(PolicyArn=arn, Tags=[{"Key": "b", "Value": "2"}, {"Key": "c", "Value": ""}])
    iam.untag_policy(PolicyArn=arn, TagKeys=["a"])
    assert _tags(iam.list_policy_tags(PolicyArn=arn)["Tags"]) == {"b": "2", "c": ""}
    assert _tags(iam.get_policy(PolicyArn=arn)["Policy"]["Tags"]) == {"b": "2", "c": ""}
    iam.tag_instance_profile(InstanceProfileName=profile, Tags=[{"Key": "a", "Value": "9"}])
    iam.untag_instance_profile(InstanceProfileName=profile, TagKeys=["nothing"])
    got = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]
    assert _tags(got["Tags"]) == {"a": "9"}
    listed = iam.list_instance_profile_tags(InstanceProfileName=profile)["Tags"]
    assert _tags(listed) == {"a": "9"}

    too_many = [{"Key": f"k{i}", "Value": ""} for i in range(50)]
    assert error_of(iam.tag_policy, PolicyArn=arn, Tags=too_many) == ("LimitExceeded", 409)
    assert error_of(
        iam.tag_instance_profile, InstanceProfileName=profile, Tags=[{"Key": "aws:x", "Value": ""}]
    ) == ("InvalidInput", 400)
    long_value = [{"Key": "k", "Value": "v" * 257}]
    assert error_of(iam.tag_policy, PolicyArn=arn, Tags=long_value)[1] == 400
    assert error_of(
        iam.create_instance_profile, InstanceProfileName=unique("p"), Tags=too_many + first
    ) == ("LimitExceeded", 409)
    assert _tags(iam.list_policy_tags(PolicyArn=arn)["Tags"]) == {"b": "2", "c": ""}
    builtin = "arn:aws:iam::aws:policy/ReadOnlyAccess"
    assert error_of(iam.tag_policy, PolicyArn=builtin, Tags=first) == ("InvalidInput", 400)
    missing = arn.rsplit("/", 1)[0] + "/" + unique("none")
    assert error_of(iam.list_policy_tags, PolicyArn=missing) == ("NoSuchEntity", 404)
    assert error_of(
        iam.untag_instance_profile, InstanceProfileName=unique("none"), TagKeys=["a"]
    ) == ("NoSuchEntity", 404)
    listed_policies = iam.list_policies(Scope="Local")["Policies"]
    assert all("Tags" not in p for p in listed_policies)
