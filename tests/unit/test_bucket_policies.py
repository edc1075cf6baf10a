"""Bucket policies without a cloud: S3's checks on the document, what counts as public,
and how `S3Authorization` weighs a bucket's policy with the caller's own and the public
access block (fakes for IAM and Walrus)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from karri import policy
from karri.api.auth.credentials import Principal
from karri.api.s3.auth import Identity, Payload
from karri.api.s3.authorize import S3Authorization, block_in_force
from karri.api.s3.bucket_policy import check_document
from karri.api.s3.context import Access
from karri.api.s3.public_access import PublicAccessBlock
from karri.walrus import BucketInfo, S3Error, acls
from tests.unit.test_s3_authorization import ACCOUNT, FakePolicies, FakeWalrus, request, statement

OTHER = "210987654321"
BUCKET = "photos"


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def grant(principal: Any, action: Any = "s3:GetObject", resource: str = "photos/*", **extra):
    return {
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
        "Resource": f"arn:aws:s3:::{resource}",
        **extra,
    }


def not_principal(effect: str) -> dict[str, Any]:
    found = {**grant("*"), "Effect": effect, "NotPrincipal": {"AWS": OTHER}}
    del found["Principal"]
    return found


# -- the document ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", "This policy contains invalid Json"),
        ("[]", "Policies must be valid JSON and the first byte must be '{'"),
        (document(grant("*", resource="other/*")), "Policy has invalid resource"),
        (document(grant("*", resource="photosx/*")), "Policy has invalid resource"),
        (document(grant("*", action="iam:GetUser")), "Policy has invalid action"),
        (document(grant({"AWS": "nobody"})), 'Invalid principal in policy: "AWS":"nobody"'),
        (
            document(not_principal("Allow")),
            "Invalid principal in policy: NotPrincipal is only supported with Deny",
        ),
    ],
)
def test_malformed_documents(text: str, message: str) -> None:
    with pytest.raises(S3Error) as raised:
        check_document(text, BUCKET)
    assert (raised.value.code, raised.value.status, raised.value.message) == (
        "MalformedPolicy",
        400,
        message,
    )


def test_valid_documents() -> None:
    principals = [
        "*",
        {"AWS": "*"},
        {"AWS": OTHER},
        {"AWS": f"arn:aws:iam::{OTHER}:root"},
        {"AWS": f"arn:aws:iam::{OTHER}:user/bob"},
        {"AWS": f"arn:aws:iam::{OTHER}:role/reader"},
    ]
    for principal in principals:
        check_document(document(grant(principal)), BUCKET)
    check_document(document(grant("*", "s3:ListBucket", resource=BUCKET)), BUCKET)
    check_document(document(not_principal("Deny")), BUCKET)


@pytest.mark.parametrize(
    ("condition", "public"),
    [
        (None, True),
        ({"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}, False),
        ({"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "0.0.0.0/0"]}}, True),
        ({"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}, True),
        ({"StringEquals": {"aws:SourceVpc": "vpc-12345678"}}, False),
        ({"StringLike": {"aws:SourceVpc": "vpc-*"}}, True),
        ({"StringEqualsIfExists": {"aws:SourceAccount": OTHER}}, True),
        ({"StringEquals": {"aws:PrincipalAccount": OTHER}}, False),
        ({"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:210987654321:t"}}, False),
        ({"StringEquals": {"s3:prefix": "home/"}}, True),
        ({"Bool": {"aws:SecureTransport": "true"}}, True),
    ],
)
def test_what_is_public(condition: dict | None, public: bool) -> None:
    extra = {"Condition": condition} if condition else {}
    compiled = policy.parse(document(grant("*", **extra)), policy.RESOURCE)
    assert policy.is_public(compiled) is public


def test_named_principals_and_denies_are_not_public() -> None:
    for entry in (grant({"AWS": OTHER}), {**grant("*"), "Effect": "Deny"}):
        assert not policy.is_public(policy.parse(document(entry), policy.RESOURCE))


# -- the evaluation ---------------------------------------------------------------------


def bucket(text: str | None, *, owner: str = ACCOUNT, block: dict | None = None) -> BucketInfo:
    configs: dict[str, Any] = {}
    if text is not None:
        configs["policy"] = text
    if block is not None:
        configs["public-access-block"] = block
    return BucketInfo(BUCKET, owner, "", "", datetime.now(UTC), acls.private(owner), None, configs)


def judged(
    info: BucketInfo,
    identity: policy.Principal | None,
    *,
    account: str = ACCOUNT,
    source: FakePolicies | None = None,
    method: str = "GET",
    key: str = "a.jpg",
    operation: str = "GetObject",
    header: dict[str, str] | None = None,
) -> Access:
    """The request's Access after ``check`` (S3Error when refused); ``identity`` None
    with an ``account`` is that account's root, without one an anonymous caller."""
    call = request(method, BUCKET, key, walrus=FakeWalrus(buckets={BUCKET: info}), header=header)
    if identity is None and account == "":
        call.identity = Identity("", "", Payload())
    else:
        principal = Principal("AKIA", account, "acct", identity)
        call.identity = Identity(account, "AKIA", Payload(), "acct", principal)
    S3Authorization(source or FakePolicies()).check(call, operation)
    return call.access


def refused(*args: Any, **kwargs: Any) -> S3Error:
    with pytest.raises(S3Error) as raised:
        judged(*args, **kwargs)
    assert (raised.value.code, raised.value.status) == ("AccessDenied", 403)
    return raised.value


