"""CreateSnapshot, DescribeSnapshots, DeleteSnapshot, CopySnapshot, snapshot attributes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from karri.api.ec2.actions.keypairs import tag_list
from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.members import request_of
from karri.api.ec2.permissions import grantee_info, permission_modification
from karri.api.ec2.tagging import specified_tags
from karri.cloud.volumes.requests import CopySnapshotRequest
from karri.cloud.volumes.snapshots import SnapshotView


def snapshot_info(view: SnapshotView, key_arn: Callable[[str], str]) -> dict[str, Any]:
    """``key_arn``: the ARN of an account's EBS key (asked for encrypted snapshots only)."""
    s = view.snapshot
    info: dict[str, Any] = {
        "SnapshotId": s.id,
        "VolumeId": s.volume_id,
        "State": s.state,
        "StartTime": s.started_at,
        "Progress": f"{s.progress}%",
        "OwnerId": s.account_id,
        "Description": s.description,
        "VolumeSize": s.volume_size,
        "Encrypted": s.encrypted,
        "StorageTier": "standard",
        "Tags": tag_list(view.tags),
    }
    if s.encrypted:
        info["KmsKeyId"] = key_arn(s.account_id)
    if s.state_message:
        info["StateMessage"] = s.state_message
    if s.completed_at is not None:
        info["CompletionTime"] = s.completed_at
    return info


@action("CreateSnapshot")
def create_snapshot(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.ebs.snapshots.create(
        ctx.account_id,
        params.get("VolumeId"),
        params.get("Description"),
        specified_tags(params.get("TagSpecifications"), "snapshot"),
    )
    return snapshot_info(view, ctx.cloud.ebs.keys.key_arn)


@action("DescribeSnapshots")
def describe_snapshots(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    page = ctx.cloud.ebs.snapshots.describe(
        ctx.account_id,
        params.get("SnapshotIds"),
        params.get("OwnerIds"),
        params.get("RestorableByUserIds"),
        params.get("Filters"),
        params.get("MaxResults"),
        params.get("NextToken"),
    )
    return {
        "Snapshots": [snapshot_info(v, ctx.cloud.ebs.keys.key_arn) for v in page.items],
        "NextToken": page.next_token,
    }


@action("DeleteSnapshot")
def delete_snapshot(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.ebs.snapshots.delete(ctx.account_id, params.get("SnapshotId"))
    return {}


@action("CopySnapshot")
def copy_snapshot(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    request = request_of(
        CopySnapshotRequest,
        params,
        tags=specified_tags(params.get("TagSpecifications"), "snapshot"),
    )
    view = ctx.cloud.ebs.snapshots.copy(ctx.account_id, request)
    return {"SnapshotId": view.snapshot.id, "Tags": tag_list(view.tags)}


@action("DescribeSnapshotAttribute")
def describe_snapshot_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    attribute = ctx.cloud.ebs.snapshots.attribute(
        ctx.account_id, params.get("SnapshotId"), params.get("Attribute")
    )
    if attribute.name == "productCodes":
        return {"SnapshotId": attribute.snapshot_id, "ProductCodes": []}
    return {
        "SnapshotId": attribute.snapshot_id,
        "CreateVolumePermissions": [grantee_info(g) for g in attribute.grantees],
    }


@action("ModifySnapshotAttribute")
def modify_snapshot_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.ebs.snapshots.modify_attribute(
        ctx.account_id,
        params.get("SnapshotId"),
        params.get("Attribute"),
        permission_modification(params, "CreateVolumePermission", "GroupNames"),
    )
    return {}


@action("ResetSnapshotAttribute")
def reset_snapshot_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.ebs.snapshots.reset_attribute(
        ctx.account_id, params.get("SnapshotId"), params.get("Attribute")
    )
    return {}
