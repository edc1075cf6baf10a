"""The image calls that take more than a few arguments, as the API layer hands them over:
plain values, already parsed from the request (the wire's member names stop there)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from karri.cloud.permissions import PermissionModification
from karri.cloud.volumes.mappings import BlockDeviceMapping


@dataclass(frozen=True)
class RegisterRequest:
    """RegisterImage: of a bundle (``image_location``), or EBS-backed (no location, its
    root device in ``block_device_mappings``). CreateImage and ImportImage register
    EBS-backed images with it too."""

    name: str | None = None
    image_location: str | None = None
    description: str | None = None
    architecture: str | None = None
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    root_device_name: str | None = None
    virtualization_type: str | None = None
    block_device_mappings: tuple[BlockDeviceMapping, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModifyImageRequest:
    """ModifyImageAttribute: the description (``Description.Value``, or ``attribute`` with
    ``value``) or the launch permission."""

    image_id: str | None = None
    attribute: str | None = None
    description: str | None = None
    value: str | None = None
    launch_permission: PermissionModification = field(default_factory=PermissionModification)


@dataclass(frozen=True)
class DiskContainer:
    """ImportImage's disk: in a bucket (``s3_bucket``, ``s3_key``) or at a ``url``."""

    format: str | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None
    url: str | None = None
    snapshot_id: str | None = None


@dataclass(frozen=True)
class ImportImageRequest:
    disk_containers: tuple[DiskContainer, ...] = ()
    architecture: str | None = None
    description: str | None = None
    platform: str | None = None
    license_type: str | None = None
    client_token: str | None = None
