"""Block device mappings: what RegisterImage records and RunInstances turns into volumes.

A mapping is kept in botocore's ``BlockDeviceMapping`` shape, normalized: every EBS
mapping has its ``VolumeSize``, ``VolumeType`` and ``DeleteOnTermination`` filled in, so
an image says exactly which volumes a launch creates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from karri.cloud.volumes.attachments import check_device
from karri.cloud.volumes.models import Snapshot
from karri.cloud.volumes.service import VOLUME_TYPES, performance
from karri.cloud.volumes.snapshots import volume_size
from karri.errors import CloudError, invalid_value, missing_parameter


def _merge(
    base: Sequence[Mapping[str, Any]], overrides: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The image's mappings with the request's replacing them device by device;
    ``NoDevice`` removes a device."""
    merged: dict[str, dict[str, Any]] = {m["DeviceName"]: dict(m) for m in base}
    for mapping in overrides:
        device = mapping.get("DeviceName")
        if not device:
            raise missing_parameter("BlockDeviceMapping.DeviceName")
        if "NoDevice" in mapping:
            merged.pop(device, None)
            continue
        previous = merged.get(device, {})
        if mapping.get("Ebs") is not None:
            ebs = {**(previous.get("Ebs") or {}), **mapping["Ebs"]}
            merged[device] = {"DeviceName": device, "Ebs": ebs}
        else:
            merged[device] = dict(mapping)
    return list(merged.values())


def normalize(
    mappings: Sequence[Mapping[str, Any]],
    root_device: str,
    snapshot_of: Callable[[str], Snapshot],
    *,
    require_root: bool,
    base: Sequence[Mapping[str, Any]] = (),
    default_type: str = "gp2",
) -> list[dict[str, Any]]:
    """Check mappings and fill in their defaults.

    ``snapshot_of`` answers a snapshot the caller may create volumes from (or raises
    ``InvalidSnapshot.NotFound``); ``base`` are the image's own mappings, which
    ``mappings`` override. With ``require_root`` the root device must be an EBS volume
    from a snapshot (an EBS-backed image).
    """
    devices = [m.get("DeviceName") for m in mappings]
    twice = next((d for d in devices if d and devices.count(d) > 1), None)
    if twice:
        raise CloudError(
            "InvalidBlockDeviceMapping",
            f"The device '{twice}' is used in more than one block-device mapping",
        )
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for mapping in _merge(base, mappings):
        device = mapping["DeviceName"]
        if device != root_device:
            check_device(device)
        if device in seen:
            raise invalid_value(f"The device name {device} is used more than once")
        seen.add(device)
        ebs = mapping.get("Ebs")
        if ebs is None:
            virtual = mapping.get("VirtualName")
            if not virtual:
                raise missing_parameter(f"BlockDeviceMapping {device}: Ebs or VirtualName")
            out.append({"DeviceName": device, "VirtualName": virtual})  # ephemeralN, swap
            continue
        if ebs.get("Encrypted"):
            raise CloudError("UnsupportedOperation", "Encrypted volumes are not supported.")
        size = ebs.get("VolumeSize")
        snapshot_id = ebs.get("SnapshotId")
        if snapshot_id:
            size = volume_size(size, snapshot_of(snapshot_id))
        elif size is None:
            raise missing_parameter(f"BlockDeviceMapping {device}: SnapshotId or VolumeSize")
        if size < 1:
            raise invalid_value(f"Volume of {size}GiB is too small; minimum is 1GiB.")
        volume_type = ebs.get("VolumeType") or default_type
        if volume_type not in VOLUME_TYPES:
            raise invalid_value(f"Value ({volume_type}) for parameter volumeType is invalid.")
        normalized: dict[str, Any] = {
            "VolumeSize": size,
            "VolumeType": volume_type,
            "DeleteOnTermination": bool(ebs.get("DeleteOnTermination", True)),
            "Encrypted": False,
        }
        if snapshot_id:
            normalized["SnapshotId"] = snapshot_id
        iops, _throughput = performance(volume_type, ebs)  # as CreateVolume checks them
        if iops is not None:
            normalized["Iops"] = iops
        if ebs.get("Throughput") is not None:
            normalized["Throughput"] = ebs["Throughput"]
        out.append({"DeviceName": device, "Ebs": normalized})
    if require_root:
        root = next((m for m in out if m["DeviceName"] == root_device), None)
        if root is None or "SnapshotId" not in (root.get("Ebs") or {}):
            raise invalid_value(
                f"The root device {root_device} must be an EBS volume with a SnapshotId"
            )
    return out


def ebs_mappings(mappings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in mappings if m.get("Ebs") is not None]
