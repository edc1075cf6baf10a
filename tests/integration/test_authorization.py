"""Policies decide every EC2 and S3 call of an IAM user, against a real `karri up`:
refusals in each service's words, a decodable EC2 message, a tag Deny beating an Allow,
group policies, ``s3:prefix``, and no reach into another account."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import Creds, Karri
from tests.integration.ec2_wire import error_of, unique
from tests.integration.iam import policy, user_creds

ENCODED = re.compile(r"Encoded authorization failure message: (\S+)")


@pytest.fixture(scope="module")
def account(karri: Karri) -> Creds:
    return karri.create_account(unique("authz").lower())


def user_with(karri: Karri, account: Creds, document: str) -> Creds:
    """A new user of ``account`` whose only policy is ``document``."""
    name = unique("u")
    creds, _ = user_creds(karri, account, name)
    karri.client("iam", account).put_user_policy(
        UserName=name, PolicyName="only", PolicyDocument=document
    )
    return creds


def refusal(call, **kwargs) -> str:
    """The message of an UnauthorizedOperation."""
    try:
        call(**kwargs)
    except Exception as error:  # botocore's ClientError
        response = error.response  # type: ignore[attr-defined]
        assert response["Error"]["Code"] == "UnauthorizedOperation", response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
        return response["Error"]["Message"]
    raise AssertionError("the call was allowed")


def test_a_describe_only_user_is_refused_run_instances_with_a_decodable_message(
    karri: Karri, account: Creds
) -> None:
    user = user_with(
        karri, account, policy({"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"})
    )
    ec2 = karri.client("ec2", user)
    assert "Reservations" in ec2.describe_instances()
    assert error_of(ec2.describe_instances, DryRun=True)[0] == "DryRunOperation"
    run = {"ImageId": "emi-12345678", "MinCount": 1, "MaxCount": 1}
    assert error_of(ec2.run_instances, DryRun=True, **run)[0] == "UnauthorizedOperation"
    message = refusal(ec2.run_instances, **run)
    assert "ec2:RunInstances" in message
    encoded = ENCODED.search(message).group(1)
    # the account's root may read it; boto3 and the AWS CLI alike
    decoded = json.loads(
        karri.client("sts", account).decode_authorization_message(EncodedMessage=encoded)[
            "DecodedMessage"
        ]
    )
    assert decoded["allowed"] is False and decoded["explicitDeny"] is False
    assert decoded["context"]["action"] == "ec2:RunInstances"
    assert decoded["context"]["principal"]["arn"].endswith(":user/" + user_name(karri, user))
    cli = karri.aws(
        "sts", "decode-authorization-message", "--encoded-message", encoded, creds=account
    )
    assert json.loads(cli["DecodedMessage"]) == decoded
    # the user itself may not, unless a policy says so
    sts = karri.client("sts", user)
    assert error_of(sts.decode_authorization_message, EncodedMessage=encoded)[0] == ("AccessDenied")


def user_name(karri: Karri, user: Creds) -> str:
    return karri.client("sts", user).get_caller_identity()["Arn"].rsplit("/", 1)[1]


def test_an_explicit_deny_on_a_tag_beats_an_allow(karri: Karri, account: Creds) -> None:
    user = user_with(
        karri,
        account,
        policy(
            {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "ec2:DeleteSecurityGroup",
                "Resource": "*",
                "Condition": {"StringEquals": {"ec2:ResourceTag/env": "prod"}},
            },
        ),
    )
    root, ec2 = karri.client("ec2", account), karri.client("ec2", user)

    def group(tags: list[dict[str, str]]) -> str:
        spec = [{"ResourceType": "security-group", "Tags": tags}] if tags else []
        return root.create_security_group(
            GroupName=unique("g"), Description="d", TagSpecifications=spec
        )["GroupId"]

    loose, prod = group([]), group([{"Key": "env", "Value": "prod"}])
    ec2.delete_security_group(GroupId=loose)
    message = refusal(ec2.delete_security_group, GroupId=prod)
    assert "explicit deny" in message
    decoded = json.loads(
        karri.client("sts", account).decode_authorization_message(
            EncodedMessage=ENCODED.search(message).group(1)
        )["DecodedMessage"]
    )
    assert decoded["explicitDeny"] is True
    root.delete_security_group(GroupId=prod)  # the account's root is never refused


def test_a_groups_policy_reaches_its_members(karri: Karri, account: Creds) -> None:
    iam = karri.client("iam", account)
    name, group = unique("member"), unique("readers")
    creds, _ = user_creds(karri, account, name)
    ec2 = karri.client("ec2", creds)
    assert error_of(ec2.describe_vpcs)[0] == "UnauthorizedOperation"
    iam.create_group(GroupName=group)
    iam.attach_group_policy(
        GroupName=group, PolicyArn="arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess"
    )
    iam.add_user_to_group(GroupName=group, UserName=name)
    assert ec2.describe_vpcs()["Vpcs"]
    assert error_of(ec2.create_key_pair, KeyName=unique("k"))[0] == "UnauthorizedOperation"
    iam.remove_user_from_group(GroupName=group, UserName=name)
    assert error_of(ec2.describe_vpcs)[0] == "UnauthorizedOperation"


def test_s3_prefix_limits_a_user_to_a_folder(karri: Karri, account: Creds) -> None:
    bucket = unique("folders").lower()
    root = karri.client("s3", account)
    root.create_bucket(Bucket=bucket)
    root.put_object(Bucket=bucket, Key="home/alice/a", Body=b"a")
    root.put_object(Bucket=bucket, Key="home/bob/b", Body=b"b")
    user = user_with(
        karri,
        account,
        policy(
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": ["home/alice/", "home/alice/*"]}},
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::{bucket}/home/alice/*",
            },
        ),
    )
    s3 = karri.client("s3", user)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="home/alice/")["Contents"]
    assert [o["Key"] for o in listed] == ["home/alice/a"]
    assert error_of(s3.list_objects_v2, Bucket=bucket, Prefix="home/bob/") == ("AccessDenied", 403)
    assert error_of(s3.list_objects_v2, Bucket=bucket) == ("AccessDenied", 403)
    assert s3.get_object(Bucket=bucket, Key="home/alice/a")["Body"].read() == b"a"
    assert error_of(s3.get_object, Bucket=bucket, Key="home/bob/b") == ("AccessDenied", 403)
    s3.put_object(Bucket=bucket, Key="home/alice/new", Body=b"n")
    assert error_of(s3.put_object, Bucket=bucket, Key="home/bob/new", Body=b"n") == (
        "AccessDenied",
        403,
    )
    assert error_of(s3.list_buckets) == ("AccessDenied", 403)
    assert [o["Key"] for o in root.list_objects_v2(Bucket=bucket)["Contents"]] == [
        "home/alice/a",
        "home/alice/new",
        "home/bob/b",
    ]


def test_an_administrator_user_reaches_nothing_of_another_account(
    karri: Karri, account: Creds
) -> None:
    other = karri.create_account(unique("other").lower())
    theirs = karri.client("ec2", other).create_security_group(
        GroupName=unique("theirs"), Description="d"
    )["GroupId"]
    bucket = unique("theirs").lower()
    karri.client("s3", other).create_bucket(Bucket=bucket)
    admin = user_with(karri, account, policy({"Effect": "Allow", "Action": "*", "Resource": "*"}))
    ec2 = karri.client("ec2", admin)
    s3 = karri.client("s3", admin)
    assert error_of(ec2.describe_security_groups, GroupIds=[theirs])[0] == ("InvalidGroup.NotFound")
    assert error_of(ec2.delete_security_group, GroupId=theirs)[0] == "InvalidGroup.NotFound"
    assert error_of(s3.list_objects_v2, Bucket=bucket) == ("AccessDenied", 403)
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
