"""EBS volumes against a real `karri up`: lifecycle, filters, pagination, status,
attributes, cross-account isolation and every bad input, with boto3 and the AWS CLI."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Karri
from tests.integration.ebs import (
    GIB,
    ZONE,
    error_code,
    gone,
    new_volume,
    volume,
    volume_file,
    wait_until,
    wait_volume,
)


def test_volume_lifecycle(karri: Karri, ec2) -> None:
    created = ec2.create_volume(
        Size=2,
        AvailabilityZone=ZONE,
        VolumeType="gp3",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "data"}]}],
    )
    volume_id = created["VolumeId"]
    assert created["State"] == "creating"
    assert created["Size"] == 2 and created["VolumeType"] == "gp3"
    assert created["Tags"] == [{"Key": "Name", "Value": "data"}]
    described = wait_volume(ec2, volume_id)
    assert described["AvailabilityZone"] == ZONE
    assert described["Attachments"] == [] and described["Encrypted"] is False
    assert described["Iops"] == 3000 and described["Throughput"] == 125
    path = volume_file(karri, volume_id)
    assert path.stat().st_size == 2 * GIB
    assert path.stat().st_blocks == 0  # sparse: nothing written, nothing allocated
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [volume_id]}])["Tags"]
    assert tags[0]["ResourceType"] == "volume"

    ec2.delete_volume(VolumeId=volume_id)
    wait_until(lambda: gone(ec2, "describe_volumes", VolumeIds=[volume_id]))
    assert not path.exists()
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [volume_id]}])["Tags"] == []
    assert error_code(ec2.delete_volume, VolumeId=volume_id) == "InvalidVolume.NotFound"


def test_volume_types_are_recorded(ec2) -> None:
    for kind, extra, iops in (
        ("standard", {"Size": 1}, None),
        ("gp2", {"Size": 1}, 100),
        ("io1", {"Size": 10, "Iops": 500}, 500),  # at most 50 IOPS per GiB
    ):
        volume_id = ec2.create_volume(AvailabilityZone=ZONE, VolumeType=kind, **extra)["VolumeId"]
        described = wait_volume(ec2, volume_id)
        assert described["VolumeType"] == kind
        assert described.get("Iops") == iops
        ec2.delete_volume(VolumeId=volume_id)


def test_describe_filters_and_pagination(karri: Karri) -> None:
    ec2 = karri.client("ec2", karri.create_account("ebs-filters"))
    ids = [new_volume(ec2, size=1 + i % 2) for i in range(7)]
    ec2.create_tags(Resources=ids[:2], Tags=[{"Key": "team", "Value": "blue"}])

    def matching(*filters: tuple[str, list[str]]) -> set[str]:
        spec = [{"Name": n, "Values": v} for n, v in filters]
        return {v["VolumeId"] for v in ec2.describe_volumes(Filters=spec)["Volumes"]}

    assert matching(("size", ["2"])) == {ids[1], ids[3], ids[5]}
    assert matching(("status", ["available"])) == set(ids)
    assert matching(("status", ["in-use", "creating"])) == set()
    assert matching(("availability-zone", [ZONE]), ("size", ["1"])) == {
        ids[0],
        ids[2],
        ids[4],
        ids[6],
    }
    assert matching(("volume-id", [ids[0], ids[6]])) == {ids[0], ids[6]}
    assert matching(("tag:team", ["bl*"])) == set(ids[:2])
    assert matching(("tag-key", ["team"])) == set(ids[:2])
    assert matching(("attachment.status", ["attached"])) == set()
    assert matching(("volume-type", ["gp2"])) == set(ids)
    assert matching(("snapshot-id", [""])) == set(ids)
    assert matching(("create-time", ["20*"])) == set(ids)
    assert (
        error_code(ec2.describe_volumes, Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
        == "InvalidParameterValue"
    )

    seen: list[str] = []
    pages = ec2.get_paginator("describe_volumes").paginate(PaginationConfig={"PageSize": 5})
    for page in pages:
        assert len(page["Volumes"]) <= 5
        seen += [v["VolumeId"] for v in page["Volumes"]]
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert (
        error_code(ec2.describe_volumes, VolumeIds=[ids[0]], MaxResults=5)
        == "InvalidParameterCombination"
    )
    assert error_code(ec2.describe_volumes, MaxResults=5, NextToken="garbage") == (
        "InvalidPaginationToken"
    )


def test_volume_status_and_attributes(ec2) -> None:
    volume_id = new_volume(ec2)
    status = ec2.describe_volume_status(VolumeIds=[volume_id])["VolumeStatuses"][0]
    assert status["VolumeStatus"]["Status"] == "ok"
    assert {d["Name"]: d["Status"] for d in status["VolumeStatus"]["Details"]} == {
        "io-enabled": "passed",
        "io-performance": "not-applicable",
    }
    assert status["AvailabilityZone"] == ZONE
    filtered = ec2.describe_volume_status(
        Filters=[{"Name": "volume-status.status", "Values": ["impaired"]}]
    )["VolumeStatuses"]
    assert volume_id not in {s["VolumeId"] for s in filtered}

    attr = ec2.describe_volume_attribute(VolumeId=volume_id, Attribute="autoEnableIO")
    assert attr["AutoEnableIO"] == {"Value": False}
    ec2.modify_volume_attribute(VolumeId=volume_id, AutoEnableIO={"Value": True})
    attr = ec2.describe_volume_attribute(VolumeId=volume_id, Attribute="autoEnableIO")
    assert attr["AutoEnableIO"] == {"Value": True}
    assert (
        ec2.describe_volume_attribute(VolumeId=volume_id, Attribute="productCodes")["ProductCodes"]
        == []
    )
    assert (
        error_code(ec2.describe_volume_attribute, VolumeId=volume_id, Attribute="bogus")
        == "InvalidParameterValue"
    )
    ec2.delete_volume(VolumeId=volume_id)


def test_client_token_is_idempotent(ec2) -> None:
    first = ec2.create_volume(Size=1, AvailabilityZone=ZONE, ClientToken="tok-ebs-1")
    again = ec2.create_volume(Size=1, AvailabilityZone=ZONE, ClientToken="tok-ebs-1")
    assert first["VolumeId"] == again["VolumeId"]
    assert (
        error_code(ec2.create_volume, Size=3, AvailabilityZone=ZONE, ClientToken="tok-ebs-1")
        == "IdempotentParameterMismatch"
    )
    wait_volume(ec2, first["VolumeId"])
    ec2.delete_volume(VolumeId=first["VolumeId"])


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Size": 0}, "InvalidParameterValue"),
        ({"Size": 1025}, "InvalidParameterValue"),
        ({"Size": -1}, "InvalidParameterValue"),
        ({"Size": 1, "AvailabilityZone": "eucalyptus-1z"}, "InvalidParameterValue"),
        ({"Size": 1, "AvailabilityZone": None}, "MissingParameter"),
        ({}, "MissingParameter"),
        ({"Size": 1, "VolumeType": "floppy"}, "InvalidParameterValue"),
        ({"Size": 1, "VolumeType": "io1"}, "MissingParameter"),
        ({"Size": 1, "VolumeType": "gp2", "Iops": 300}, "InvalidParameterCombination"),
        ({"Size": 1, "KmsKeyId": "alias/aws/ebs"}, "InvalidParameterDependency"),
        ({"Size": 1, "Encrypted": True, "KmsKeyId": "alias/mine"}, "InvalidParameterValue"),
        ({"SnapshotId": "snap-00000000"}, "InvalidSnapshot.NotFound"),
        ({"SnapshotId": "snapshot-1"}, "InvalidSnapshotID.Malformed"),
        (
            {"Size": 1, "TagSpecifications": [{"ResourceType": "instance", "Tags": []}]},
            "InvalidParameterValue",
        ),
    ],
)
def test_create_volume_errors(ec2, params: dict, code: str) -> None:
    params = {"AvailabilityZone": ZONE, **params}
    if params["AvailabilityZone"] is None:
        del params["AvailabilityZone"]
    assert error_code(ec2.create_volume, **params) == code


def test_bad_volume_ids(ec2) -> None:
    assert error_code(ec2.describe_volumes, VolumeIds=["vol-12"]) == "InvalidVolumeID.Malformed"
    assert error_code(ec2.describe_volumes, VolumeIds=["vol-0badf00d"]) == "InvalidVolume.NotFound"
    assert error_code(ec2.delete_volume, VolumeId="i-12345678") == "InvalidVolumeID.Malformed"
    assert (
        error_code(ec2.describe_volume_status, VolumeIds=["vol-0badf00d"])
        == "InvalidVolume.NotFound"
    )


def test_accounts_are_isolated(karri: Karri, ec2, other_account) -> None:
    mine = new_volume(ec2)
    theirs = karri.client("ec2", other_account)
    assert mine not in {v["VolumeId"] for v in theirs.describe_volumes()["Volumes"]}
    assert error_code(theirs.describe_volumes, VolumeIds=[mine]) == "InvalidVolume.NotFound"
    assert error_code(theirs.delete_volume, VolumeId=mine) == "InvalidVolume.NotFound"
    assert error_code(theirs.create_snapshot, VolumeId=mine) == "InvalidVolume.NotFound"
    assert (
        error_code(theirs.modify_volume_attribute, VolumeId=mine, AutoEnableIO={"Value": True})
        == "InvalidVolume.NotFound"
    )
    assert (
        error_code(theirs.create_tags, Resources=[mine], Tags=[{"Key": "k", "Value": "v"}])
        == "InvalidVolume.NotFound"
    )
    assert volume(ec2, mine)["State"] == "available"
    ec2.delete_volume(VolumeId=mine)


def test_aws_cli(karri: Karri) -> None:
    created = karri.aws(
        "ec2", "create-volume", "--size", "1", "--availability-zone", ZONE, "--volume-type", "gp2"
    )
    volume_id = created["VolumeId"]

    def state() -> str:
        listed = karri.aws("ec2", "describe-volumes", "--volume-ids", volume_id, check=False)
        return json.loads(listed.stdout)["Volumes"][0]["State"] if listed.returncode == 0 else ""

    wait_until(lambda: state() == "available", step=0.5)
    karri.aws("ec2", "delete-volume", "--volume-id", volume_id)
    wait_until(lambda: state() == "", step=0.5)


def test_attach_and_detach_errors_without_an_instance(ec2) -> None:
    volume_id = new_volume(ec2)
    attach = ec2.attach_volume
    assert (
        error_code(attach, VolumeId=volume_id, InstanceId="i-0badf00d", Device="/dev/sdf")
        == "InvalidInstanceID.NotFound"
    )
    assert (
        error_code(attach, VolumeId=volume_id, InstanceId="inst-1", Device="/dev/sdf")
        == "InvalidInstanceID.Malformed"
    )
    assert (
        error_code(attach, VolumeId=volume_id, InstanceId="i-0badf00d", Device="sdf")
        == "InvalidParameterValue"
    )
    assert (
        error_code(attach, VolumeId="vol-0badf00d", InstanceId="i-0badf00d", Device="/dev/sdf")
        == "InvalidVolume.NotFound"
    )
    assert error_code(ec2.detach_volume, VolumeId=volume_id) == "IncorrectState"
    assert error_code(ec2.detach_volume, VolumeId="vol-0badf00d") == "InvalidVolume.NotFound"
    assert volume(ec2, volume_id)["State"] == "available"
    ec2.delete_volume(VolumeId=volume_id)
