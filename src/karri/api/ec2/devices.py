"""Block device mappings between the wire and the cloud: a request's ``BlockDeviceMapping.N``
(RegisterImage, RunInstances) becomes ``BlockDeviceMapping`` values, and an image's or an
instance's devices become botocore's ``BlockDeviceMapping`` shape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from karri.api.ec2.members import request_of
from karri.cloud.volumes.mappings import BlockDeviceMapping, EbsDevice
from karri.cloud.volumes.models import VolumeAttachment


def requested_mappings(
    entries: Sequence[Mapping[str, Any]] | None,
) -> tuple[BlockDeviceMapping, ...]:
    """A request's mappings; what is missing stays None for the cloud to refuse or fill in."""
    return tuple(_requested(e) for e in entries or ())


def _requested(entry: Mapping[str, Any]) -> BlockDeviceMapping:
    ebs = entry.get("Ebs")
    return request_of(
        BlockDeviceMapping,
        entry,
        device_name=entry.get("DeviceName") or "",
        ebs=None if ebs is None else request_of(EbsDevice, ebs),
        no_device="NoDevice" in entry,  # its value is empty
    )


def mapping_info(mapping: BlockDeviceMapping) -> dict[str, Any]:
    """An image's mapping as DescribeImages and DescribeImageAttribute answer it."""
    info: dict[str, Any] = {"DeviceName": mapping.device_name}
    if mapping.virtual_name is not None:
        info["VirtualName"] = mapping.virtual_name
    ebs = mapping.ebs
    if ebs is not None:
        members = {
            "SnapshotId": ebs.snapshot_id,
            "VolumeSize": ebs.volume_size,
            "VolumeType": ebs.volume_type,
            "DeleteOnTermination": ebs.delete_on_termination,
            "Iops": ebs.iops,
            "Throughput": ebs.throughput,
            "Encrypted": ebs.encrypted,
            "KmsKeyId": ebs.kms_key_id,
        }
        info["Ebs"] = {k: v for k, v in members.items() if v is not None}
    return info


def mappings_info(mappings: Iterable[BlockDeviceMapping]) -> list[dict[str, Any]]:
    return [mapping_info(m) for m in mappings]


def attached_info(attachments: Iterable[VolumeAttachment]) -> list[dict[str, Any]]:
    """An instance's volumes as DescribeInstances (and its blockDeviceMapping attribute)
    answers them."""
    return [
        {
            "DeviceName": a.device,
            "Ebs": {
                "VolumeId": a.volume_id,
                "Status": a.state,
                "AttachTime": a.attach_time,
                "DeleteOnTermination": a.delete_on_termination,
            },
        }
        for a in attachments
    ]
