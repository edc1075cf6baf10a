"""STS (Tokens) against a real `karri up`: GetCallerIdentity for root, user and role
session; AssumeRole across accounts with a trust policy and ExternalId; session policies;
temporary credentials on EC2, S3 (header and presigned), IAM and STS; DecodeAuthorizationMessage."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from karri.api.auth import messages
from tests.conftest import Creds, Karri
from tests.integration.ec2_wire import error_of, unique
from tests.integration.iam import session_creds


def trust(principal: str, external_id: str | None = None) -> str:
    statement: dict = {
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def allow(*actions: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
        }
    )


@pytest.fixture(scope="module")
def owner(karri: Karri) -> Creds:
    return karri.create_account(unique("owner").lower())


@pytest.fixture(scope="module")
def guest(karri: Karri) -> Creds:
    return karri.create_account(unique("guest").lower())


def test_caller_identity_of_root(karri: Karri, owner: Creds) -> None:
    identity = karri.client("sts", owner).get_caller_identity()
    assert identity["UserId"] == owner.account_id
    assert identity["Account"] == owner.account_id
    assert identity["Arn"] == f"arn:aws:iam::{owner.account_id}:root"
    cli = karri.aws("sts", "get-caller-identity", creds=owner)
    assert cli["Arn"] == identity["Arn"]


def test_assume_role_across_accounts_needs_the_external_id(
    karri: Karri, owner: Creds, guest: Creds
) -> None:
    iam = karri.client("iam", owner)
    role = unique("partner")
    made = iam.create_role(
        RoleName=role,
        AssumeRolePolicyDocument=trust(f"arn:aws:iam::{guest.account_id}:root", "s3cret"),
    )["Role"]
    sts = karri.client("sts", guest)
    arn = made["Arn"]
    assert error_of(sts.assume_role, RoleArn=arn, RoleSessionName="s1") == ("AccessDenied", 403)
    assert error_of(sts.assume_role, RoleArn=arn, RoleSessionName="s1", ExternalId="wrong") == (
        "AccessDenied",
        403,
    )
    # an account the trust policy does not name
    stranger = karri.client("sts", karri.create_account(unique("stranger").lower()))
    assert (
        error_of(stranger.assume_role, RoleArn=arn, RoleSessionName="s1", ExternalId="s3cret")[0]
        == "AccessDenied"
    )
    answer = sts.assume_role(
        RoleArn=arn, RoleSessionName="s1", ExternalId="s3cret", DurationSeconds=900
    )
    credentials = answer["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA")
    assert answer["AssumedRoleUser"] == {
        "AssumedRoleId": f"{made['RoleId']}:s1",
        "Arn": f"arn:aws:sts::{owner.account_id}:assumed-role/{role}/s1",
    }
    session = session_creds(owner, credentials)
    identity = karri.client("sts", session).get_caller_identity()
    assert identity["Arn"] == answer["AssumedRoleUser"]["Arn"]
    assert identity["UserId"] == f"{made['RoleId']}:s1"
    assert identity["Account"] == owner.account_id
    # the session works in the role's account on EC2 and S3, with the role's rights
    assert error_of(karri.client("ec2", session).describe_regions)[0] == "UnauthorizedOperation"
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert karri.client("ec2", session).describe_regions()["Regions"]
    karri.client("s3", session).list_buckets()
    # the AWS CLI takes the session too
    cli = karri.aws("sts", "get-caller-identity", creds=session)
    assert cli["Arn"] == identity["Arn"]


def test_assume_role_refuses_bad_requests(karri: Karri, owner: Creds) -> None:
    iam = karri.client("iam", owner)
    arn = iam.create_role(
        RoleName=unique("self"), AssumeRolePolicyDocument=trust(owner.account_id)
    )["Role"]["Arn"]
    sts = karri.client("sts", owner)
    assert error_of(sts.assume_role, RoleArn=arn, RoleSessionName="bad name")[0] == (
        "ValidationError"
    )
    assert (
        error_of(sts.assume_role, RoleArn=arn, RoleSessionName="s2", DurationSeconds=3601)[0]
        == "ValidationError"
    )
    missing = arn + "-gone"
    assert error_of(sts.assume_role, RoleArn=missing, RoleSessionName="s1")[0] == "AccessDenied"


def test_a_session_policy_narrows_the_role(karri: Karri, owner: Creds) -> None:
    iam = karri.client("iam", owner)
    role = unique("reader")
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust(owner.account_id))["Role"][
        "Arn"
    ]
    iam.put_role_policy(
        RoleName=role, PolicyName="iam", PolicyDocument=allow("iam:ListUsers", "iam:ListRoles")
    )
    sts = karri.client("sts", owner)
    wide = sts.assume_role(RoleArn=arn, RoleSessionName="wide")["Credentials"]
    narrow = sts.assume_role(RoleArn=arn, RoleSessionName="narrow", Policy=allow("iam:ListRoles"))[
        "Credentials"
    ]
    assert "Users" in karri.client("iam", session_creds(owner, wide)).list_users()
    as_narrow = karri.client("iam", session_creds(owner, narrow))
    assert error_of(as_narrow.list_users) == ("AccessDenied", 403)
    assert role in [r["RoleName"] for r in as_narrow.list_roles()["Roles"]]


def test_a_token_that_is_not_the_keys_is_refused(karri: Karri, owner: Creds) -> None:
    credentials = karri.client("sts", owner).get_session_token(DurationSeconds=900)["Credentials"]
    good = session_creds(owner, credentials)
    assert karri.client("sts", good).get_caller_identity()["Arn"].endswith(":root")
    # as on AWS, GetSessionToken's credentials call no IAM action without MFA
    assert error_of(karri.client("iam", good).list_users) == ("InvalidClientTokenId", 403)
    assert error_of(karri.client("sts", good).get_session_token) == ("AccessDenied", 403)
    bad = Creds(
        owner.account_id,
        owner.account_name,
        good.access_key_id,
        good.secret_access_key,
        "not-the-token",
    )
    assert error_of(karri.client("sts", bad).get_caller_identity) == ("InvalidClientTokenId", 403)
    assert error_of(karri.client("ec2", bad).describe_regions) == ("AuthFailure", 401)
    assert error_of(karri.client("s3", bad).list_buckets) == ("InvalidToken", 400)
    without = Creds(
        owner.account_id, owner.account_name, good.access_key_id, good.secret_access_key
    )
    assert error_of(karri.client("iam", without).list_users) == ("InvalidClientTokenId", 403)


def test_a_presigned_url_carries_the_session_token(karri: Karri, owner: Creds) -> None:
    credentials = karri.client("sts", owner).get_session_token(DurationSeconds=900)["Credentials"]
    s3 = karri.client("s3", session_creds(owner, credentials))
    bucket = unique("tokens").lower()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    assert "X-Amz-Security-Token" in url
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"hello"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url.replace("X-Amz-Security-Token=", "X-Amz-Security-Token=x"))
    assert refused.value.code in (400, 403)


def test_decode_authorization_message(karri: Karri, owner: Creds) -> None:
    sts = karri.client("sts", owner)
    assert error_of(sts.decode_authorization_message, EncodedMessage="forged")[0] == (
        "InvalidAuthorizationMessageException"
    )
    # sealed as the cloud seals EC2's messages: with its key
    messages.use_key_file(karri.data_dir)
    content = {"allowed": False, "context": {"action": "ec2:RunInstances"}}
    decoded = sts.decode_authorization_message(EncodedMessage=messages.encode(content))
    assert json.loads(decoded["DecodedMessage"]) == content
