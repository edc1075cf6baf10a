"""Object Lock against a real `karri up`, with boto3 and the AWS CLI: a COMPLIANCE-locked
version outlives its owner's deletes, GOVERNANCE yields only to a permitted bypass, legal
holds, default retention, the lock headers of PUT, COPY and multipart, and S3's errors."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Creds, Karri
from tests.integration.iam import policy, user_creds
from tests.integration.s3_helpers import http, signed, unique

DENIED = ("AccessDenied", 403)


@pytest.fixture(scope="module")
def account(karri: Karri) -> Creds:
    return karri.create_account(unique("lock").lower())


@pytest.fixture(scope="module")
def s3(karri: Karri, account: Creds):
    return karri.client("s3", account)


def error(call, **kwargs) -> tuple[str, int]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def locked_bucket(s3) -> str:
    name = unique("locked")
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def later(days: int = 1) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def test_a_bucket_made_with_object_lock_stays_versioned(s3) -> None:
    name = locked_bucket(s3)
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    config = s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
    assert config == {"ObjectLockEnabled": "Enabled"}
    assert error(
        s3.put_bucket_versioning,
        Bucket=name,
        VersioningConfiguration={"Status": "Suspended"},
    ) == ("InvalidBucketState", 409)


def test_a_compliance_locked_version_survives_a_delete_by_its_owner(
    karri: Karri, s3, account: Creds
) -> None:
    name = locked_bucket(s3)
    until = later()
    version = s3.put_object(
        Bucket=name,
        Key="backup",
        Body=b"immutable",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )["VersionId"]
    head = s3.head_object(Bucket=name, Key="backup")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == until

    assert error(s3.delete_object, Bucket=name, Key="backup", VersionId=version) == DENIED
    assert (
        error(
            s3.delete_object,
            Bucket=name,
            Key="backup",
            VersionId=version,
            BypassGovernanceRetention=True,
        )
        == DENIED
    )
    outcome = s3.delete_objects(
        Bucket=name, Delete={"Objects": [{"Key": "backup", "VersionId": version}]}
    )
    assert [e["Code"] for e in outcome["Errors"]] == ["AccessDenied"]
    # Shortening, removing or weakening the retention is refused too; extending it is not.
    for retention in (
        {"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(hours=1)},
        {"Mode": "GOVERNANCE", "RetainUntilDate": later(2)},
    ):
        assert (
            error(
                s3.put_object_retention,
                Bucket=name,
                Key="backup",
                VersionId=version,
                Retention=retention,
                BypassGovernanceRetention=True,
            )
            == DENIED
        )
    s3.put_object_retention(
        Bucket=name,
        Key="backup",
        VersionId=version,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later(2)},
    )

    # A delete without a version id only hides the key behind a delete marker.
    marker = s3.delete_object(Bucket=name, Key="backup")
    assert marker["DeleteMarker"] is True
    assert error(s3.get_object, Bucket=name, Key="backup")[1] == 404
    kept = s3.get_object(Bucket=name, Key="backup", VersionId=version)
    assert kept["Body"].read() == b"immutable"

    shown = karri.aws(
        "s3api", "get-object-retention", "--bucket", name, "--key", "backup",
        f"--version-id={version}", creds=account,
    )  # fmt: skip
    assert shown["Retention"]["Mode"] == "COMPLIANCE"
    assert shown["Retention"]["RetainUntilDate"].startswith(later(2).strftime("%Y-%m-%dT"))


def test_governance_yields_only_to_a_permitted_bypass(karri: Karri, s3, account: Creds) -> None:
    name = locked_bucket(s3)

    def governed(key: str) -> str:
        return s3.put_object(
            Bucket=name,
            Key=key,
            Body=b"g",
            ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=later(),
        )["VersionId"]

    version = governed("owned")
    assert error(s3.delete_object, Bucket=name, Key="owned", VersionId=version) == DENIED
    assert (
        error(
            s3.put_object_retention,
            Bucket=name,
            Key="owned",
            VersionId=version,
            Retention={},
        )
        == DENIED
    )
    s3.delete_object(Bucket=name, Key="owned", VersionId=version, BypassGovernanceRetention=True)
    assert error(s3.head_object, Bucket=name, Key="owned", VersionId=version)[1] == 404

    # An IAM user needs s3:BypassGovernanceRetention for it.
    everything = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    no_bypass = {"Effect": "Deny", "Action": "s3:BypassGovernanceRetention", "Resource": "*"}
    iam = karri.client("iam", account)
    for statements, allowed in (((everything, no_bypass), False), ((everything,), True)):
        user = unique("u")
        creds, _key = user_creds(karri, account, user)
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=policy(*statements))
        as_user = karri.client("s3", creds)
        version = governed(user)
        if allowed:
            as_user.put_object_retention(
                Bucket=name, Key=user, VersionId=version, Retention={},
                BypassGovernanceRetention=True,
            )  # fmt: skip
            assert error(s3.get_object_retention, Bucket=name, Key=user, VersionId=version) == (
                "NoSuchObjectLockConfiguration",
                404,
            )
            as_user.delete_object(Bucket=name, Key=user, VersionId=version)
        else:
            assert (
                error(
                    as_user.delete_object,
                    Bucket=name,
                    Key=user,
                    VersionId=version,
                    BypassGovernanceRetention=True,
                )
                == DENIED
            )
            outcome = as_user.delete_objects(
                Bucket=name,
                Delete={"Objects": [{"Key": user, "VersionId": version}]},
                BypassGovernanceRetention=True,
            )
            assert [e["Code"] for e in outcome["Errors"]] == ["AccessDenied"]


def test_a_legal_hold_keeps_a_version_until_it_is_lifted(s3) -> None:
    name = locked_bucket(s3)
    version = s3.put_object(Bucket=name, Key="evidence", Body=b"e", ObjectLockLegalHoldStatus="ON")[
        "VersionId"
    ]
    assert s3.head_object(Bucket=name, Key="evidence")["ObjectLockLegalHoldStatus"] == "ON"
    assert s3.get_object_legal_hold(Bucket=name, Key="evidence")["LegalHold"] == {"Status": "ON"}
    assert (
        error(
            s3.delete_object,
            Bucket=name,
            Key="evidence",
            VersionId=version,
            BypassGovernanceRetention=True,
        )
        == DENIED
    )
    s3.put_object_legal_hold(
        Bucket=name, Key="evidence", VersionId=version, LegalHold={"Status": "OFF"}
    )
    assert s3.get_object_legal_hold(Bucket=name, Key="evidence")["LegalHold"] == {"Status": "OFF"}
    s3.put_object_legal_hold(Bucket=name, Key="evidence", LegalHold={"Status": "ON"})
    s3.put_object_legal_hold(Bucket=name, Key="evidence", LegalHold={"Status": "OFF"})
    s3.delete_object(Bucket=name, Key="evidence", VersionId=version)


def test_a_hold_or_retention_never_set_is_no_configuration_and_off_is_shown(s3) -> None:
    """A version never given a legal hold (or a retention) has none to show:
    NoSuchObjectLockConfiguration, and no header on GET/HEAD; once set, OFF is shown."""
    name = locked_bucket(s3)
    s3.put_object(Bucket=name, Key="plain", Body=b"p")
    none = ("NoSuchObjectLockConfiguration", 404)
    assert error(s3.get_object_legal_hold, Bucket=name, Key="plain") == none
    assert error(s3.get_object_retention, Bucket=name, Key="plain") == none
    assert "ObjectLockLegalHoldStatus" not in s3.head_object(Bucket=name, Key="plain")
    s3.put_object_legal_hold(Bucket=name, Key="plain", LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=name, Key="plain")["LegalHold"] == {"Status": "OFF"}
    assert s3.head_object(Bucket=name, Key="plain")["ObjectLockLegalHoldStatus"] == "OFF"
    assert s3.get_object(Bucket=name, Key="plain")["ObjectLockLegalHoldStatus"] == "OFF"
    s3.put_object(Bucket=name, Key="off", Body=b"o", ObjectLockLegalHoldStatus="OFF")
    assert s3.get_object_legal_hold(Bucket=name, Key="off")["LegalHold"] == {"Status": "OFF"}


def test_default_retention_and_the_headers_of_copy_and_multipart(s3) -> None:
    name = locked_bucket(s3)
    s3.put_object_lock_configuration(
        Bucket=name,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}},
        },
    )
    config = s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
    assert config["Rule"] == {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}
    before = datetime.now(UTC)
    s3.put_object(Bucket=name, Key="plain", Body=b"p")
    retention = s3.get_object_retention(Bucket=name, Key="plain")["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    assert timedelta(days=2) - timedelta(minutes=5) < retention["RetainUntilDate"] - before
    assert retention["RetainUntilDate"] - before < timedelta(days=2, minutes=5)

    until = later(5)
    s3.copy_object(
        Bucket=name, Key="copy", CopySource={"Bucket": name, "Key": "plain"},
        ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
        ObjectLockLegalHoldStatus="ON",
    )  # fmt: skip
    head = s3.head_object(Bucket=name, Key="copy")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", until)
    assert head["ObjectLockLegalHoldStatus"] == "ON"

    upload = s3.create_multipart_upload(
        Bucket=name, Key="parts", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until
    )["UploadId"]
    etag = s3.upload_part(Bucket=name, Key="parts", UploadId=upload, PartNumber=1, Body=b"x")[
        "ETag"
    ]
    version = s3.complete_multipart_upload(
        Bucket=name, Key="parts", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )["VersionId"]  # fmt: skip
    got = s3.get_object(Bucket=name, Key="parts")
    assert (got["ObjectLockMode"], got["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", until)
    assert error(
        s3.delete_object, Bucket=name, Key="parts", VersionId=version,
        BypassGovernanceRetention=True,
    ) == DENIED  # fmt: skip


def test_object_lock_on_an_existing_versioned_bucket(s3) -> None:
    name = unique("later")
    s3.create_bucket(Bucket=name)
    lock = {"ObjectLockEnabled": "Enabled"}
    assert error(s3.put_object_lock_configuration, Bucket=name, ObjectLockConfiguration=lock) == (
        "InvalidBucketState",
        409,
    )
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=lock)
    s3.put_object(Bucket=name, Key="k", Body=b"k", ObjectLockLegalHoldStatus="ON")
    assert s3.get_object_legal_hold(Bucket=name, Key="k")["LegalHold"]["Status"] == "ON"


def test_s3s_errors(karri: Karri, s3, account: Creds, other_account: Creds) -> None:
    plain = unique("plain")
    s3.create_bucket(Bucket=plain)
    s3.put_object(Bucket=plain, Key="k", Body=b"k")
    missing = ("InvalidRequest", 400)
    assert error(s3.get_object_retention, Bucket=plain, Key="k") == missing
    assert error(s3.get_object_legal_hold, Bucket=plain, Key="k") == missing
    assert (
        error(s3.put_object_legal_hold, Bucket=plain, Key="k", LegalHold={"Status": "ON"})
        == missing
    )
    hold = {"ObjectLockLegalHoldStatus": "ON"}
    assert error(s3.put_object, Bucket=plain, Key="k", Body=b"k", **hold) == missing
    assert error(s3.get_object_lock_configuration, Bucket=plain) == (
        "ObjectLockConfigurationNotFoundError",
        404,
    )

    name = locked_bucket(s3)
    s3.put_object(Bucket=name, Key="free", Body=b"f")
    assert error(s3.get_object_retention, Bucket=name, Key="free") == (
        "NoSuchObjectLockConfiguration",
        404,
    )
    past = datetime.now(UTC) - timedelta(days=1)
    for wrong in (
        {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": past},
        {"ObjectLockMode": "COMPLIANCE"},
    ):
        assert error(s3.put_object, Bucket=name, Key="bad", Body=b"b", **wrong) == (
            "InvalidArgument",
            400,
        )
    for rule in ({"Mode": "GOVERNANCE"}, {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}):
        assert error(
            s3.put_object_lock_configuration,
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": rule},
            },
        ) == ("MalformedXML", 400)

    # Lock headers want the body's digest (here a raw request without one).
    url = f"{karri.s3_url}/{name}/raw"
    lock = {
        "x-amz-object-lock-mode": "GOVERNANCE",
        "x-amz-object-lock-retain-until-date": later().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    headers, _ = signed(account, "PUT", url, b"raw", lock)
    status, _headers, body = http("PUT", url, b"raw", headers)
    assert status == 400 and b"Content-MD5 OR x-amz-checksum-" in body
    md5 = base64.b64encode(hashlib.md5(b"raw").digest()).decode()
    headers, _ = signed(account, "PUT", url, b"raw", lock | {"Content-MD5": md5})
    assert http("PUT", url, b"raw", headers)[0] == 200

    other = karri.client("s3", other_account)
    assert error(other.get_object_lock_configuration, Bucket=name)[0] == "AccessDenied"
    assert error(other.get_object_retention, Bucket=name, Key="raw")[0] == "AccessDenied"
    assert (
        error(other.put_object_legal_hold, Bucket=name, Key="raw", LegalHold={"Status": "OFF"})[0]
        == "AccessDenied"
    )


def test_the_aws_cli_locks_and_shows(karri: Karri, account: Creds) -> None:
    name = unique("cli")
    karri.aws("s3api", "create-bucket", "--bucket", name, "--object-lock-enabled-for-bucket",
              creds=account)  # fmt: skip
    until = later(3).strftime("%Y-%m-%dT%H:%M:%SZ")
    put = karri.aws(
        "s3api", "put-object", "--bucket", name, "--key", "k", "--body", "/etc/hostname",
        "--object-lock-mode", "COMPLIANCE", "--object-lock-retain-until-date", until,
        creds=account,
    )  # fmt: skip
    head = karri.aws("s3api", "head-object", "--bucket", name, "--key", "k", creds=account)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"].startswith(until[:19])
    refused = karri.aws(
        "s3api", "delete-object", "--bucket", name, "--key", "k",
        f"--version-id={put['VersionId']}", creds=account, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr
    config = karri.aws("s3api", "get-object-lock-configuration", "--bucket", name, creds=account)
    assert config["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"


def test_lock_headers_need_their_iam_actions(karri: Karri, s3, account: Creds) -> None:
    name = locked_bucket(s3)
    user = unique("u")
    creds, _key = user_creds(karri, account, user)
    statements = (
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:PutObjectRetention", "Resource": "*"},
    )
    karri.client("iam", account).put_user_policy(
        UserName=user, PolicyName="p", PolicyDocument=policy(*statements)
    )
    as_user = karri.client("s3", creds)
    assert error(
        as_user.put_object, Bucket=name, Key="k", Body=b"k",
        ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later(),
    ) == DENIED  # fmt: skip
    as_user.put_object(Bucket=name, Key="k", Body=b"k", ObjectLockLegalHoldStatus="ON")
    assert as_user.get_object_legal_hold(Bucket=name, Key="k")["LegalHold"]["Status"] == "ON"


def test_a_write_grant_does_not_bypass_governance(
    karri: Karri, s3, account: Creds, other_account: Creds
) -> None:
    name = locked_bucket(s3)
    writer = {"Rules": [{"ObjectOwnership": "ObjectWriter"}]}  # ACLs on: a new bucket has them off
    s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=writer)
    s3.put_bucket_acl(
        Bucket=name,
        GrantFullControl=f'id="{account.account_id}"',
        GrantWrite=f'id="{other_account.account_id}"',
    )
    version = s3.put_object(
        Bucket=name, Key="g", Body=b"g",
        ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later(),
    )["VersionId"]  # fmt: skip
    other = karri.client("s3", other_account)
    assert error(
        other.delete_object, Bucket=name, Key="g", VersionId=version,
        BypassGovernanceRetention=True,
    ) == DENIED  # fmt: skip
    other.delete_object(Bucket=name, Key="g")  # a delete marker, as the grant allows
    assert s3.head_object(Bucket=name, Key="g", VersionId=version)["ObjectLockMode"] == "GOVERNANCE"


LOCK_HEADERS = ("ObjectLockMode", "ObjectLockRetainUntilDate", "ObjectLockLegalHoldStatus")


def shown(client, name: str) -> set[str]:
    """The lock fields GET and HEAD of ``name``'s key "k" show this caller."""
    head = client.head_object(Bucket=name, Key="k")
    got = client.get_object(Bucket=name, Key="k")
    assert got["Body"].read() == b"k"
    fields = {field for field in LOCK_HEADERS if field in head}
    assert fields == {field for field in LOCK_HEADERS if field in got}
    return fields


