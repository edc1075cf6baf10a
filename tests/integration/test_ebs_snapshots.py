"""EBS snapshots against a real `karri up`: kept in Walrus, exact bytes back, sharing
with createVolumePermission, copies, deletion at any stage, and every bad input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Creds, Karri
from tests.integration.ebs import (
    GIB,
    ZONE,
    digest,
    error_code,
    gone,
    new_volume,
    snapshot,
    volume_file,
    wait_snapshot,
    wait_until,
    wait_volume,
    write_pattern,
    zeros_after,
)

MIB = 1 << 20
OFFSETS = [0, 5 * MIB + 123, GIB - MIB, 2 * GIB - MIB]


def restore(ec2: Any, snapshot_id: str, **extra: Any) -> str:
    volume_id = ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone=ZONE, **extra)[
        "VolumeId"
    ]
    wait_volume(ec2, volume_id)
    return volume_id


@pytest.fixture(scope="module")
def known(karri: Karri) -> dict[str, str]:
    """A 2 GiB volume with known bytes, and a completed snapshot of it."""
    ec2 = karri.client("ec2")
    volume_id = new_volume(ec2, size=2)
    path = volume_file(karri, volume_id)
    write_pattern(path, seed=7, offsets=OFFSETS)
    snap = ec2.create_snapshot(
        VolumeId=volume_id,
        Description="known bytes",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}],
    )
    assert snap["State"] == "pending" and snap["VolumeSize"] == 2
    assert snap["Tags"] == [{"Key": "k", "Value": "v"}]
    done = wait_snapshot(ec2, snap["SnapshotId"])
    assert done["State"] == "completed", done
    return {"volume": volume_id, "snapshot": snap["SnapshotId"], "digest": digest(path)}


def test_snapshot_restores_exact_bytes(karri: Karri, ec2, known: dict[str, str]) -> None:
    described = snapshot(ec2, known["snapshot"])
    assert described["Progress"] == "100%"
    assert described["VolumeId"] == known["volume"]
    assert described["Description"] == "known bytes"
    assert described["OwnerId"] == karri.admin.account_id
    assert described["Tags"] == [{"Key": "k", "Value": "v"}]
    assert "CompletionTime" in described

    same = restore(ec2, known["snapshot"])
    assert digest(volume_file(karri, same)) == known["digest"]
    bigger = restore(ec2, known["snapshot"], Size=3)
    path = volume_file(karri, bigger)
    assert path.stat().st_size == 3 * GIB
    assert digest(path, 2 * GIB) == known["digest"]
    assert zeros_after(path, 2 * GIB)
    assert path.stat().st_blocks * 512 < 64 * MIB  # holes stayed holes
    listed = ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [known["snapshot"]]}])
    assert {v["VolumeId"] for v in listed["Volumes"]} == {same, bigger}
    assert (
        error_code(ec2.create_volume, SnapshotId=known["snapshot"], AvailabilityZone=ZONE, Size=1)
        == "InvalidParameterValue"
    )
    for volume_id in (same, bigger):
        ec2.delete_volume(VolumeId=volume_id)


def test_snapshot_is_point_in_time(karri: Karri, ec2) -> None:
    """The volume is deleted right after CreateSnapshot: the snapshot still has its bytes."""
    volume_id = new_volume(ec2)
    write_pattern(volume_file(karri, volume_id), seed=11, offsets=[0, 300 * MIB])
    expected = digest(volume_file(karri, volume_id))
    snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    ec2.delete_volume(VolumeId=volume_id)
    assert wait_snapshot(ec2, snap_id)["State"] == "completed"
    wait_until(lambda: gone(ec2, "describe_volumes", VolumeIds=[volume_id]))
    restored = restore(ec2, snap_id)
    assert digest(volume_file(karri, restored)) == expected
    ec2.delete_volume(VolumeId=restored)
    ec2.delete_snapshot(SnapshotId=snap_id)


def test_describe_snapshots_owners_and_filters(karri: Karri, ec2, known: dict[str, str]) -> None:
    me = karri.admin.account_id
    mine = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert known["snapshot"] in mine
    assert known["snapshot"] in {
        s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=[me])["Snapshots"]
    }
    assert ec2.describe_snapshots(OwnerIds=["amazon"])["Snapshots"] == []

    def matching(name: str, *values: str) -> set[str]:
        found = ec2.describe_snapshots(Filters=[{"Name": name, "Values": list(values)}])
        return {s["SnapshotId"] for s in found["Snapshots"]}

    snap = known["snapshot"]
    assert snap in matching("volume-id", known["volume"])
    assert snap in matching("status", "completed")
    assert snap not in matching("status", "pending", "error")
    assert snap in matching("owner-id", me)
    assert snap in matching("volume-size", "2")
    assert snap in matching("description", "known*")
    assert snap in matching("progress", "100%")
    assert snap in matching("tag:k", "v")
    assert snap not in matching("tag:k", "w")
    assert error_code(ec2.describe_snapshots, SnapshotIds=["snap-0badf00d"]) == (
        "InvalidSnapshot.NotFound"
    )
    assert error_code(ec2.describe_snapshots, SnapshotIds=["snap"]) == (
        "InvalidSnapshotID.Malformed"
    )


def test_describe_snapshots_pagination(karri: Karri) -> None:
    ec2 = karri.client("ec2", karri.create_account("ebs-snap-pages"))
    volume_id = new_volume(ec2)
    ids = {ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"] for _ in range(6)}
    for snap_id in ids:
        wait_snapshot(ec2, snap_id)
    seen: list[str] = []
    pages = ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"], PaginationConfig={"PageSize": 5}
    )
    for page in pages:
        assert len(page["Snapshots"]) <= 5
        seen += [s["SnapshotId"] for s in page["Snapshots"]]
    assert sorted(seen) == sorted(ids)


def _shared_ids(ec2: Any, **params: Any) -> set[str]:
    return {s["SnapshotId"] for s in ec2.describe_snapshots(**params)["Snapshots"]}


def test_sharing_with_an_account(
    karri: Karri, ec2, known: dict[str, str], other_account: Creds
) -> None:
    snap = known["snapshot"]
    theirs = karri.client("ec2", other_account)
    assert snap not in _shared_ids(theirs)
    assert error_code(theirs.describe_snapshots, SnapshotIds=[snap]) == "InvalidSnapshot.NotFound"
    assert (
        error_code(theirs.create_volume, SnapshotId=snap, AvailabilityZone=ZONE)
        == "InvalidSnapshot.NotFound"
    )

    ec2.modify_snapshot_attribute(
        SnapshotId=snap,
        Attribute="createVolumePermission",
        OperationType="add",
        UserIds=[other_account.account_id],
    )
    attr = ec2.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")
    assert attr["CreateVolumePermissions"] == [{"UserId": other_account.account_id}]
    assert snap in _shared_ids(theirs)
    assert snap in _shared_ids(theirs, RestorableByUserIds=["self"])
    assert snap not in _shared_ids(theirs, OwnerIds=["self"])
    assert snap in _shared_ids(theirs, OwnerIds=[karri.admin.account_id])
    shared = theirs.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]
    assert shared["OwnerId"] == karri.admin.account_id
    assert shared["Tags"] == []  # tags are the owner's own

    restored = restore(theirs, snap)
    assert digest(volume_file(karri, restored)) == known["digest"]

    # only the owner manages the snapshot
    assert error_code(theirs.delete_snapshot, SnapshotId=snap) == "InvalidSnapshot.NotFound"
    assert (
        error_code(
            theirs.describe_snapshot_attribute, SnapshotId=snap, Attribute="createVolumePermission"
        )
        == "InvalidSnapshot.NotFound"
    )
    assert (
        error_code(
            theirs.modify_snapshot_attribute,
            SnapshotId=snap,
            CreateVolumePermission={"Add": [{"Group": "all"}]},
        )
        == "InvalidSnapshot.NotFound"
    )

    ec2.modify_snapshot_attribute(
        SnapshotId=snap,
        CreateVolumePermission={"Remove": [{"UserId": other_account.account_id}]},
    )
    assert snap not in _shared_ids(theirs)
    assert (
        error_code(theirs.create_volume, SnapshotId=snap, AvailabilityZone=ZONE)
        == "InvalidSnapshot.NotFound"
    )
    # the volume made while it was shared is B's and stays
    assert wait_volume(theirs, restored)["SnapshotId"] == snap
    theirs.delete_volume(VolumeId=restored)


def test_sharing_with_everyone(
    karri: Karri, ec2, known: dict[str, str], other_account: Creds
) -> None:
    snap = known["snapshot"]
    theirs = karri.client("ec2", other_account)
    ec2.modify_snapshot_attribute(
        SnapshotId=snap, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"]
    )
    assert ec2.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")[
        "CreateVolumePermissions"
    ] == [{"Group": "all"}]
    assert snap in _shared_ids(theirs)
    assert snap in _shared_ids(theirs, RestorableByUserIds=["all"])
    assert snap in _shared_ids(ec2, RestorableByUserIds=["all"])
    ec2.reset_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")
    assert (
        ec2.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")[
            "CreateVolumePermissions"
        ]
        == []
    )
    assert snap not in _shared_ids(theirs)


def test_copy_snapshot(karri: Karri, ec2, known: dict[str, str], other_account: Creds) -> None:
    copy = ec2.copy_snapshot(
        SourceSnapshotId=known["snapshot"],
        SourceRegion=karri.region,
        Description="a copy",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "c", "Value": "1"}]}],
    )
    copied = wait_snapshot(ec2, copy["SnapshotId"])
    assert copied["State"] == "completed"
    assert copied["VolumeId"] == "vol-ffffffff" and copied["VolumeSize"] == 2
    assert copied["Description"] == "a copy" and copied["Tags"] == [{"Key": "c", "Value": "1"}]
    restored = restore(ec2, copy["SnapshotId"])
    assert digest(volume_file(karri, restored)) == known["digest"]
    ec2.delete_volume(VolumeId=restored)

    theirs = karri.client("ec2", other_account)
    assert (
        error_code(
            theirs.copy_snapshot, SourceSnapshotId=known["snapshot"], SourceRegion=karri.region
        )
        == "InvalidSnapshot.NotFound"
    )
    ec2.modify_snapshot_attribute(
        SnapshotId=copy["SnapshotId"],
        CreateVolumePermission={"Add": [{"UserId": other_account.account_id}]},
    )
    their_copy = theirs.copy_snapshot(
        SourceSnapshotId=copy["SnapshotId"], SourceRegion=karri.region
    )["SnapshotId"]
    assert wait_snapshot(theirs, their_copy)["OwnerId"] == other_account.account_id
    assert (
        error_code(ec2.copy_snapshot, SourceSnapshotId=known["snapshot"], SourceRegion="us-east-1")
        == "InvalidParameterValue"
    )
    ec2.delete_snapshot(SnapshotId=copy["SnapshotId"])
    # B's copy is B's own: it outlives the snapshot it was copied from
    assert wait_until(lambda: gone(ec2, "describe_snapshots", SnapshotIds=[copy["SnapshotId"]]))
    assert snapshot(theirs, their_copy)["State"] == "completed"
    theirs.delete_snapshot(SnapshotId=their_copy)


def test_delete_pending_snapshot(karri: Karri, ec2) -> None:
    volume_id = new_volume(ec2)
    write_pattern(volume_file(karri, volume_id), seed=3, offsets=[i * 64 * MIB for i in range(8)])
    snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    ec2.delete_snapshot(SnapshotId=snap_id)
    wait_until(lambda: gone(ec2, "describe_snapshots", SnapshotIds=[snap_id]))
    assert error_code(ec2.delete_snapshot, SnapshotId=snap_id) == "InvalidSnapshot.NotFound"
    checkpoints = karri.data_dir / "volumes" / "checkpoints"
    wait_until(lambda: not list(checkpoints.glob(f"{snap_id}*")))
    ec2.delete_volume(VolumeId=volume_id)


def test_snapshot_errors(ec2, known: dict[str, str]) -> None:
    snap = known["snapshot"]
    assert error_code(ec2.create_snapshot, VolumeId="vol-0badf00d") == "InvalidVolume.NotFound"
    assert error_code(ec2.create_snapshot, VolumeId="vol") == "InvalidVolumeID.Malformed"
    assert (
        error_code(ec2.create_snapshot, VolumeId=known["volume"], Description="x" * 256)
        == "InvalidParameterValue"
    )
    assert error_code(ec2.delete_snapshot, SnapshotId="snap-0badf00d") == (
        "InvalidSnapshot.NotFound"
    )
    modify = ec2.modify_snapshot_attribute
    assert (
        error_code(modify, SnapshotId=snap, OperationType="add", GroupNames=["everyone"])
        == "InvalidParameterValue"
    )
    assert (
        error_code(modify, SnapshotId=snap, OperationType="add", UserIds=["alice"])
        == "InvalidUserID.Malformed"
    )
    assert error_code(modify, SnapshotId=snap, UserIds=["123456789012"]) == "MissingParameter"
    assert (
        error_code(
            modify,
            SnapshotId=snap,
            Attribute="productCodes",
            OperationType="add",
            UserIds=["123456789012"],
        )
        == "InvalidParameterValue"
    )
    assert (
        error_code(ec2.describe_snapshot_attribute, SnapshotId=snap, Attribute="bogus")
        == "InvalidParameterValue"
    )
    assert (
        error_code(ec2.reset_snapshot_attribute, SnapshotId=snap, Attribute="productCodes")
        == "InvalidParameterValue"
    )


def test_snapshots_with_the_aws_cli(karri: Karri, known: dict[str, str]) -> None:
    out = karri.aws("ec2", "describe-snapshots", "--snapshot-ids", known["snapshot"])
    assert out["Snapshots"][0]["State"] == "completed"
    created = karri.aws("ec2", "create-snapshot", "--volume-id", known["volume"])
    snap_id = created["SnapshotId"]

    def state() -> str:
        out = karri.aws("ec2", "describe-snapshots", "--snapshot-ids", snap_id)
        return out["Snapshots"][0]["State"]

    wait_until(lambda: state() == "completed", step=0.5)
    karri.aws("ec2", "delete-snapshot", "--snapshot-id", snap_id)
