"""AWS's policy evaluation logic, mostly on the examples of the IAM user guide (karri.policy)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from karri.policy import (
    RESOURCE,
    TRUST,
    Decision,
    Policy,
    Principal,
    PrincipalType,
    Request,
    Resource,
    Verdict,
    authorization_message,
    authorize,
    decisions,
    ec2_arn,
    environment_keys,
    iam_arn,
    parse,
    s3_arn,
    tag_keys,
)
from karri.policy.context import KeyValue

ACCOUNT = "123456789012"
OTHER = "210987654321"
REGION = "us-east-1"
BOB = Principal.user(ACCOUNT, "bob", "AIDABOB")
ROOT = Principal.root(ACCOUNT)


def policy(*statements: dict[str, Any], kind: Any = None, version: str = "2012-10-17") -> Policy:
    text = json.dumps({"Version": version, "Statement": list(statements)})
    return parse(text, kind) if kind is not None else parse(text, name="test")


def ask(
    action: str,
    resource: str | Resource = "*",
    *policies: Policy,
    principal: Principal = BOB,
    keys: dict[str, KeyValue] | None = None,
    session: list[Policy] | None = None,
) -> Decision:
    target = resource if isinstance(resource, Resource) else Resource(resource)
    request = Request(principal, action, (target,), keys or {})
    return authorize(request, list(policies), session=session)


def instance(instance_id: str = "i-1", **tags: str) -> Resource:
    arn = ec2_arn(REGION, ACCOUNT, "instance", instance_id)
    return Resource(arn, tag_keys("aws:ResourceTag", tags))


# ---- the basics: explicit deny, allow, implicit deny


def test_nothing_allows_by_default() -> None:
    decision = ask("ec2:DescribeInstances")
    assert decision.verdict is Verdict.IMPLICIT_DENY
    assert not decision.allowed and not decision.explicit and decision.matched == ()


def test_an_allow_allows_and_names_its_statement() -> None:
    describe = policy(
        {"Sid": "Describe", "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}
    )
    decision = ask("ec2:DescribeInstances", "*", describe)
    assert decision.allowed and decision.explicit
    assert decision.verdict == "allowed"
    (match,) = decision.matched
    assert (match.policy, match.index, match.statement.sid) == (describe, 0, "Describe")
    assert not ask("ec2:RunInstances", "*", describe).allowed


def test_actions_are_case_insensitive() -> None:
    describe = policy({"Effect": "Allow", "Action": "EC2:describe*", "Resource": "*"})
    assert ask("ec2:DescribeInstances", "*", describe).allowed
    assert ask("EC2:DESCRIBEIMAGES", "*", describe).allowed


def test_an_explicit_deny_beats_any_allow_in_any_policy() -> None:
    allow_all = policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
    deny = policy(
        {"Sid": "No", "Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*"}
    )
    decision = ask("ec2:TerminateInstances", instance(), allow_all, deny)
    assert decision.verdict is Verdict.EXPLICIT_DENY and decision.verdict == "explicitDeny"
    assert decision.explicit
    assert [m.statement.sid for m in decision.matched] == ["No"]
    assert ask("ec2:StopInstances", instance(), allow_all, deny).allowed


def test_iam_guide_allow_get_list_deny_reports() -> None:
    statements = policy(
        {
            "Sid": "AllowGetList",
            "Effect": "Allow",
            "Action": ["iam:Get*", "iam:List*"],
            "Resource": "*",
        },
        {"Sid": "DenyReports", "Effect": "Deny", "Action": "iam:*Report", "Resource": "*"},
    )
    assert ask("iam:GetUser", "*", statements).allowed
    assert ask("iam:ListRoles", "*", statements).allowed
    assert ask("iam:CreatePolicy", "*", statements).verdict is Verdict.IMPLICIT_DENY
    assert ask("iam:GetOrganizationsAccessReport", "*", statements).verdict is Verdict.EXPLICIT_DENY
    assert ask("iam:GenerateCredentialReport", "*", statements).verdict is Verdict.EXPLICIT_DENY


def test_iam_guide_carlos_example() -> None:
    """The identity policy denies buckets with "log" in their name; the bucket policy of
    his own bucket names him."""
    carlos = Principal.user(ACCOUNT, "carlossalazar", "AIDACARLOS")
    identity = policy(
        {
            "Sid": "AllowS3ListRead",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation", "s3:ListAllMyBuckets"],
            "Resource": "arn:aws:s3:::*",
        },
        {
            "Sid": "AllowS3Self",
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::carlossalazar/*", "arn:aws:s3:::carlossalazar"],
        },
        {"Sid": "DenyS3Logs", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::*log*"},
    )
    bucket = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/carlossalazar"},
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::carlossalazar/*", "arn:aws:s3:::carlossalazar"],
        },
        kind=RESOURCE,
    )
    logs = Resource(s3_arn("carlossalazar-logs", "f.txt"), policy=bucket)
    refused = ask("s3:PutObject", logs, identity, principal=carlos)
    assert refused.verdict is Verdict.EXPLICIT_DENY
    assert [m.statement.sid for m in refused.matched] == ["DenyS3Logs"]
    own = Resource(s3_arn("carlossalazar", "f.txt"), policy=bucket)
    allowed = ask("s3:PutObject", own, identity, principal=carlos)
    assert allowed.allowed
    assert {m.policy for m in allowed.matched} == {identity, bucket}
    # Either policy alone would do, in the same account.
    assert ask("s3:PutObject", own, principal=carlos).allowed
    assert ask("s3:PutObject", Resource(own.arn), identity, principal=carlos).allowed


# ---- NotAction, NotResource


def test_not_action_allows_all_but_iam() -> None:
    everything_but_iam = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert ask("ec2:RunInstances", "*", everything_but_iam).allowed
    assert ask("s3:GetObject", s3_arn("b", "k"), everything_but_iam).allowed
    assert not ask("iam:CreateUser", "*", everything_but_iam).allowed


def test_deny_with_not_action_refuses_all_else() -> None:
    statements = policy(
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "NotAction": ["iam:ChangePassword", "iam:GetUser"], "Resource": "*"},
    )
    assert ask("iam:ChangePassword", "*", statements).allowed
    assert ask("ec2:RunInstances", "*", statements).verdict is Verdict.EXPLICIT_DENY


def test_not_resource_denies_all_but_the_payroll_folder() -> None:
    statements = policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "NotResource": ["arn:aws:s3:::HRBucket/Payroll", "arn:aws:s3:::HRBucket/Payroll/*"],
        },
    )
    assert ask("s3:GetObject", s3_arn("HRBucket", "Payroll/june.csv"), statements).allowed
    assert ask("s3:ListBucket", s3_arn("HRBucket", "Payroll"), statements).allowed
    other = ask("s3:GetObject", s3_arn("HRBucket", "Other/x"), statements)
    assert other.verdict is Verdict.EXPLICIT_DENY


# ---- resources: ARN patterns and variables


def test_resource_arns_match_per_segment() -> None:
    instances = policy(
        {"Effect": "Allow", "Action": "ec2:StopInstances", "Resource": "arn:aws:ec2:*:*:instance/*"}
    )
    assert ask("ec2:StopInstances", instance(), instances).allowed
    volume = ec2_arn(REGION, ACCOUNT, "volume", "vol-1")
    assert not ask("ec2:StopInstances", volume, instances).allowed
    # An action without resource-level permissions names "*", which only "*" matches.
    assert not ask("ec2:StopInstances", "*", instances).allowed


def test_resource_arns_are_case_sensitive() -> None:
    statements = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::Bucket/*"})
    assert ask("s3:GetObject", s3_arn("Bucket", "k"), statements).allowed
    assert not ask("s3:GetObject", s3_arn("bucket", "k"), statements).allowed


def test_s3_home_folders_with_s3_prefix_and_variables() -> None:
    """The IAM guide's home-directory policy: ListBucket limited by s3:prefix, objects by
    the user's own folder."""
    home = policy(
        {
            "Effect": "Allow",
            "Action": ["s3:ListAllMyBuckets", "s3:GetBucketLocation"],
            "Resource": "arn:aws:s3:::*",
        },
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::BUCKET-NAME",
            "Condition": {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/"]}},
        },
        {
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": [
                "arn:aws:s3:::BUCKET-NAME/home/${aws:username}",
                "arn:aws:s3:::BUCKET-NAME/home/${aws:username}/*",
            ],
        },
    )
    bucket = s3_arn("BUCKET-NAME")
    for prefix, expected in (
        ("", True),
        ("home/", True),
        ("home/bob/", True),
        ("home/alice/", False),
    ):
        assert ask("s3:ListBucket", bucket, home, keys={"s3:prefix": prefix}).allowed is expected
    assert not ask("s3:ListBucket", bucket, home).allowed  # no prefix given
    assert ask("s3:PutObject", s3_arn("BUCKET-NAME", "home/bob/cv.pdf"), home).allowed
    assert not ask("s3:PutObject", s3_arn("BUCKET-NAME", "home/alice/cv.pdf"), home).allowed
    alice = Principal.user(ACCOUNT, "alice", "AIDAALICE")
    assert ask("s3:GetObject", s3_arn("BUCKET-NAME", "home/alice/a"), home, principal=alice).allowed