ALICE = policy.Principal.user(ACCOUNT, "alice", "AIDAALICE")
BOB = policy.Principal.user(OTHER, "bob", "AIDABOB")


def test_anonymous_callers_are_let_in_by_a_grant_to_everyone() -> None:
    info = bucket(document(grant("*")))
    assert judged(info, None, account="").by_policy
    # a call the policy does not grant goes on to the ACLs
    access = judged(info, None, account="", method="PUT", operation="PutObject")
    assert not access.by_policy and access.owner == ACCOUNT


def test_a_grant_to_another_account_needs_its_users_own_allow() -> None:
    info = bucket(document(grant({"AWS": OTHER}, resource="photos/shared/*")))
    assert judged(info, None, account=OTHER, key="shared/a").by_policy  # its root
    assert not judged(info, None, account=OTHER, key="private/a").by_policy  # ACLs decide
    refused(info, BOB, account=OTHER, key="shared/a")
    allowed = FakePolicies(statement("s3:GetObject"))
    assert judged(info, BOB, account=OTHER, key="shared/a", source=allowed).by_policy


def test_within_the_account_either_side_allows() -> None:
    info = bucket(document(grant({"AWS": ALICE.arn})))
    assert judged(info, ALICE).by_policy  # no identity policy needed
    refused(bucket(document(grant({"AWS": OTHER}))), ALICE)
    assert not judged(
        bucket(document(grant({"AWS": OTHER}))),
        ALICE,
        source=FakePolicies(statement("s3:GetObject")),
    ).by_policy


def test_a_deny_stops_everyone_but_the_owners_root_on_the_policy_itself() -> None:
    deny = {
        **grant("*", "s3:*"),
        "Effect": "Deny",
        "Resource": ["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"],
    }
    info = bucket(document(deny))
    everything = FakePolicies(statement("s3:*"))
    error = refused(info, ALICE, source=everything)
    assert "explicit deny in a resource-based policy" in error.message
    refused(info, None)  # the owner's root
    refused(info, None, account="")  # anonymous
    judged(info, None, method="GET", key="", operation="GetBucketPolicy")
    judged(info, None, method="DELETE", key="", operation="DeleteBucketPolicy")
    refused(info, None, account=OTHER, method="DELETE", key="", operation="DeleteBucketPolicy")


def test_restrict_public_buckets_keeps_a_public_policy_to_the_owners_account() -> None:
    block = PublicAccessBlock(RestrictPublicBuckets=True).stored()
    info = bucket(document(grant("*")), block=block)
    assert not judged(info, None, account="").by_policy
    assert not judged(info, None, account=OTHER).by_policy
    assert judged(info, ALICE).by_policy
    named = bucket(document(grant({"AWS": OTHER})), block=block)
    assert judged(named, None, account=OTHER).by_policy  # not public: not restricted


def test_the_account_block_joins_the_buckets() -> None:
    info = bucket(None)
    walrus = FakeWalrus(accounts={ACCOUNT: {"public-access-block": {"IgnorePublicAcls": True}}})
    assert block_in_force(walrus, info) == PublicAccessBlock(IgnorePublicAcls=True)  # type: ignore[arg-type]
    both = bucket(None, block={"BlockPublicAcls": True})
    assert block_in_force(walrus, both) == PublicAccessBlock(True, True, False, False)  # type: ignore[arg-type]


# -- the ACL checks that follow ---------------------------------------------------------


def test_a_policy_grant_covers_the_bucket_owners_objects_only() -> None:
    access = Access(owner=ACCOUNT, by_policy=True)
    assert access.allows(acls.private(ACCOUNT), OTHER, acls.READ)
    assert not access.allows(acls.private("333333333333"), OTHER, acls.READ)
    assert access.allows(acls.private(ACCOUNT), OTHER, None)  # an owner-only call


def test_public_acls_ignored_and_blocked() -> None:
    public = acls.canned("public-read", ACCOUNT, bucket=False)
    assert Access().allows(public, "", acls.READ)
    ignoring = Access(owner=ACCOUNT, block=PublicAccessBlock(IgnorePublicAcls=True))
    assert not ignoring.allows(public, "", acls.READ)
    assert ignoring.allows(public, ACCOUNT, acls.READ)
    blocking = Access(owner=ACCOUNT, block=PublicAccessBlock(BlockPublicAcls=True))
    blocking.check_acl(acls.private(ACCOUNT))
    blocking.check_acl(None)
    with pytest.raises(S3Error):
        blocking.check_acl(public)
    with pytest.raises(S3Error):
        blocking.check_acl(acls.canned("authenticated-read", ACCOUNT, bucket=True))


def test_users_and_roles_of_another_account_named_by_arn() -> None:
    session = policy.Principal.role_session(OTHER, "reader", "s1", "AROAREADER")
    reader_arn = f"arn:aws:iam::{OTHER}:role/reader"
    info = bucket(document(grant({"AWS": [reader_arn, BOB.arn]})))
    allowed = FakePolicies(statement("s3:GetObject"))
    assert judged(info, session, account=OTHER, source=allowed).by_policy
    assert judged(info, BOB, account=OTHER, source=allowed).by_policy
    refused(info, session, account=OTHER)  # its own policies must allow too
    other_user = policy.Principal.user(OTHER, "carol", "AIDACAROL")
    assert not judged(info, other_user, account=OTHER, source=allowed).by_policy
