"""The EBS calls that take more than a few arguments, as the API layer hands them over:
plain values, already parsed from the request (the wire's member names stop there)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CreateVolumeRequest:
    availability_zone: str | None = None
    availability_zone_id: str | None = None
    size: int | None = None  # GiB
    snapshot_id: str | None = None
    volume_type: str | None = None
    iops: int | None = None
    throughput: int | None = None  # MiB/s
    encrypted: bool = False
    kms_key_id: str | None = None
    multi_attach_enabled: bool = False
    client_token: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CopySnapshotRequest:
    source_snapshot_id: str | None = None
    source_region: str | None = None
    destination_region: str | None = None
    description: str | None = None
    encrypted: bool = False
    kms_key_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CreateImageRequest:
    """CreateImage: an EBS-backed instance's volumes become an image. The tags are those
    the request puts on the image and on each of its snapshots."""

    instance_id: str | None = None
    name: str | None = None
    description: str | None = None
    no_reboot: bool = False
    image_tags: Mapping[str, str] = field(default_factory=dict)
    snapshot_tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModifyVolumeRequest:
    volume_id: str | None = None
    size: int | None = None  # GiB
    volume_type: str | None = None
    iops: int | None = None
    throughput: int | None = None  # MiB/s
    multi_attach_enabled: bool | None = None
