"""IAM instance profiles on instances (issue 17) through boto3: RunInstances'
IamInstanceProfile, the association calls and their errors, isolation between accounts
(fake node driver); then a real guest (TCG) reads its role's credentials from the metadata
service and the host uses them against karri."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Creds, Karri, start_karri
from tests.integration.ec2_wire import error_of, unique
from tests.integration.guests import (
    available_image,
    end_cloud,
    tiny_image,
    wait_console,
    wait_state,
)
from tests.integration.iam import TRUST_EC2, policy, user_creds


@pytest.fixture(scope="module")
def fake_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("iprof") / "data", "--node-driver", "fake")
    try:
        yield karri
    finally:
        end_cloud(karri)


@pytest.fixture(scope="module")
def alice(fake_cloud: Karri) -> Creds:
    return fake_cloud.create_account(unique("alice").lower())


def profile_with_role(karri: Karri, creds: Creds, *, role: bool = True) -> dict[str, Any]:
    """A new instance profile (holding a new role trusting EC2, unless ``role`` is False)."""
    iam = karri.client("iam", creds)
    name = unique("prof")
    made = iam.create_instance_profile(InstanceProfileName=name, Path="/apps/")
    if role:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST_EC2)
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return made["InstanceProfile"]


def run_one(ec2: Any, **extra: Any) -> dict[str, Any]:
    image_id = available_image(ec2, "karri-tiny")["ImageId"]
    return ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, **extra)["Instances"][0]


def described(ec2: Any, instance_id: str) -> dict[str, Any]:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def test_run_instances_with_a_profile_by_name_or_arn(fake_cloud: Karri, alice: Creds) -> None:
    ec2 = fake_cloud.client("ec2", alice)
    profile = profile_with_role(fake_cloud, alice)
    shown = {"Arn": profile["Arn"], "Id": profile["InstanceProfileId"]}
    by_name = run_one(ec2, IamInstanceProfile={"Name": profile["InstanceProfileName"]})
    assert by_name["IamInstanceProfile"] == shown
    by_arn = run_one(ec2, IamInstanceProfile={"Arn": profile["Arn"]}, ClientToken="again")
    repeated = run_one(ec2, IamInstanceProfile={"Arn": profile["Arn"]}, ClientToken="again")
    assert (repeated["InstanceId"], repeated["IamInstanceProfile"]) == (by_arn["InstanceId"], shown)
    plain = run_one(ec2)
    assert described(ec2, by_arn["InstanceId"])["IamInstanceProfile"] == shown
    assert "IamInstanceProfile" not in described(ec2, plain["InstanceId"])
    found = ec2.describe_instances(
        Filters=[{"Name": "iam-instance-profile.arn", "Values": [profile["Arn"]]}]
    )["Reservations"]
    assert sorted(i["InstanceId"] for r in found for i in r["Instances"]) == sorted(
        [by_name["InstanceId"], by_arn["InstanceId"]]
    )
    by_id = ec2.describe_instances(
        Filters=[{"Name": "iam-instance-profile.id", "Values": [profile["InstanceProfileId"]]}]
    )["Reservations"]
    assert len([i for r in by_id for i in r["Instances"]]) == 2
    associations = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [by_name["InstanceId"]]}]
    )["IamInstanceProfileAssociations"]
    assert [(a["State"], a["IamInstanceProfile"]) for a in associations] == [("associated", shown)]
    assert associations[0]["AssociationId"].startswith("iip-assoc-")


def test_run_instances_refuses_what_is_not_a_usable_profile(
    fake_cloud: Karri, alice: Creds, other_account_fake: Creds
) -> None:
    ec2 = fake_cloud.client("ec2", alice)
    image_id = tiny_image(fake_cloud, ec2)
    empty = profile_with_role(fake_cloud, alice, role=False)
    theirs = profile_with_role(fake_cloud, other_account_fake)
    before = len(ec2.describe_instances()["Reservations"])
    for spec, member in (
        ({"Name": "nosuch"}, "name"),
        ({"Name": empty["InstanceProfileName"]}, "name"),  # holds no role
        ({"Name": theirs["InstanceProfileName"]}, "name"),  # another account's
        ({"Arn": theirs["Arn"]}, "arn"),
        ({"Arn": empty["Arn"].replace("/apps/", "/")}, "arn"),  # the wrong path
        ({"Arn": "not an arn"}, "arn"),
    ):
        with pytest.raises(ClientError) as info:
            ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, IamInstanceProfile=spec)
        error = info.value.response["Error"]
        assert error["Code"] == "InvalidParameterValue", spec
        assert f"for parameter iamInstanceProfile.{member} is invalid" in error["Message"]
    assert len(ec2.describe_instances()["Reservations"]) == before  # nothing half-written


@pytest.fixture(scope="module")
def other_account_fake(fake_cloud: Karri) -> Creds:
    return fake_cloud.create_account(unique("mallory").lower())


def test_associate_replace_disassociate(fake_cloud: Karri, alice: Creds) -> None:
    ec2 = fake_cloud.client("ec2", alice)
    first, second = profile_with_role(fake_cloud, alice), profile_with_role(fake_cloud, alice)
    instance_id = run_one(ec2)["InstanceId"]
    wait_state(ec2, instance_id, "running")
    made = ec2.associate_iam_instance_profile(
        InstanceId=instance_id, IamInstanceProfile={"Name": first["InstanceProfileName"]}
    )["IamInstanceProfileAssociation"]
    assert made["State"] == "associating" and made["InstanceId"] == instance_id
    assert made["IamInstanceProfile"]["Arn"] == first["Arn"]
    assert described(ec2, instance_id)["IamInstanceProfile"]["Id"] == first["InstanceProfileId"]
    code = error_of(
        ec2.associate_iam_instance_profile,
        InstanceId=instance_id,
        IamInstanceProfile={"Arn": second["Arn"]},
    )
    assert code == ("IncorrectState", 400)
    replaced = ec2.replace_iam_instance_profile_association(
        AssociationId=made["AssociationId"], IamInstanceProfile={"Arn": second["Arn"]}
    )["IamInstanceProfileAssociation"]
    assert replaced["State"] == "associating"
    assert replaced["AssociationId"] != made["AssociationId"]
    assert described(ec2, instance_id)["IamInstanceProfile"]["Arn"] == second["Arn"]
    states = {
        a["AssociationId"]: a["State"]
        for a in ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [instance_id]}]
        )["IamInstanceProfileAssociations"]
    }
    assert states == {
        made["AssociationId"]: "disassociated",
        replaced["AssociationId"]: "associated",
    }
    only = ec2.describe_iam_instance_profile_associations(
        AssociationIds=[replaced["AssociationId"]],
        Filters=[{"Name": "state", "Values": ["associated"]}],
    )["IamInstanceProfileAssociations"]
    assert [a["AssociationId"] for a in only] == [replaced["AssociationId"]]
    # the old association is over: it can be neither replaced nor disassociated
    for call, kwargs in (
        (ec2.disassociate_iam_instance_profile, {}),
        (
            ec2.replace_iam_instance_profile_association,
            {"IamInstanceProfile": {"Arn": first["Arn"]}},
        ),
    ):
        assert error_of(call, AssociationId=made["AssociationId"], **kwargs)[0] == (
            "InvalidAssociationID.NotFound"
        )
    gone = ec2.disassociate_iam_instance_profile(AssociationId=replaced["AssociationId"])
    assert gone["IamInstanceProfileAssociation"]["State"] == "disassociating"
    assert "IamInstanceProfile" not in described(ec2, instance_id)
    # and the instance may have a profile again
    again = ec2.associate_iam_instance_profile(
        InstanceId=instance_id, IamInstanceProfile={"Name": first["InstanceProfileName"]}
    )["IamInstanceProfileAssociation"]
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated")
    after = ec2.describe_iam_instance_profile_associations(AssociationIds=[again["AssociationId"]])
    assert after["IamInstanceProfileAssociations"][0]["State"] == "disassociated"
    assert "IamInstanceProfile" not in described(ec2, instance_id)


def test_association_errors(fake_cloud: Karri, alice: Creds) -> None:
    ec2 = fake_cloud.client("ec2", alice)
    profile = profile_with_role(fake_cloud, alice)
    spec = {"Name": profile["InstanceProfileName"]}
    assert error_of(
        ec2.associate_iam_instance_profile, InstanceId="i-00000000", IamInstanceProfile=spec
    ) == ("InvalidInstanceID.NotFound", 400)
    assert error_of(
        ec2.associate_iam_instance_profile, InstanceId="bogus", IamInstanceProfile=spec
    ) == ("InvalidInstanceID.Malformed", 400)
    instance_id = run_one(ec2)["InstanceId"]
    assert error_of(
        ec2.associate_iam_instance_profile,
        InstanceId=instance_id,
        IamInstanceProfile={"Name": "nosuch"},
    ) == ("InvalidParameterValue", 400)
    for association_id in ("iip-assoc-00000000", "iip-assoc-0123456789abcdef0", "nonsense"):
        assert error_of(ec2.disassociate_iam_instance_profile, AssociationId=association_id) == (
            "InvalidAssociationID.NotFound",
            400,
        )
        assert error_of(
            ec2.describe_iam_instance_profile_associations, AssociationIds=[association_id]
        ) == ("InvalidAssociationID.NotFound", 400)
    assert error_of(
        ec2.describe_iam_instance_profile_associations,
        Filters=[{"Name": "nosuch", "Values": ["x"]}],
    ) == ("InvalidParameterValue", 400)
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated")
    assert error_of(
        ec2.associate_iam_instance_profile, InstanceId=instance_id, IamInstanceProfile=spec
    ) == ("IncorrectInstanceState", 400)


def test_another_accounts_associations_are_invisible_and_untouchable(
    fake_cloud: Karri, alice: Creds, other_account_fake: Creds
) -> None:
    ec2 = fake_cloud.client("ec2", alice)
    profile = profile_with_role(fake_cloud, alice)
    mine = run_one(ec2, IamInstanceProfile={"Arn": profile["Arn"]})["InstanceId"]
    (association,) = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [mine]}]
    )["IamInstanceProfileAssociations"]
    theirs = fake_cloud.client("ec2", other_account_fake)
    listed = theirs.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
    assert association["AssociationId"] not in {a["AssociationId"] for a in listed}
    their_profile = profile_with_role(fake_cloud, other_account_fake)
    for call, kwargs in (
        (theirs.disassociate_iam_instance_profile, {}),
        (
            theirs.replace_iam_instance_profile_association,
            {"IamInstanceProfile": {"Arn": their_profile["Arn"]}},
        ),
    ):
        assert error_of(call, AssociationId=association["AssociationId"], **kwargs)[0] == (
            "InvalidAssociationID.NotFound"
        )
    assert error_of(
        theirs.describe_iam_instance_profile_associations,
        AssociationIds=[association["AssociationId"]],
    )[0] == ("InvalidAssociationID.NotFound")
    assert error_of(
        theirs.associate_iam_instance_profile,
        InstanceId=mine,
        IamInstanceProfile={"Arn": their_profile["Arn"]},
    )[0] == ("InvalidInstanceID.NotFound")
    # nor may one account hand its instance another account's profile
    other = run_one(ec2)["InstanceId"]
    assert error_of(
        ec2.associate_iam_instance_profile,
        InstanceId=other,
        IamInstanceProfile={"Arn": their_profile["Arn"]},
    ) == ("InvalidParameterValue", 400)
    assert described(ec2, mine)["IamInstanceProfile"]["Arn"] == profile["Arn"]


def test_the_aws_cli_associates_and_describes(fake_cloud: Karri, alice: Creds) -> None:
    profile = profile_with_role(fake_cloud, alice)
    instance_id = run_one(fake_cloud.client("ec2", alice))["InstanceId"]
    made = fake_cloud.aws(
        "ec2",
        "associate-iam-instance-profile",
        "--instance-id",
        instance_id,
        "--iam-instance-profile",
        f"Name={profile['InstanceProfileName']}",
        creds=alice,
    )["IamInstanceProfileAssociation"]
    listed = fake_cloud.aws(
        "ec2",
        "describe-iam-instance-profile-associations",
        "--association-ids",
        made["AssociationId"],
        creds=alice,
    )["IamInstanceProfileAssociations"]
    assert [(a["InstanceId"], a["State"]) for a in listed] == [(instance_id, "associated")]
    # by now the account has more than one page of five associations
    pages = list(
        fake_cloud.client("ec2", alice)
        .get_paginator("describe_iam_instance_profile_associations")
        .paginate(PaginationConfig={"PageSize": 5})
    )
    everything = [a["AssociationId"] for p in pages for a in p["IamInstanceProfileAssociations"]]
    assert len(pages) >= 2 and len(everything) == len(set(everything)) > 5
    assert made["AssociationId"] in everything


def test_a_user_needs_iam_pass_role_to_hand_an_instance_a_role(
    fake_cloud: Karri, alice: Creds
) -> None:
    profile = profile_with_role(fake_cloud, alice)
    role_arn = f"arn:aws:iam::{alice.account_id}:role/{profile['InstanceProfileName']}"
    iam = fake_cloud.client("iam", alice)
    user = unique("launcher")
    creds, _key = user_creds(fake_cloud, alice, user)
    ec2_only = policy({"Effect": "Allow", "Action": "ec2:*", "Resource": "*"})
    iam.put_user_policy(UserName=user, PolicyName="ec2", PolicyDocument=ec2_only)
    ec2 = fake_cloud.client("ec2", creds)
    spec = {"Arn": profile["Arn"]}
    with pytest.raises(ClientError) as refused:
        run_one(ec2, IamInstanceProfile=spec)
    error = refused.value.response["Error"]
    assert error["Code"] == "UnauthorizedOperation"
    decoded = fake_cloud.client("sts", alice).decode_authorization_message(
        EncodedMessage=error["Message"].rsplit(" ", 1)[-1]
    )
    assert "iam:PassRole" in decoded["DecodedMessage"] and role_arn in decoded["DecodedMessage"]
    instance_id = run_one(ec2)["InstanceId"]  # without a profile: ec2:* is enough
    assert error_of(
        ec2.associate_iam_instance_profile, InstanceId=instance_id, IamInstanceProfile=spec
    ) == ("UnauthorizedOperation", 403)
    passing = policy(
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        }
    )
    iam.put_user_policy(UserName=user, PolicyName="pass", PolicyDocument=passing)
    assert run_one(ec2, IamInstanceProfile=spec)["IamInstanceProfile"]["Arn"] == profile["Arn"]
    made = ec2.associate_iam_instance_profile(InstanceId=instance_id, IamInstanceProfile=spec)
    assert made["IamInstanceProfileAssociation"]["State"] == "associating"


# -- a real guest --------------------------------------------------------------------

GUEST_SCRIPT = """#!/bin/sh
M=http://169.254.169.254/latest/meta-data/iam
role=$(wget -qO- $M/security-credentials/)
echo "IAM-ROLE $role"
show() { while read -r line || [ -n "$line" ]; do echo "$1 $line"; done; }
wget -qO- $M/info | show IAM-INFO
wget -qO- $M/security-credentials/$role | show IAM-CREDS
echo "IAM-DONE"
while wget -qO- $M/info >/dev/null 2>&1; do sleep 1; done
echo "IAM-GONE"
"""


def _document(console: str, prefix: str) -> dict[str, Any]:
    lines = [line.split(prefix, 1)[1] for line in console.splitlines() if prefix in line]
    return json.loads("\n".join(lines))


@pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")
def test_a_guest_reads_its_roles_credentials_and_they_work(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    karri = start_karri(tmp_path_factory.mktemp("iprof-guest") / "data")
    try:
        creds = karri.create_account(unique("guest").lower())
        ec2 = karri.client("ec2", creds)
        profile = profile_with_role(karri, creds)
        role = profile["InstanceProfileName"]
        instance_id = ec2.run_instances(
            ImageId=tiny_image(karri, ec2),
            MinCount=1,
            MaxCount=1,
            IamInstanceProfile={"Name": role},
            UserData=GUEST_SCRIPT,
        )["Instances"][0]["InstanceId"]
        console = wait_console(ec2, instance_id, "IAM-DONE")
        assert f"IAM-ROLE {role}" in console
        info = _document(console, "IAM-INFO ")
        assert info["Code"] == "Success"
        assert (info["InstanceProfileArn"], info["InstanceProfileId"]) == (
            profile["Arn"],
            profile["InstanceProfileId"],
        )
        served = _document(console, "IAM-CREDS ")
        assert served["Code"] == "Success" and served["Type"] == "AWS-HMAC"
        assert served["AccessKeyId"].startswith("ASIA")
        session = Creds(
            creds.account_id,
            creds.account_name,
            served["AccessKeyId"],
            served["SecretAccessKey"],
            served["Token"],
        )
        identity = karri.client("sts", session).get_caller_identity()
        assert identity["Arn"] == (
            f"arn:aws:sts::{creds.account_id}:assumed-role/{role}/{instance_id}"
        )
        assert identity["Account"] == creds.account_id
        # the role may put objects under allowed/ of the bucket, and nothing else
        bucket = unique("iprof").lower()
        karri.client("s3", creds).create_bucket(Bucket=bucket)
        allowed = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{bucket}/allowed/*",
                }
            ],
        }
        karri.client("iam", creds).put_role_policy(
            RoleName=role, PolicyName="put-allowed", PolicyDocument=json.dumps(allowed)
        )
        s3 = karri.client("s3", session)
        s3.put_object(Bucket=bucket, Key="allowed/from-the-role", Body=b"hi")
        got = karri.client("s3", creds).get_object(Bucket=bucket, Key="allowed/from-the-role")
        assert got["Body"].read() == b"hi"
        assert error_of(s3.put_object, Bucket=bucket, Key="elsewhere", Body=b"no") == (
            "AccessDenied",
            403,
        )
        # disassociated: the guest's next look finds no iam/ (404)
        (association,) = ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [instance_id]}]
        )["IamInstanceProfileAssociations"]
        ec2.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])
        wait_console(ec2, instance_id, "IAM-GONE")
    finally:
        end_cloud(karri)
