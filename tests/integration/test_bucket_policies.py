"""Bucket policies against a real `karri up`, with boto3 and the AWS CLI: documents kept and
refused as S3 does, GetBucketPolicyStatus, and the policy weighed on every call with the
identity policies and ACLs (another account granted one prefix, a Deny that stops even the
owner's IAM user, anonymous callers let in by ``*``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Creds, Karri
from tests.integration.ec2_wire import error_of
from tests.integration.iam import policy, user_creds
from tests.integration.s3_helpers import http, unique


def bucket_policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def user_with(karri: Karri, account: Creds, document: str | None) -> Creds:
    """A new IAM user of ``account`` whose only policy is ``document`` (None: none)."""
    name = unique("u")
    creds, _ = user_creds(karri, account, name)
    if document is not None:
        karri.client("iam", account).put_user_policy(
            UserName=name, PolicyName="only", PolicyDocument=document
        )
    return creds


@pytest.fixture(scope="module")
def owner(karri: Karri) -> Creds:
    return karri.create_account(unique("owner").lower())


def new_bucket(karri: Karri, owner: Creds, *keys: str) -> str:
    name = unique("pol").lower()
    s3 = karri.client("s3", owner)
    s3.create_bucket(Bucket=name)
    for key in keys:
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    return name


def test_put_get_delete_and_the_cli(karri: Karri, owner: Creds) -> None:
    name = new_bucket(karri, owner)
    s3 = karri.client("s3", owner)
    assert error_of(s3.get_bucket_policy, Bucket=name) == ("NoSuchBucketPolicy", 404)
    document = bucket_policy(
        {
            "Sid": "read",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{owner.account_id}:root"},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{name}/*",
        }
    )
    karri.aws("s3api", "put-bucket-policy", "--bucket", name, "--policy", document, creds=owner)
    got = karri.aws("s3api", "get-bucket-policy", "--bucket", name, creds=owner)
    assert json.loads(got["Policy"]) == json.loads(document)
    assert s3.get_bucket_policy(Bucket=name)["Policy"] == document
    status = s3.get_bucket_policy_status(Bucket=name)["PolicyStatus"]
    assert status == {"IsPublic": False}
    s3.delete_bucket_policy(Bucket=name)
    assert error_of(s3.get_bucket_policy, Bucket=name) == ("NoSuchBucketPolicy", 404)
    assert error_of(s3.get_bucket_policy_status, Bucket=name) == ("NoSuchBucketPolicy", 404)
    assert error_of(s3.get_bucket_policy, Bucket=unique("missing")) == ("NoSuchBucket", 404)


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "R/*"}, "Principal"),
        ({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "x"}, "res"),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::someone-elses-bucket/*",
            },
            "resource",
        ),
        (
            {
                "Effect": "Allow",
                "NotPrincipal": {"AWS": "123456789012"},
                "Action": "s3:GetObject",
                "Resource": "R/*",
            },
            "principal",
        ),
        (
            {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "s3:*", "Resource": "R"},
            "principal",
        ),
        ({"Effect": "Allow", "Principal": "*", "Action": "ec2:*", "Resource": "R"}, "action"),
        ({"Effect": "Maybe", "Principal": "*", "Action": "s3:*", "Resource": "R"}, "effect"),
    ],
)
def test_malformed_policies(karri: Karri, owner: Creds, statement: dict, why: str) -> None:
    name = new_bucket(karri, owner)
    s3 = karri.client("s3", owner)
    text = json.dumps(statement).replace('"R', f'"arn:aws:s3:::{name}')
    document = f'{{"Version": "2012-10-17", "Statement": [{text}]}}'
    assert error_of(s3.put_bucket_policy, Bucket=name, Policy=document) == (
        "MalformedPolicy",
        400,
    ), why
    assert error_of(s3.get_bucket_policy, Bucket=name) == ("NoSuchBucketPolicy", 404)


def test_invalid_json_is_malformed(karri: Karri, owner: Creds) -> None:
    name = new_bucket(karri, owner)
    s3 = karri.client("s3", owner)
    for text in ("{not json", '{"Statement": []}', "[]", '{"Version": "2012-10-17"}'):
        assert error_of(s3.put_bucket_policy, Bucket=name, Policy=text) == (
            "MalformedPolicy",
            400,
        ), text


def test_policy_status_says_what_is_public(karri: Karri, owner: Creds) -> None:
    name = new_bucket(karri, owner)
    s3 = karri.client("s3", owner)
    read = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{name}/*"}
    cases = [
        ({**read, "Principal": "*"}, True),
        ({**read, "Principal": {"AWS": "*"}}, True),
        ({**read, "Principal": {"AWS": owner.account_id}}, False),
        (
            {**read, "Principal": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/24"}}},
            False,
        ),
        (
            {**read, "Principal": "*", "Condition": {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}},
            True,
        ),
        (
            {
                **read,
                "Principal": "*",
                "Condition": {"StringEquals": {"aws:PrincipalAccount": owner.account_id}},
            },
            False,
        ),
        ({**read, "Effect": "Deny", "Principal": "*"}, False),
    ]
    for statement, public in cases:
        s3.put_bucket_policy(Bucket=name, Policy=bucket_policy(statement))
        status = s3.get_bucket_policy_status(Bucket=name)["PolicyStatus"]
        assert status == {"IsPublic": public}, statement


def test_a_public_read_policy_lets_anonymous_callers_in(karri: Karri, owner: Creds) -> None:
    name = new_bucket(karri, owner, "site/index.html", "private/notes")
    url = f"{karri.s3_url}/{name}/site/index.html"
    assert http("GET", url)[0] == 403
    karri.client("s3", owner).put_bucket_policy(
        Bucket=name,
        Policy=bucket_policy(
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{name}/site/*",
            }
        ),
    )
    status, _headers, body = http("GET", url)
    assert (status, body) == (200, b"site/index.html")
    assert http("GET", f"{karri.s3_url}/{name}/private/notes")[0] == 403
    assert http("GET", f"{karri.s3_url}/{name}?list-type=2")[0] == 403
    assert http("PUT", f"{karri.s3_url}/{name}/site/new", b"x")[0] == 403


def test_another_account_is_granted_one_prefix(
    karri: Karri, owner: Creds, other_account: Creds
) -> None:
    name = new_bucket(karri, owner, "shared/a.txt", "private/b.txt")
    karri.client("s3", owner).put_bucket_policy(
        Bucket=name,
        Policy=bucket_policy(
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{other_account.account_id}:root"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{name}/shared/*",
            },
            {
                "Effect": "Allow",
                "Principal": {"AWS": other_account.account_id},
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{name}",
                "Condition": {"StringLike": {"s3:prefix": "shared/*"}},
            },
        ),
    )
    other = karri.client("s3", other_account)
    assert other.get_object(Bucket=name, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    assert error_of(other.get_object, Bucket=name, Key="private/b.txt") == ("AccessDenied", 403)
    listed = other.list_objects_v2(Bucket=name, Prefix="shared/")["Contents"]
    assert [o["Key"] for o in listed] == ["shared/a.txt"]
    assert error_of(other.list_objects_v2, Bucket=name) == ("AccessDenied", 403)
    assert error_of(other.put_object, Bucket=name, Key="shared/x", Body=b"x") == (
        "AccessDenied",
        403,
    )
    # The other account's IAM users need their own policy's Allow too.
    bare = karri.client("s3", user_with(karri, other_account, None))
    assert error_of(bare.get_object, Bucket=name, Key="shared/a.txt") == ("AccessDenied", 403)
    reader = karri.client(
        "s3",
        user_with(
            karri,
            other_account,
            policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}),
        ),
    )
    assert reader.get_object(Bucket=name, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    assert error_of(reader.get_object, Bucket=name, Key="private/b.txt") == ("AccessDenied", 403)


def test_a_deny_stops_even_the_owners_user(karri: Karri, owner: Creds) -> None:
    name = new_bucket(karri, owner, "open/a", "secret/b")
    admin = user_with(karri, owner, policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))
    admin_arn = karri.client("sts", admin).get_caller_identity()["Arn"]
    s3 = karri.client("s3", owner)
    s3.put_bucket_policy(
        Bucket=name,
        Policy=bucket_policy(
            {
                "Effect": "Deny",
                "Principal": {"AWS": admin_arn},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{name}/secret/*",
            }
        ),
    )
    user = karri.client("s3", admin)
    assert user.get_object(Bucket=name, Key="open/a")["Body"].read() == b"open/a"
    assert error_of(user.get_object, Bucket=name, Key="secret/b") == ("AccessDenied", 403)
    assert s3.get_object(Bucket=name, Key="secret/b")["Body"].read() == b"secret/b"


def test_a_deny_for_everyone_stops_the_root_but_not_its_policy_calls(
    karri: Karri, owner: Creds
) -> None:
    name = new_bucket(karri, owner, "a")
    s3 = karri.client("s3", owner)
    everything = [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]
    s3.put_bucket_policy(
        Bucket=name,
        Policy=bucket_policy(
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": everything}
        ),
    )
    assert error_of(s3.get_object, Bucket=name, Key="a") == ("AccessDenied", 403)
    assert error_of(s3.list_objects_v2, Bucket=name) == ("AccessDenied", 403)
    assert "Deny" in s3.get_bucket_policy(Bucket=name)["Policy"]
    s3.delete_bucket_policy(Bucket=name)
    assert s3.get_object(Bucket=name, Key="a")["Body"].read() == b"a"


def test_conditions_work_in_bucket_policies(karri: Karri, owner: Creds) -> None:
    name = new_bucket(karri, owner, "a")
    s3 = karri.client("s3", owner)
    deny = {"Effect": "Deny", "Principal": "*", "Resource": f"arn:aws:s3:::{name}/*"}
    s3.put_bucket_policy(
        Bucket=name,
        Policy=bucket_policy(
            {
                **deny,
                "Action": "s3:GetObject",
                "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}},
            },
            {
                **deny,
                "Action": "s3:PutObject",
                "Condition": {"StringEquals": {"s3:x-amz-acl": "public-read"}},
            },
        ),
    )
    assert error_of(s3.get_object, Bucket=name, Key="a") == ("AccessDenied", 403)
    s3.put_object(Bucket=name, Key="b", Body=b"b")
    assert error_of(s3.put_object, Bucket=name, Key="c", Body=b"c", ACL="public-read") == (
        "AccessDenied",
        403,
    )
    s3.put_bucket_policy(
        Bucket=name,
        Policy=bucket_policy(
            {
                **deny,
                "Action": "s3:GetObject",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ),
    )
    assert error_of(s3.get_object, Bucket=name, Key="a") == ("AccessDenied", 403)
    s3.delete_bucket_policy(Bucket=name)


def test_another_account_cannot_read_or_change_the_policy(
    karri: Karri, owner: Creds, other_account: Creds
) -> None:
    name = new_bucket(karri, owner)
    document = bucket_policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": other_account.account_id},
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
        }
    )
    karri.client("s3", owner).put_bucket_policy(Bucket=name, Policy=document)
    other = karri.client("s3", other_account)
    denied = ("AccessDenied", 403)
    assert error_of(other.get_bucket_policy, Bucket=name) == denied
    assert error_of(other.put_bucket_policy, Bucket=name, Policy=document) == denied
    assert error_of(other.delete_bucket_policy, Bucket=name) == denied
    assert error_of(other.get_bucket_policy_status, Bucket=name) == denied
    assert karri.client("s3", owner).get_bucket_policy(Bucket=name)["Policy"] == document
    # What the policy does grant works: a write, owned by the writer.
    other.put_object(Bucket=name, Key="from-other", Body=b"o")
    assert other.get_object(Bucket=name, Key="from-other")["Body"].read() == b"o"


def test_a_grant_reaches_copies_and_listings(
    karri: Karri, owner: Creds, other_account: Creds
) -> None:
    name = new_bucket(karri, owner, "pub/a", "pub/b")
    karri.client("s3", owner).put_bucket_policy(
        Bucket=name,
        Policy=bucket_policy(
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
            },
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{name}/pub/b",
            },
        ),
    )
    status, _headers, body = http("GET", f"{karri.s3_url}/{name}?list-type=2")
    assert status == 200 and b"<Key>pub/a</Key>" in body
    assert http("GET", f"{karri.s3_url}/{name}/pub/missing")[0] == 404  # may list: 404
    other = karri.client("s3", other_account)
    mine = unique("mine").lower()
    other.create_bucket(Bucket=mine)
    other.copy_object(Bucket=mine, Key="copy", CopySource={"Bucket": name, "Key": "pub/a"})
    assert other.get_object(Bucket=mine, Key="copy")["Body"].read() == b"pub/a"
    source = {"Bucket": name, "Key": "pub/b"}
    assert error_of(other.copy_object, Bucket=mine, Key="no", CopySource=source) == (
        "AccessDenied",
        403,
    )