def test_a_statement_with_an_unfillable_variable_does_not_apply() -> None:
    """The root user has no aws:username: the home-folder Allow is no allow for it, and a
    Deny with such a variable denies nothing."""
    role = Principal.role_session(ACCOUNT, "app", "s1", "AROAAPP")
    own = policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:username}/*"}
    )
    assert not ask("s3:GetObject", s3_arn("b", "app/x"), own, principal=role).allowed
    deny = policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::b/${aws:username}/*"},
    )
    assert ask("s3:GetObject", s3_arn("b", "x"), deny, principal=role).allowed
    assert ask("s3:GetObject", s3_arn("b", "x"), deny).verdict is Verdict.EXPLICIT_DENY
    defaulted = policy(
        {
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": "arn:aws:s3:::b/${aws:username, 'shared'}/*",
        }
    )
    assert ask("s3:GetObject", s3_arn("b", "shared/x"), defaulted, principal=role).allowed


def test_variables_are_text_in_version_2008_policies() -> None:
    old = policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:username}/*"},
        version="2008-10-17",
    )
    assert not ask("s3:GetObject", s3_arn("b", "bob/x"), old).allowed
    assert ask("s3:GetObject", s3_arn("b", "${aws:username}/x"), old).allowed


def test_special_variables_are_literal_characters() -> None:
    star = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${*}"})
    assert ask("s3:GetObject", s3_arn("b", "*"), star).allowed
    assert not ask("s3:GetObject", s3_arn("b", "x"), star).allowed


def test_userid_and_principal_account_variables() -> None:
    statements = policy(
        {
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": "arn:aws:s3:::home-${aws:PrincipalAccount}/${aws:userid}/*",
        }
    )
    assert ask("s3:GetObject", s3_arn(f"home-{ACCOUNT}", "AIDABOB/x"), statements).allowed
    role = Principal.role_session(ACCOUNT, "app", "s1", "AROAAPP")
    key = s3_arn(f"home-{ACCOUNT}", "AROAAPP:s1/x")
    assert ask("s3:GetObject", key, statements, principal=role).allowed


# ---- tags and EC2 conditions


def test_owner_tag_must_be_the_user() -> None:
    """Start and stop only the instances whose Owner tag is your user name."""
    own = policy(
        {
            "Effect": "Allow",
            "Action": ["ec2:StartInstances", "ec2:StopInstances"],
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": {"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}},
        }
    )
    assert ask("ec2:StopInstances", instance(Owner="bob"), own).allowed
    assert not ask("ec2:StopInstances", instance(Owner="alice"), own).allowed
    assert not ask("ec2:StopInstances", instance(), own).allowed


def test_a_deny_on_a_tag_beats_an_allow() -> None:
    statements = policy(
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
        {
            "Sid": "ProtectProd",
            "Effect": "Deny",
            "Action": "ec2:TerminateInstances",
            "Resource": "*",
            "Condition": {"StringEquals": {"ec2:ResourceTag/env": "prod"}},
        },
    )
    prod = instance(**{"env": "prod"})
    prod = Resource(prod.arn, {**prod.keys, **tag_keys("ec2:ResourceTag", {"env": "prod"})})
    decision = ask("ec2:TerminateInstances", prod, statements)
    assert decision.verdict is Verdict.EXPLICIT_DENY
    assert decision.matched[0].statement.sid == "ProtectProd"
    assert ask("ec2:TerminateInstances", instance(env="test"), statements).allowed


def test_run_instances_with_instance_type_if_exists() -> None:
    """The IAM guide: StringLike on ec2:InstanceType fails on the image, key pair…, which
    have no such key; StringLikeIfExists lets them through."""
    image = Resource(ec2_arn(REGION, ACCOUNT, "image", "ami-1"))
    new_instance = Resource(
        ec2_arn(REGION, ACCOUNT, "instance", "*"), {"ec2:InstanceType": "t2.micro"}
    )
    big = Resource(new_instance.arn, {"ec2:InstanceType": "m5.large"})

    def run(operator: str, *resources: Resource) -> Decision:
        statements = policy(
            {
                "Effect": "Allow",
                "Action": "ec2:RunInstances",
                "Resource": "*",
                "Condition": {operator: {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}},
            }
        )
        return authorize(Request(BOB, "ec2:RunInstances", resources), [statements])

    refused = run("StringLike", new_instance, image)
    assert not refused.allowed and refused.resource is image
    assert run("StringLikeIfExists", new_instance, image).allowed
    assert not run("StringLikeIfExists", big, image).allowed


def test_decisions_for_each_resource() -> None:
    statements = policy(
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "arn:aws:ec2:*:*:instance/*"}
    )
    volume = Resource(ec2_arn(REGION, ACCOUNT, "volume", "vol-1"))
    request = Request(BOB, "ec2:AttachVolume", (instance(), volume))
    assert [d.allowed for d in decisions(request, [statements])] == [True, False]
    assert authorize(request, [statements]).resource is volume


def test_tag_keys_on_create() -> None:
    statements = policy(
        {
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": "*",
            "Condition": {
                "ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team"]},
                "StringEqualsIfExists": {"aws:RequestTag/env": ["dev", "test"]},
            },
        }
    )
    tags = {"aws:TagKeys": ["env"], "aws:RequestTag/env": "dev"}
    assert ask("ec2:CreateTags", instance(), statements, keys=tags).allowed
    prod = {"aws:TagKeys": ["env"], "aws:RequestTag/env": "prod"}
    assert not ask("ec2:CreateTags", instance(), statements, keys=prod).allowed
    owner = {"aws:TagKeys": ["env", "owner"], "aws:RequestTag/env": "dev"}
    assert not ask("ec2:CreateTags", instance(), statements, keys=owner).allowed


# ---- global keys of the environment


def test_deny_outside_the_allowed_regions() -> None:
    statements = policy(
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {
            "Effect": "Deny",
            "NotAction": ["iam:*", "sts:*"],
            "Resource": "*",
            "Condition": {
                "StringNotEquals": {"aws:RequestedRegion": ["eu-central-1", "eu-west-1"]}
            },
        },
    )
    assert ask(
        "ec2:RunInstances", "*", statements, keys={"aws:RequestedRegion": "eu-west-1"}
    ).allowed
    refused = ask("ec2:RunInstances", "*", statements, keys={"aws:RequestedRegion": REGION})
    assert refused.verdict is Verdict.EXPLICIT_DENY
    assert ask("iam:GetUser", "*", statements, keys={"aws:RequestedRegion": REGION}).allowed


def test_deny_from_outside_the_office_network() -> None:
    statements = policy(
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]}},
        },
    )
    inside = environment_keys(source_ip="203.0.113.9")
    assert ask("ec2:RunInstances", "*", statements, keys=inside).allowed
    outside = environment_keys(source_ip="198.51.100.1")
    assert not ask("ec2:RunInstances", "*", statements, keys=outside).allowed


def test_deny_without_mfa_if_exists() -> None:
    statements = policy(
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": "ec2:TerminateInstances",
            "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        },
    )
    assert not ask("ec2:TerminateInstances", "*", statements).allowed  # key absent: denied
    with_mfa = {"aws:MultiFactorAuthPresent": True}
    assert ask("ec2:TerminateInstances", "*", statements, keys=with_mfa).allowed


def test_secure_transport_and_time_from_the_environment() -> None:
    statements = policy(
        {
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {
                "Bool": {"aws:SecureTransport": "true"},
                "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"},
            },
        }
    )
    now = datetime(2029, 1, 1, tzinfo=UTC)
    https = environment_keys(now=now, secure_transport=True)
    assert https["aws:CurrentTime"] == "2029-01-01T00:00:00Z"
    assert https["aws:EpochTime"] == str(int(now.timestamp()))
    assert ask("s3:GetObject", "*", statements, keys=https).allowed
    assert not ask("s3:GetObject", "*", statements, keys=environment_keys(now=now)).allowed
    late = environment_keys(now=datetime(2031, 1, 1), secure_transport=True)
    assert not ask("s3:GetObject", "*", statements, keys=late).allowed


def test_temporary_credentials_only_with_null() -> None:
    statements = policy(
        {
            "Effect": "Allow",
            "Action": "ec2:*",
            "Resource": "*",
            "Condition": {"Null": {"aws:TokenIssueTime": "true"}},
        }
    )
    assert ask("ec2:RunInstances", "*", statements).allowed
    issued = environment_keys(token_issue_time=datetime(2029, 1, 1, tzinfo=UTC))
    assert not ask("ec2:RunInstances", "*", statements, keys=issued).allowed


def test_principal_keys() -> None:
    assert BOB.condition_keys() == {
        "aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:user/bob",
        "aws:PrincipalAccount": ACCOUNT,
        "aws:PrincipalType": "User",
        "aws:userid": "AIDABOB",
        "aws:username": "bob",
    }
    session = Principal.role_session(
        ACCOUNT, "app", "s1", "AROAAPP", path="/svc/", tags={"team": "a"}
    )
    assert session.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/app/s1"
    assert session.condition_keys() == {
        "aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/svc/app",
        "aws:PrincipalAccount": ACCOUNT,
        "aws:PrincipalType": "AssumedRole",
        "aws:userid": "AROAAPP:s1",
        "aws:PrincipalTag/team": "a",
    }
    assert ROOT.condition_keys()["aws:userid"] == ACCOUNT
    assert ROOT.condition_keys()["aws:PrincipalType"] == "Account"
    assert "aws:username" not in ROOT.condition_keys()
    assert Principal.anonymous().condition_keys() == {"aws:PrincipalType": "Anonymous"}


def test_principal_tags_as_conditions() -> None:
    statements = policy(
        {
            "Effect": "Allow",
            "Action": "ec2:*",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}},
        }
    )
    tagged = Principal.user(ACCOUNT, "carol", "AIDACAROL", tags={"team": "blue"})
    assert ask("ec2:StopInstances", instance(team="blue"), statements, principal=tagged).allowed
    assert not ask("ec2:StopInstances", instance(team="red"), statements, principal=tagged).allowed
    assert not ask("ec2:StopInstances", instance(team="blue"), statements).allowed  # untagged


# ---- the root user, anonymous callers


def test_the_root_user_may_do_anything_in_its_account_but_an_explicit_deny() -> None:
    assert ask("ec2:RunInstances", "*", principal=ROOT).allowed
    assert ask("s3:GetObject", Resource(s3_arn("b", "k"), account=ACCOUNT), principal=ROOT).allowed
    deny = policy(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": "*"},
        kind=RESOURCE,
    )
    bucket = Resource(s3_arn("b"), account=ACCOUNT, policy=deny)
    assert ask("s3:DeleteBucket", bucket, principal=ROOT).verdict is Verdict.EXPLICIT_DENY


def test_another_accounts_root_needs_the_resource_policy() -> None:
    other_root = Principal.root(OTHER)
    bucket = s3_arn("b", "k")
    assert not ask("s3:GetObject", Resource(bucket, account=ACCOUNT), principal=other_root).allowed
    grant = policy(
        {"Effect": "Allow", "Principal": {"AWS": OTHER}, "Action": "s3:GetObject", "Resource": "*"},
        kind=RESOURCE,
    )
    shared = Resource(bucket, account=ACCOUNT, policy=grant)
    assert ask("s3:GetObject", shared, principal=other_root).allowed


def test_anonymous_callers_only_through_a_public_resource_policy() -> None:
    anonymous = Principal.anonymous()
    assert anonymous.type is PrincipalType.ANONYMOUS
    public = policy(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::web/*",
        },
        kind=RESOURCE,
    )
    page = Resource(s3_arn("web", "index.html"), account=ACCOUNT, policy=public)
    assert ask("s3:GetObject", page, principal=anonymous).allowed
    assert not ask("s3:PutObject", page, principal=anonymous).allowed
    private = policy(
        {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "s3:*", "Resource": "*"},
        kind=RESOURCE,
    )
    closed = Resource(page.arn, account=ACCOUNT, policy=private)
    assert not ask("s3:GetObject", closed, principal=anonymous).allowed


# ---- resource-based policies, within and across accounts


def bucket_policy(principal: Any, action: str = "s3:GetObject", effect: str = "Allow") -> Policy:
    return policy(
        {
            "Effect": effect,
            "Principal": principal,
            "Action": action,
            "Resource": "arn:aws:s3:::b/*",
        },
        kind=RESOURCE,
    )


READ_ALL = policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})


def test_same_account_a_resource_policy_naming_the_user_is_enough() -> None:
    named = Resource(s3_arn("b", "k"), account=ACCOUNT, policy=bucket_policy({"AWS": BOB.arn}))
    decision = ask("s3:GetObject", named)
    assert decision.allowed and decision.matched[0].policy is named.policy


def test_same_account_a_resource_policy_naming_the_account_delegates_to_iam() -> None:
    delegated = bucket_policy({"AWS": f"arn:aws:iam::{ACCOUNT}:root"})
    key = Resource(s3_arn("b", "k"), account=ACCOUNT, policy=delegated)
    assert not ask("s3:GetObject", key).allowed
    assert ask("s3:GetObject", key, READ_ALL).allowed


def test_a_deny_in_the_resource_policy_applies_to_whom_it_names() -> None:
    deny_bob = bucket_policy({"AWS": BOB.arn}, effect="Deny")
    key = Resource(s3_arn("b", "k"), account=ACCOUNT, policy=deny_bob)
    assert ask("s3:GetObject", key, READ_ALL).verdict is Verdict.EXPLICIT_DENY
    alice = Principal.user(ACCOUNT, "alice", "AIDAALICE")
    assert ask("s3:GetObject", key, READ_ALL, principal=alice).allowed


def test_not_principal_denies_everyone_else() -> None:
    only_bob = policy(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "NotPrincipal": {"AWS": BOB.arn}, "Action": "s3:*", "Resource": "*"},
        kind=RESOURCE,
    )
    key = Resource(s3_arn("b", "k"), account=ACCOUNT, policy=only_bob)
    assert ask("s3:GetObject", key).allowed
    alice = Principal.user(ACCOUNT, "alice", "AIDAALICE")
    assert ask("s3:GetObject", key, READ_ALL, principal=alice).verdict is Verdict.EXPLICIT_DENY


@pytest.mark.parametrize(
    ("bucket_grants", "identity_allows", "expected"),
    [
        (True, True, True),
        (True, False, False),  # the caller's account did not allow it
        (False, True, False),  # the bucket's account did not allow it
        (False, False, False),
    ],
)
def test_across_accounts_both_sides_must_allow(
    bucket_grants: bool, identity_allows: bool, expected: bool
) -> None:
    stranger = Principal.user(OTHER, "eve", "AIDAEVE")
    grant = bucket_policy({"AWS": OTHER if bucket_grants else ACCOUNT})
    key = Resource(s3_arn("b", "k"), account=ACCOUNT, policy=grant)
    identity = [READ_ALL] if identity_allows else []
    assert ask("s3:GetObject", key, *identity, principal=stranger).allowed is expected


def test_across_accounts_a_grant_to_the_user_still_needs_its_own_policies() -> None:
    stranger = Principal.user(OTHER, "eve", "AIDAEVE")
    key = Resource(s3_arn("b", "k"), account=ACCOUNT, policy=bucket_policy({"AWS": stranger.arn}))
    assert not ask("s3:GetObject", key, principal=stranger).allowed
    assert ask("s3:GetObject", key, READ_ALL, principal=stranger).allowed
    without_policy = Resource(key.arn, account=ACCOUNT)
    assert not ask("s3:GetObject", without_policy, READ_ALL, principal=stranger).allowed


# ---- role sessions and session policies


SESSION = Principal.role_session(ACCOUNT, "app", "s1", "AROAAPP")


def test_session_policies_intersect_with_the_roles_policies() -> None:
    role_policy = policy({"Effect": "Allow", "Action": ["s3:*", "ec2:*"], "Resource": "*"})
    session_policy = policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    key = s3_arn("b", "k")
    assert ask(
        "s3:GetObject", key, role_policy, principal=SESSION, session=[session_policy]
    ).allowed
    assert not ask(
        "s3:PutObject", key, role_policy, principal=SESSION, session=[session_policy]
    ).allowed
    # The session policy grants nothing the role does not have.
    assert not ask("s3:GetObject", key, principal=SESSION, session=[session_policy]).allowed
    # Without session policies the role's own apply.
    assert ask("s3:PutObject", key, role_policy, principal=SESSION).allowed


def test_a_deny_in_a_session_policy_denies() -> None:
    role_policy = policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
    session_policy = policy(
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*"},
    )
    decision = ask(
        "ec2:TerminateInstances", "*", role_policy, principal=SESSION, session=[session_policy]
    )
    assert decision.verdict is Verdict.EXPLICIT_DENY


def test_a_resource_policy_naming_the_session_is_not_limited_by_session_policies() -> None:
    nothing = policy({"Effect": "Allow", "Action": "ec2:DescribeImages", "Resource": "*"})
    by_session = Resource(
        s3_arn("b", "k"), account=ACCOUNT, policy=bucket_policy({"AWS": SESSION.arn})
    )
    assert ask("s3:GetObject", by_session, principal=SESSION, session=[nothing]).allowed
    role_arn = iam_arn(ACCOUNT, "role", "app")
    by_role = Resource(by_session.arn, account=ACCOUNT, policy=bucket_policy({"AWS": role_arn}))
    assert ask("s3:GetObject", by_role, principal=SESSION).allowed
    assert not ask("s3:GetObject", by_role, principal=SESSION, session=[nothing]).allowed


# ---- trust policies (AssumeRole)


def trust(*statements: dict[str, Any]) -> Policy:
    return policy(*statements, kind=TRUST)


def assume(role: Resource, *identity: Policy, principal: Principal = BOB, **keys: str) -> Decision:
    return authorize(Request(principal, "sts:AssumeRole", (role,), keys), list(identity))


ASSUME_ANY = policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"})


def role(trust_policy: Policy, account: str = ACCOUNT) -> Resource:
    return Resource(
        iam_arn(account, "role", "r"), account=account, policy=trust_policy, policy_must_grant=True
    )


def test_a_trust_policy_must_name_the_caller_even_in_its_account() -> None:
    other = trust({"Effect": "Allow", "Principal": {"AWS": OTHER}, "Action": "sts:AssumeRole"})
    assert not assume(role(other), ASSUME_ANY).allowed
    own = trust({"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"})
    assert assume(role(own), ASSUME_ANY).allowed
    assert not assume(role(own)).allowed  # naming the account delegates to its policies
    named = trust({"Effect": "Allow", "Principal": {"AWS": BOB.arn}, "Action": "sts:AssumeRole"})
    assert assume(role(named)).allowed


def test_assume_role_across_accounts_with_an_external_id() -> None:
    stranger = Principal.user(OTHER, "eve", "AIDAEVE")
    guarded = trust(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "Unique1"}},
        }
    )
    target = role(guarded)
    assert assume(target, ASSUME_ANY, principal=stranger, **{"sts:ExternalId": "Unique1"}).allowed
    assert not assume(target, ASSUME_ANY, principal=stranger).allowed
    assert not assume(target, ASSUME_ANY, principal=stranger, **{"sts:ExternalId": "x"}).allowed
    # Its own account must let the user assume roles.
    assert not assume(target, principal=stranger, **{"sts:ExternalId": "Unique1"}).allowed


def test_a_service_assumes_a_role_its_trust_policy_names() -> None:
    ec2 = Principal.aws_service("ec2.amazonaws.com")
    service_trust = trust(
        {
            "Effect": "Allow",
            "Principal": {"Service": ["ec2.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }
    )
    assert assume(role(service_trust), principal=ec2).allowed
    lambda_only = trust(
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    )
    assert not assume(role(lambda_only), principal=ec2).allowed


# ---- EC2's authorization message


def test_the_authorization_message_of_an_explicit_deny() -> None:
    statements = policy(
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
        {
            "Sid": "NoBig",
            "Effect": "Deny",
            "Action": "ec2:RunInstances",
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": {
                "StringLike": {"ec2:InstanceType": ["m5.*", "c5.*"]},
                "Bool": {"aws:x": True},
            },
        },
    )
    target = Resource(ec2_arn(REGION, ACCOUNT, "instance", "*"), {"ec2:InstanceType": "m5.large"})
    keys = {"aws:RequestedRegion": REGION, "aws:x": True}
    decision = ask("ec2:RunInstances", target, statements, keys=keys)
    assert authorization_message(decision) == {
        "allowed": False,
        "explicitDeny": True,
        "matchedStatements": {
            "items": [
                {
                    "statementId": "NoBig",
                    "effect": "DENY",
                    "principals": {"items": [{"value": "AIDABOB"}]},
                    "principalGroups": {"items": []},
                    "actions": {"items": [{"value": "ec2:RunInstances"}]},
                    "resources": {"items": [{"value": "arn:aws:ec2:*:*:instance/*"}]},
                    "conditions": {
                        "items": [
                            {
                                "key": "ec2:InstanceType",
                                "values": {"items": [{"value": "m5.*"}, {"value": "c5.*"}]},
                            },
                            {"key": "aws:x", "values": {"items": [{"value": "true"}]}},
                        ]
                    },
                }
            ]
        },
        "failures": {"items": []},
        "context": {
            "principal": {"id": "AIDABOB", "name": "bob", "arn": BOB.arn},
            "action": "ec2:RunInstances",
            "resource": target.arn,
            "conditions": {
                "items": [
                    {"key": key, "values": {"items": [{"value": value}]}}
                    for key, value in [
                        ("aws:PrincipalAccount", ACCOUNT),
                        ("aws:PrincipalArn", BOB.arn),
                        ("aws:PrincipalType", "User"),
                        ("aws:RequestedRegion", REGION),
                        ("aws:userid", "AIDABOB"),
                        ("aws:username", "bob"),
                        ("aws:x", "true"),
                        ("ec2:InstanceType", "m5.large"),
                    ]
                ]
            },
        },
    }


def test_the_authorization_message_of_an_implicit_deny_of_a_role_session() -> None:
    message = authorization_message(ask("ec2:RunInstances", "*", principal=SESSION))
    assert (message["allowed"], message["explicitDeny"]) == (False, False)
    assert message["matchedStatements"] == {"items": []}
    assert message["context"]["principal"] == {"id": "AROAAPP:s1", "arn": SESSION.arn}
    not_action = policy({"Effect": "Deny", "NotAction": "s3:*", "NotResource": "arn:aws:s3:::b"})
    denied = authorization_message(ask("ec2:RunInstances", "*", not_action, principal=SESSION))
    (statement,) = denied["matchedStatements"]["items"]
    assert statement["principals"] == {"items": [{"value": "AROAAPP"}]}
    assert statement["notActions"] == {"items": [{"value": "s3:*"}]}
    assert statement["notResources"] == {"items": [{"value": "arn:aws:s3:::b"}]}
    assert statement["statementId"] == ""


def test_a_canonical_user_names_an_account() -> None:
    canonical = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
    grant = bucket_policy({"CanonicalUser": canonical})
    key = Resource(s3_arn("b", "k"), account=ACCOUNT, policy=grant)
    stranger = Principal(PrincipalType.USER, "arn:aws:iam::210987654321:user/eve", OTHER, "AIDAEVE")
    assert not ask("s3:GetObject", key, READ_ALL, principal=stranger).allowed
    known = Principal(
        PrincipalType.USER, stranger.arn, OTHER, "AIDAEVE", "eve", canonical_id=canonical
    )
    assert ask("s3:GetObject", key, READ_ALL, principal=known).allowed
    assert not ask("s3:GetObject", key, principal=known).allowed  # a delegation to the account


def test_a_policy_remembers_the_statements_of_each_action_within_bounds() -> None:
    statements = policy(
        {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
        {"Effect": "Deny", "NotAction": "ec2:*", "Resource": "*"},
    )
    assert [i for i, _ in statements.statements_for("ec2:describeimages")] == [0]
    assert [i for i, _ in statements.statements_for("s3:getobject")] == [1]
    for n in range(5000):
        statements.statements_for(f"svc:action{n}")
    assert len(statements._by_action) <= 4096
    assert ask("ec2:DescribeImages", "*", statements).allowed
    assert ask("s3:GetObject", "*", statements).verdict is Verdict.EXPLICIT_DENY