def test_get_and_head_show_a_lock_only_to_who_may_read_it(
    karri: Karri, s3, account: Creds, other_account: Creds
) -> None:
    name = locked_bucket(s3)
    s3.put_object(
        Bucket=name, Key="k", Body=b"k", ObjectLockLegalHoldStatus="ON",
        ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later(),
    )  # fmt: skip
    assert shown(s3, name) == set(LOCK_HEADERS)  # the owner's root

    def grant(*actions: str) -> None:
        statement = {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{other_account.account_id}:root"},
            "Action": ["s3:GetObject", *actions],
            "Resource": f"arn:aws:s3:::{name}/*",
        }
        s3.put_bucket_policy(Bucket=name, Policy=policy(statement))

    other = karri.client("s3", other_account)
    grant()
    assert shown(other, name) == set()
    grant("s3:GetObjectRetention")
    assert shown(other, name) == {"ObjectLockMode", "ObjectLockRetainUntilDate"}
    grant("s3:GetObjectLegalHold")
    assert shown(other, name) == {"ObjectLockLegalHoldStatus"}
    # A user of the owner's account: as its identity policies say.
    user = unique("u")
    creds, _key = user_creds(karri, account, user)
    statements = (
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectRetention"], "Resource": "*"},
    )
    karri.client("iam", account).put_user_policy(
        UserName=user, PolicyName="p", PolicyDocument=policy(*statements)
    )
    assert shown(karri.client("s3", creds), name) == {"ObjectLockMode", "ObjectLockRetainUntilDate"}
    s3.put_object_legal_hold(Bucket=name, Key="k", LegalHold={"Status": "OFF"})
