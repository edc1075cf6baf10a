"""S3 Object Ownership and ``x-amz-expected-bucket-owner`` on a real `karri up`, from
boto3 and the AWS CLI."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Karri
from tests.integration.s3_helpers import unique


@pytest.fixture(scope="module")
def s3(karri: Karri):
    return karri.client("s3")


def refused(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def setting(s3, bucket: str) -> str:
    return s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0][
        "ObjectOwnership"
    ]


def owner_of(s3, bucket: str, key: str) -> tuple[str, list]:
    acl = s3.get_object_acl(Bucket=bucket, Key=key)
    return acl["Owner"]["ID"], [(g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]]


def test_a_new_bucket_has_acls_off(karri: Karri, s3) -> None:
    name = unique("enforced")
    s3.create_bucket(Bucket=name)
    assert setting(s3, name) == "BucketOwnerEnforced"
    me = karri.admin.account_id
    s3.put_object(Bucket=name, Key="plain", Body=b"p")
    s3.put_object(Bucket=name, Key="full", Body=b"f", ACL="bucket-owner-full-control")
    assert owner_of(s3, name, "full") == (me, [(me, "FULL_CONTROL")])
    not_supported = ("AccessControlListNotSupported", 400)
    assert refused(lambda: s3.put_object(Bucket=name, Key="k", Body=b"x", ACL="public-read")) == (
        not_supported
    )
    assert refused(lambda: s3.put_object(Bucket=name, Key="k", Body=b"x", ACL="private")) == (
        not_supported
    )
    assert refused(lambda: s3.put_bucket_acl(Bucket=name, ACL="public-read")) == not_supported
    assert refused(lambda: s3.put_object_acl(Bucket=name, Key="plain", ACL="public-read")) == (
        not_supported
    )
    assert refused(
        lambda: s3.create_multipart_upload(Bucket=name, Key="m", ACL="authenticated-read")
    ) == (not_supported)
    s3.get_bucket_acl(Bucket=name)  # reading ACLs still works


def test_create_bucket_takes_the_setting_and_refuses_acls_with_it(karri: Karri, s3) -> None:
    writer = unique("writer")
    karri.aws("s3api", "create-bucket", "--bucket", writer, "--object-ownership", "ObjectWriter")
    assert setting(s3, writer) == "ObjectWriter"
    s3.put_object(Bucket=writer, Key="public", Body=b"x", ACL="public-read")
    private = unique("private")
    s3.create_bucket(Bucket=private, ACL="private")  # what rclone sends: S3 prefers the owner
    assert setting(s3, private) == "BucketOwnerPreferred"
    assert refused(lambda: s3.create_bucket(Bucket=unique("pub"), ACL="public-read")) == (
        "InvalidBucketAclWithObjectOwnership",
        400,
    )
    assert refused(
        lambda: s3.create_bucket(
            Bucket=unique("bad"), ObjectOwnership="BucketOwnerEnforced", ACL="public-read"
        )
    ) == ("InvalidBucketAclWithObjectOwnership", 400)
    assert refused(lambda: s3.create_bucket(Bucket=unique("bad"), ObjectOwnership="Nobody")) == (
        "InvalidArgument",
        400,
    )


def test_controls_are_put_read_and_deleted(karri: Karri, s3, other_account) -> None:
    name = unique("controls")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_ownership_controls(
        Bucket=name, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]}
    )
    assert setting(s3, name) == "BucketOwnerPreferred"
    shown = karri.aws("s3api", "get-bucket-ownership-controls", "--bucket", name)
    assert shown["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerPreferred"}]
    assert refused(
        lambda: s3.put_bucket_ownership_controls(
            Bucket=name, OwnershipControls={"Rules": [{"ObjectOwnership": "Bogus"}]}
        )
    ) == ("MalformedXML", 400)
    other = karri.client("s3", other_account)
    assert refused(lambda: other.get_bucket_ownership_controls(Bucket=name))[0] == "AccessDenied"
    assert refused(
        lambda: other.put_bucket_ownership_controls(
            Bucket=name, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]}
        )
    )[0] == ("AccessDenied")
    assert refused(lambda: other.delete_bucket_ownership_controls(Bucket=name))[0] == (
        "AccessDenied"
    )
    s3.delete_bucket_ownership_controls(Bucket=name)
    assert refused(lambda: s3.get_bucket_ownership_controls(Bucket=name)) == (
        "OwnershipControlsNotFoundError",
        404,
    )
    s3.put_object(Bucket=name, Key="k", Body=b"x", ACL="public-read")  # no setting: ACLs on


def test_who_owns_what_another_account_writes(karri: Karri, s3, other_account) -> None:
    me, them = karri.admin.account_id, other_account.account_id
    name = unique("owners")
    s3.create_bucket(Bucket=name, ObjectOwnership="ObjectWriter")
    s3.put_bucket_acl(Bucket=name, GrantWrite=f'id="{them}"', GrantFullControl=f'id="{me}"')
    other = karri.client("s3", other_account)
    full = "bucket-owner-full-control"
    other.put_object(Bucket=name, Key="writer", Body=b"w", ACL=full)
    assert owner_of(other, name, "writer")[0] == them
    s3.put_bucket_ownership_controls(
        Bucket=name, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]}
    )
    other.put_object(Bucket=name, Key="preferred", Body=b"p", ACL=full)
    assert owner_of(s3, name, "preferred") == (me, [(me, "FULL_CONTROL")])
    other.put_object(Bucket=name, Key="kept", Body=b"k")  # no ACL: still the writer's
    assert owner_of(other, name, "kept")[0] == them
    enforce = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # the bucket's ACL grants another account: ACLs cannot go off yet
    assert refused(
        lambda: s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=enforce)
    ) == ("InvalidBucketAclWithObjectOwnership", 400)
    s3.put_bucket_acl(Bucket=name, ACL="private")
    listed = s3.list_objects_v2(Bucket=name, FetchOwner=True)["Contents"]
    assert {item["Key"]: item["Owner"]["ID"] for item in listed}["kept"] == them
    s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=enforce)
    # with ACLs off the bucket owner owns and reads all, whatever the old ACL said
    assert owner_of(s3, name, "kept") == (me, [(me, "FULL_CONTROL")])
    assert s3.get_object(Bucket=name, Key="kept")["Body"].read() == b"k"
    listed = s3.list_objects_v2(Bucket=name, FetchOwner=True)["Contents"]
    assert {item["Owner"]["ID"] for item in listed} == {me}
    versions = s3.list_object_versions(Bucket=name)["Versions"]
    assert {item["Owner"]["ID"] for item in versions} == {me}


def test_expected_bucket_owner(karri: Karri, s3, other_account) -> None:
    me = karri.admin.account_id
    name = unique("expected")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"x", ExpectedBucketOwner=me)
    assert s3.get_object(Bucket=name, Key="k", ExpectedBucketOwner=me)["Body"].read() == b"x"
    assert s3.list_objects_v2(Bucket=name, ExpectedBucketOwner=me)["KeyCount"] == 1
    wrong = other_account.account_id
    for call in (
        lambda: s3.get_object(Bucket=name, Key="k", ExpectedBucketOwner=wrong),
        lambda: s3.put_object(Bucket=name, Key="k", Body=b"y", ExpectedBucketOwner=wrong),
        lambda: s3.list_objects_v2(Bucket=name, ExpectedBucketOwner=wrong),
        lambda: s3.get_bucket_ownership_controls(Bucket=name, ExpectedBucketOwner=wrong),
        lambda: s3.head_bucket(Bucket=name, ExpectedBucketOwner=wrong),
        lambda: s3.copy_object(
            Bucket=name,
            Key="copy",
            CopySource={"Bucket": name, "Key": "k"},
            ExpectedSourceBucketOwner=wrong,
        ),
    ):
        code, status = refused(call)
        assert status == 403 and code in ("AccessDenied", "403")
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"x"  # nothing was written
    s3.copy_object(
        Bucket=name,
        Key="copy",
        CopySource={"Bucket": name, "Key": "k"},
        ExpectedSourceBucketOwner=me,
    )
    failed = karri.aws(
        "s3api", "get-object", "--bucket", name, "--key", "k", "--expected-bucket-owner",
        wrong, "/dev/null", check=False,
    )  # fmt: skip
    assert failed.returncode != 0 and "AccessDenied" in failed.stderr
