"""CreateVolume, DescribeVolumes, DeleteVolume, DescribeVolumeStatus, volume attributes,
ModifyVolume and DescribeVolumesModifications."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from karri.api.ec2.actions.keypairs import tag_list
from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.members import request_of
from karri.api.ec2.tagging import specified_tags
from karri.cloud.volumes import states
from karri.cloud.volumes.attachments import AttachmentView
from karri.cloud.volumes.models import VolumeAttachment, VolumeModification
from karri.cloud.volumes.requests import CreateVolumeRequest, ModifyVolumeRequest
from karri.cloud.volumes.service import VolumeView


def attachment_info(attachment: VolumeAttachment, state: str | None = None) -> dict[str, Any]:
    return {
        "VolumeId": attachment.volume_id,
        "InstanceId": attachment.instance_id,
        "Device": attachment.device,
        "State": state or attachment.state,
        "AttachTime": attachment.attach_time,
        "DeleteOnTermination": attachment.delete_on_termination,
    }


def volume_info(view: VolumeView, key_arn: Callable[[str], str]) -> dict[str, Any]:
    """``key_arn``: the ARN of an account's EBS key (asked for encrypted volumes only)."""
    v = view.volume
    info: dict[str, Any] = {
        "VolumeId": v.id,
        "Size": v.size_gib,
        "SnapshotId": v.snapshot_id or "",
        "AvailabilityZone": v.zone,
        "State": view.state,
        "CreateTime": v.created_at,
        "Attachments": [attachment_info(view.attachment)] if view.attachment else [],
        "Encrypted": v.encrypted,
        "VolumeType": v.volume_type,
        "MultiAttachEnabled": False,
        "Tags": tag_list(view.tags),
    }
    if v.encrypted:
        info["KmsKeyId"] = key_arn(v.account_id)
    if v.iops is not None:
        info["Iops"] = v.iops
    if v.throughput is not None:
        info["Throughput"] = v.throughput
    return info


def _describe_args(params: dict[str, Any]) -> tuple:
    return (
        params.get("VolumeIds"),
        params.get("Filters"),
        params.get("MaxResults"),
        params.get("NextToken"),
    )


@action("CreateVolume")
def create_volume(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    request = request_of(
        CreateVolumeRequest,
        params,
        tags=specified_tags(params.get("TagSpecifications"), "volume"),
    )
    view = ctx.cloud.ebs.volumes.create(ctx.account_id, request)
    return volume_info(view, ctx.cloud.ebs.keys.key_arn)


@action("DescribeVolumes")
def describe_volumes(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    page = ctx.cloud.ebs.volumes.describe(ctx.account_id, *_describe_args(params))
    return {
        "Volumes": [volume_info(v, ctx.cloud.ebs.keys.key_arn) for v in page.items],
        "NextToken": page.next_token,
    }


@action("DeleteVolume")
def delete_volume(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.ebs.volumes.delete(ctx.account_id, params.get("VolumeId"))
    return {}


@action("DescribeVolumeStatus")
def describe_volume_status(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    page = ctx.cloud.ebs.volumes.describe(ctx.account_id, *_describe_args(params), status=True)
    statuses = []
    for view in page.items:
        volume = view.volume
        statuses.append(
            {
                "VolumeId": volume.id,
                "AvailabilityZone": volume.zone,
                "VolumeStatus": {
                    "Status": states.io_status(volume),
                    "Details": [
                        {"Name": "io-enabled", "Status": states.io_enabled(volume)},
                        {"Name": "io-performance", "Status": "not-applicable"},
                    ],
                },
                "Actions": [],
                "Events": [],
            }
        )
    return {"VolumeStatuses": statuses, "NextToken": page.next_token}


@action("DescribeVolumeAttribute")
def describe_volume_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params.get("Attribute")
    volume = ctx.cloud.ebs.volumes.attribute(ctx.account_id, params.get("VolumeId"), name)
    if name == "autoEnableIO":
        return {"VolumeId": volume.id, "AutoEnableIO": {"Value": volume.auto_enable_io}}
    return {"VolumeId": volume.id, "ProductCodes": []}


@action("ModifyVolumeAttribute")
def modify_volume_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.ebs.volumes.modify_attribute(
        ctx.account_id, params.get("VolumeId"), (params.get("AutoEnableIO") or {}).get("Value")
    )
    return {}


def _attachment_answer(view: AttachmentView) -> dict[str, Any]:
    return attachment_info(view.attachment, view.state)


@action("AttachVolume")
def attach_volume(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.ebs.attachments.attach(
        ctx.account_id, params.get("VolumeId"), params.get("InstanceId"), params.get("Device")
    )
    return _attachment_answer(view)


@action("DetachVolume")
def detach_volume(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.ebs.attachments.detach(
        ctx.account_id,
        params.get("VolumeId"),
        params.get("InstanceId"),
        params.get("Device"),
        bool(params.get("Force")),
    )
    return _attachment_answer(view)


def modification_info(m: VolumeModification) -> dict[str, Any]:
    info: dict[str, Any] = {
        "VolumeId": m.volume_id,
        "ModificationState": m.state,
        "StatusMessage": m.status_message,
        "TargetSize": m.target_size,
        "TargetIops": m.target_iops,
        "TargetVolumeType": m.target_type,
        "TargetThroughput": m.target_throughput,
        "TargetMultiAttachEnabled": False,
        "OriginalSize": m.original_size,
        "OriginalIops": m.original_iops,
        "OriginalVolumeType": m.original_type,
        "OriginalThroughput": m.original_throughput,
        "OriginalMultiAttachEnabled": False,
        "Progress": m.progress,
        "StartTime": m.start_time,
        "EndTime": m.end_time,
    }
    return {key: value for key, value in info.items() if value is not None}


@action("ModifyVolume")
def modify_volume(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    request = request_of(ModifyVolumeRequest, params)
    modification = ctx.cloud.ebs.modifications.modify(ctx.account_id, request)
    return {"VolumeModification": modification_info(modification)}


@action("DescribeVolumesModifications", read_only=True)
def describe_volumes_modifications(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    page = ctx.cloud.ebs.modifications.describe(ctx.account_id, *_describe_args(params))
    return {
        "VolumesModifications": [modification_info(m) for m in page.items],
        "NextToken": page.next_token,
    }
