"""Block device mappings checked and normalized: every EBS mapping gets its size, type and
``delete_on_termination`` filled in, so an image says exactly which volumes a launch
creates."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from karri.cloud.volumes.attachments import check_device
from karri.cloud.volumes.mappings import BlockDeviceMapping, EbsDevice
from karri.cloud.volumes.models import Snapshot
from karri.cloud.volumes.snapshots import volume_size
from karri.cloud.volumes.volume_types import TYPES, check_options, check_type, settle
from karri.errors import CloudError, invalid_value, missing_parameter


def _merge(
    base: Sequence[BlockDeviceMapping], overrides: Sequence[BlockDeviceMapping]
) -> list[BlockDeviceMapping]:
    """The image's mappings with the request's replacing them device by device;
    ``no_device`` removes a device."""
    merged = {m.device_name: m for m in base}
    for mapping in overrides:
        device = mapping.device_name
        if not device:
            raise missing_parameter("BlockDeviceMapping.DeviceName")
        if mapping.no_device:
            merged.pop(device, None)
            continue
        previous = merged.get(device)
        if mapping.ebs is not None:
            ebs = mapping.ebs.over(previous.ebs) if previous and previous.ebs else mapping.ebs
            merged[device] = BlockDeviceMapping(device, ebs=ebs)
        else:
            merged[device] = mapping
    return list(merged.values())


def normalize(
    mappings: Sequence[BlockDeviceMapping],
    root_device: str,
    snapshot_of: Callable[[str], Snapshot],
    *,
    require_root: bool,
    base: Sequence[BlockDeviceMapping] = (),
    default_type: str = "gp2",
) -> list[BlockDeviceMapping]:
    """Check mappings and fill in their defaults.

    ``snapshot_of`` answers a snapshot the caller may create volumes from (or raises
    ``InvalidSnapshot.NotFound``); ``base`` are the image's own mappings, which
    ``mappings`` override. With ``require_root`` the root device must be an EBS volume
    from a snapshot (an EBS-backed image).
    """
    devices = [m.device_name for m in mappings]
    twice = next((d for d in devices if d and devices.count(d) > 1), None)
    if twice:
        raise CloudError(
            "InvalidBlockDeviceMapping",
            f"The device '{twice}' is used in more than one block-device mapping",
        )
    out: list[BlockDeviceMapping] = []
    seen: set[str] = set()
    for mapping in _merge(base, mappings):
        device = mapping.device_name
        if device != root_device:
            check_device(device)
        if device in seen:
            raise invalid_value(f"The device name {device} is used more than once")
        seen.add(device)
        if mapping.ebs is None:
            if not mapping.virtual_name:
                raise missing_parameter(f"BlockDeviceMapping {device}: Ebs or VirtualName")
            out.append(BlockDeviceMapping(device, virtual_name=mapping.virtual_name))
            continue
        ebs = _normal_ebs(device, mapping.ebs, snapshot_of, default_type)
        out.append(BlockDeviceMapping(device, ebs=ebs))
    if require_root:
        root = next((m for m in out if m.device_name == root_device), None)
        if root is None or root.ebs is None or not root.ebs.snapshot_id:
            raise invalid_value(
                f"The root device {root_device} must be an EBS volume with a SnapshotId"
            )
    return out


def _normal_ebs(
    device: str, ebs: EbsDevice, snapshot_of: Callable[[str], Snapshot], default_type: str
) -> EbsDevice:
    volume_type = check_type(ebs.volume_type or default_type)
    check_options(volume_type, ebs.iops, ebs.throughput)  # before the snapshot, as CreateVolume
    size = ebs.volume_size
    if ebs.snapshot_id:
        size = volume_size(size, snapshot_of(ebs.snapshot_id))
    elif size is None:
        raise missing_parameter(f"BlockDeviceMapping {device}: SnapshotId or VolumeSize")
    settled = settle(volume_type, size, ebs.iops, ebs.throughput)
    return EbsDevice(
        snapshot_id=ebs.snapshot_id or None,
        volume_size=size,
        volume_type=volume_type,
        delete_on_termination=ebs.delete_on_termination is not False,
        iops=settled.iops if TYPES[volume_type].iops else None,  # gp2's follows its size
        throughput=settled.throughput,
        encrypted=bool(ebs.encrypted),
        kms_key_id=ebs.kms_key_id or None,
    )
