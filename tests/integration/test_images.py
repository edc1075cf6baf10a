"""Images against a real `karri up`: the default set, bundles from `karri image install` and
from the raw API calls, launch permissions, deregistration, and every bad input."""

from __future__ import annotations

import io
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from karri.cloud.images.bundle import BundleSpec, create_bundle
from karri.cloud.images.manifest import Manifest
from tests.conftest import KARRI, Creds, Karri

DEFAULT_SET = ("karri-tiny-kernel", "karri-tiny-ramdisk", "karri-tiny")


def wait_image(ec2: Any, image_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        if image["State"] != "pending" or time.monotonic() > deadline:
            return image
        time.sleep(0.3)


def cloud_cert(karri: Karri, creds: Creds):
    from karri.cli.images import Endpoint, cloud_certificate

    return cloud_certificate(
        Endpoint(
            karri.ec2_url,
            karri.s3_url,
            karri.region,
            creds.access_key_id,
            creds.secret_access_key,
            creds.account_id,
        )
    )


def upload_bundle(
    karri: Karri,
    creds: Creds,
    tmp_path: Path,
    data: bytes,
    *,
    bucket: str,
    prefix: str = "b",
    spec: dict | None = None,
    edit=None,
    skip_part: int | None = None,
    tamper_part: int | None = None,
) -> str:
    """Bundle ``data`` with karri's bundler, upload it as euca2ools does; the location."""
    s3 = karri.client("s3", creds)
    try:
        s3.create_bucket(Bucket=bucket, ObjectOwnership="ObjectWriter")  # ACLs on
    except ClientError as error:
        assert error.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"
    work = tmp_path / f"bundle-{prefix}"
    work.mkdir()
    manifest, manifest_path = create_bundle(
        io.BytesIO(data),
        len(data),
        BundleSpec(name="disk.img", account_id=creds.account_id, **(spec or {})),
        cloud_cert(karri, creds),
        work,
        part_size=64 * 1024,
    )
    for index, part in enumerate(manifest.parts):
        if index == skip_part:
            continue
        body = (work / part.filename).read_bytes()
        if index == tamper_part:
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        s3.put_object(
            Bucket=bucket, Key=f"{prefix}/{part.filename}", Body=body, ACL="aws-exec-read"
        )
    document = manifest_path.read_bytes()
    if edit is not None:
        document = edit(manifest, document)
    key = f"{prefix}/{manifest_path.name}"
    s3.put_object(Bucket=bucket, Key=key, Body=document, ACL="aws-exec-read")
    return f"{bucket}/{key}"


def disk(size: int = 300_000) -> bytes:
    return os.urandom(size // 3) + b"\0" * (size - size // 3)


def own_images(ec2: Any) -> set[str]:
    return {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}


def error_code(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def test_default_set_is_registered_and_public(karri: Karri, other_account: Creds) -> None:
    admin = karri.client("ec2")
    deadline = time.monotonic() + 300
    while True:
        images = admin.describe_images(Filters=[{"Name": "name", "Values": ["karri-tiny*"]}])
        found = {i["Name"]: i for i in images["Images"]}
        ready = all(found.get(n, {}).get("State") == "available" for n in DEFAULT_SET)
        if ready or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert ready, found
    kernel, ramdisk, machine = (found[n] for n in DEFAULT_SET)
    assert kernel["ImageId"].startswith("eki-") and kernel["ImageType"] == "kernel"
    assert ramdisk["ImageId"].startswith("eri-") and ramdisk["ImageType"] == "ramdisk"
    assert machine["ImageId"].startswith("emi-") and machine["ImageType"] == "machine"
    assert machine["KernelId"] == kernel["ImageId"]
    assert machine["RamdiskId"] == ramdisk["ImageId"]
    assert all(i["Public"] and i["OwnerId"] == karri.admin.account_id for i in found.values())
    assert machine["RootDeviceType"] == "instance-store"
    seen = karri.client("ec2", other_account).describe_images(ExecutableUsers=["all"])
    assert {n for n in DEFAULT_SET} <= {i["Name"] for i in seen["Images"]}


def test_service_certificate_matches_karri_cloud_cert(karri: Karri) -> None:
    from cryptography import x509

    pem = karri.cli("cloud-cert").stdout
    served = cloud_cert(karri, karri.admin)
    local = x509.load_pem_x509_certificate(pem.encode()).public_key()
    assert served.public_numbers() == local.public_numbers()


def test_karri_image_install_for_a_second_account(
    karri: Karri, other_account: Creds, tmp_path: Path
) -> None:
    image_file = tmp_path / "mine.img"
    image_file.write_bytes(disk(2_000_000))
    result = subprocess.run(
        [KARRI, "image", "install", str(image_file), "--kind", "machine", "--name", "mine"],
        capture_output=True,
        text=True,
        env=karri.aws_env(other_account),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    image_id = result.stdout.strip().splitlines()[-1]
    assert image_id.startswith("emi-")
    mine = karri.client("ec2", other_account)
    image = mine.describe_images(ImageIds=[image_id])["Images"][0]
    assert image["State"] == "available" and image["Name"] == "mine"
    assert image["OwnerId"] == other_account.account_id and not image["Public"]
    assert image_id not in {i["ImageId"] for i in karri.client("ec2").describe_images()["Images"]}


def test_raw_bundle_and_register_image(karri: Karri, other_account: Creds, tmp_path: Path) -> None:
    location = upload_bundle(
        karri, other_account, tmp_path, disk(), bucket=f"raw-{other_account.account_id}"
    )
    ec2 = karri.client("ec2", other_account)
    image_id = ec2.register_image(ImageLocation=location, Name="raw-bundle")["ImageId"]
    image = wait_image(ec2, image_id)
    assert image["State"] == "available", image
    assert image["ImageLocation"] == location and image["Architecture"] == "x86_64"
    listed = karri.aws(
        "ec2",
        "describe-images",
        "--owners",
        "self",
        "--filters",
        "Name=name,Values=raw-*",
        creds=other_account,
    )
    assert [i["ImageId"] for i in listed["Images"]] == [image_id]


def test_tampered_part_fails_with_a_reason(
    karri: Karri, other_account: Creds, tmp_path: Path
) -> None:
    location = upload_bundle(
        karri,
        other_account,
        tmp_path,
        disk(),
        bucket=f"tamper-{other_account.account_id}",
        tamper_part=1,
    )
    ec2 = karri.client("ec2", other_account)
    image_id = ec2.register_image(ImageLocation=location, Name="tampered")["ImageId"]
    image = wait_image(ec2, image_id)
    assert image["State"] == "failed"
    assert "disk.img.part.01 is corrupt" in image["StateReason"]["Message"]
    assert error_code(lambda: ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1))[0] in (
        "InvalidAMIID.Unavailable",
        "InvalidAMIID.NotFound",
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not-xml", "InvalidManifest"),
        ("missing-part", "InvalidManifest"),
        ("unknown-arch", "InvalidParameterValue"),
        ("over-quota", "ResourceLimitExceeded"),
        ("kernel-by-user", "UnauthorizedOperation"),
    ],
)
def test_bad_bundles_register_nothing(
    karri: Karri, other_account: Creds, tmp_path: Path, case: str, expected: str
) -> None:
    options: dict[str, Any] = {}
    if case == "not-xml":
        options["edit"] = lambda _m, _doc: b"this is { not xml"
    elif case == "missing-part":
        options["skip_part"] = 1
    elif case == "unknown-arch":
        options["edit"] = lambda _m, doc: doc.replace(b">x86_64<", b">sparc64<")
    elif case == "over-quota":

        def huge(m: Manifest, _doc: bytes) -> bytes:
            m.size = 11 * 1024**3
            return m.to_xml()

        options["edit"] = huge
    elif case == "kernel-by-user":
        options["spec"] = {"image_type": "kernel"}
    location = upload_bundle(
        karri,
        other_account,
        tmp_path,
        disk(),
        bucket=f"bad-{other_account.account_id}",
        prefix=case,
        **options,
    )
    ec2 = karri.client("ec2", other_account)
    before = own_images(ec2)
    code, message = error_code(lambda: ec2.register_image(ImageLocation=location, Name=case))
    assert code == expected, message
    assert own_images(ec2) == before


def test_manifest_that_does_not_exist(karri: Karri, other_account: Creds) -> None:
    ec2 = karri.client("ec2", other_account)
    code, _ = error_code(
        lambda: ec2.register_image(ImageLocation="no-such-bucket/x.manifest.xml", Name="none")
    )
    assert code == "InvalidManifest"


def test_launch_permissions_and_deregistration(
    karri: Karri, other_account: Creds, tmp_path: Path
) -> None:
    owner = karri.create_account(f"owner-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    location = upload_bundle(karri, owner, tmp_path, disk(), bucket=f"perm-{owner.account_id}")
    mine, theirs = karri.client("ec2", owner), karri.client("ec2", other_account)
    image_id = mine.register_image(ImageLocation=location, Name="shared-one")["ImageId"]
    assert wait_image(mine, image_id)["State"] == "available"

    def visible() -> bool:
        return image_id in {i["ImageId"] for i in theirs.describe_images()["Images"]}

    assert not visible()
    assert error_code(lambda: theirs.describe_images(ImageIds=[image_id]))[0] == (
        "InvalidAMIID.NotFound"
    )
    mine.modify_image_attribute(
        ImageId=image_id, LaunchPermission={"Add": [{"UserId": other_account.account_id}]}
    )
    assert visible()
    perms = mine.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert perms["LaunchPermissions"] == [{"UserId": other_account.account_id}]
    shared = theirs.describe_images(ExecutableUsers=["self"])["Images"]
    assert image_id in {i["ImageId"] for i in shared}
    # Tags are each account's own: the owner's stay unseen, the other account's too.
    mine.create_tags(Resources=[image_id], Tags=[{"Key": "team", "Value": "owner"}])
    assert not theirs.describe_images(ImageIds=[image_id])["Images"][0].get("Tags")
    theirs.create_tags(Resources=[image_id], Tags=[{"Key": "team", "Value": "user"}])
    theirs.delete_tags(Resources=[image_id], Tags=[{"Key": "team", "Value": "owner"}])
    seen = theirs.describe_images(ImageIds=[image_id])["Images"][0]["Tags"]
    assert seen == [{"Key": "team", "Value": "user"}]
    assert mine.describe_images(ImageIds=[image_id])["Images"][0]["Tags"] == [
        {"Key": "team", "Value": "owner"}
    ]
    assert {t["Value"] for t in theirs.describe_tags()["Tags"]} >= {"user"}
    assert "owner" not in {t["Value"] for t in theirs.describe_tags()["Tags"]}
    mine.modify_image_attribute(
        ImageId=image_id, LaunchPermission={"Remove": [{"UserId": other_account.account_id}]}
    )
    assert not visible()
    assert (
        error_code(lambda: theirs.run_instances(ImageId=image_id, MinCount=1, MaxCount=1))[0]
        == "InvalidAMIID.NotFound"
    )
    mine.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    assert visible()
    assert theirs.describe_images(ImageIds=[image_id])["Images"][0]["Public"]
    assert (
        error_code(
            lambda: theirs.modify_image_attribute(
                ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]}
            )
        )[0]
        == "AuthFailure"
    )
    mine.reset_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert not visible()
    mine.modify_image_attribute(ImageId=image_id, Description={"Value": "a test image"})
    described = mine.describe_image_attribute(ImageId=image_id, Attribute="description")
    assert described["Description"]["Value"] == "a test image"
    modify = mine.modify_image_attribute
    for refused, code in (
        ({"Description": {"Value": "d" * 256}}, "InvalidParameterValue"),
        (
            {"OperationType": "bogus", "UserIds": [other_account.account_id]},
            "InvalidParameterValue",
        ),
        (
            {"Description": {"Value": "two"}, "LaunchPermission": {"Add": [{"Group": "all"}]}},
            "InvalidParameterCombination",
        ),
    ):
        assert error_code(lambda r=refused: modify(ImageId=image_id, **r))[0] == code, refused
    # An unknown attribute is refused before the image is looked at, even someone else's
    for client in (mine, theirs):
        refused = error_code(
            lambda c=client: c.describe_image_attribute(ImageId=image_id, Attribute="bogus")
        )
        assert refused[0] == "InvalidRequest"
    sriov = mine.describe_image_attribute(ImageId=image_id, Attribute="sriovNetSupport")
    assert sriov["SriovNetSupport"] == {}
    assert not visible()
    mine.deregister_image(ImageId=image_id)
    assert image_id not in own_images(mine)
    assert error_code(lambda: mine.describe_images(ImageIds=[image_id]))[0] == (
        "InvalidAMIID.NotFound"
    )


def test_bad_permission_values(karri: Karri, other_account: Creds) -> None:
    ec2 = karri.client("ec2")
    machine = ec2.describe_images(Filters=[{"Name": "name", "Values": ["karri-tiny"]}])
    if not machine["Images"]:
        pytest.skip("default set not registered")
    image_id = machine["Images"][0]["ImageId"]
    code, _ = error_code(
        lambda: ec2.modify_image_attribute(
            ImageId=image_id, LaunchPermission={"Add": [{"UserId": "not-an-account"}]}
        )
    )
    assert code == "InvalidAMIAttributeItemValue"
    assert error_code(lambda: ec2.describe_images(ImageIds=["emi-zz"]))[0] == (
        "InvalidAMIID.Malformed"
    )
