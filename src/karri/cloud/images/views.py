"""Who may see and launch an image, what a launch is told of one, and the DescribeImages
filters."""

from __future__ import annotations

from dataclasses import dataclass

from karri.cloud.filters import FilterSet
from karri.cloud.images.models import Image
from karri.cloud.volumes.mappings import BlockDeviceMapping, from_records
from karri.timestamps import iso8601

PREFIXES = {"machine": "emi", "kernel": "eki", "ramdisk": "eri"}
TYPES = {prefix: kind for kind, prefix in PREFIXES.items()}
ARCHITECTURES = ("i386", "x86_64")
HIDDEN_STATES = ("deregistered",)


@dataclass(frozen=True)
class ImageView:
    image: Image
    tags: dict[str, str]
    shared_with: frozenset[str]  # account ids with an explicit launch permission

    def launchable_by(self, account_id: str) -> bool:
        return may_launch(self.image, account_id, self.shared_with)

    @property
    def block_device_mappings(self) -> tuple[BlockDeviceMapping, ...]:
        return from_records(self.image.block_device_mappings)


@dataclass(frozen=True)
class LaunchImage:
    """What the images service tells a launch about an image the caller may use."""

    image_id: str
    kernel_id: str | None
    ramdisk_id: str | None
    root_device_type: str  # instance-store | ebs
    root_device_name: str
    architecture: str
    block_device_mappings: tuple[BlockDeviceMapping, ...] = ()


def may_launch(image: Image, account_id: str, shared_with: frozenset[str] | set[str]) -> bool:
    if image.state in HIDDEN_STATES:
        return False
    return image.account_id == account_id or image.is_public or account_id in shared_with


def state_reason(image: Image) -> tuple[str, str] | None:
    """(code, message) of a failed image, as AWS's StateReason reports it."""
    if not image.state_reason:
        return None
    code, _, message = image.state_reason.partition(": ")
    return code, message


UNSET = (
    "boot-mode",
    "ena-support",
    "sriov-net-support",
    "source-image-id",
    "source-image-region",
    "source-instance-id",
    "free-tier-eligible",
    "image-allowed",
    "public-ssm-parameter-name",
    "instance-type-specification.supported-instance-type",
    "instance-type-specification.unsupported-instance-type",
    *(
        f"image-watermark.{name}"
        for name in (
            "source-image-creation-time",
            "source-image-id",
            "source-image-region",
            "watermark-creation-time",
            "watermark-key",
        )
    ),
    *(
        f"scan-result.{name}"
        for name in (
            "highest-finding-severity-label",
            "finding-scan-date",
            *(
                f"{level}-fix-available-since"
                for level in ("critical", "high", "medium", "low", "informational")
            ),
        )
    ),
)

FILTERS: FilterSet[ImageView] = FilterSet(
    {
        "architecture": lambda v: v.image.architecture,
        "description": lambda v: v.image.description,
        "image-id": lambda v: v.image.id,
        "image-type": lambda v: v.image.image_type,
        "is-public": lambda v: v.image.is_public,
        "kernel-id": lambda v: v.image.kernel_id,
        "ramdisk-id": lambda v: v.image.ramdisk_id,
        "manifest-location": lambda v: v.image.location,
        "name": lambda v: v.image.name,
        "owner-id": lambda v: v.image.account_id,
        "state": lambda v: v.image.state,
        "state-reason-code": lambda v: (state_reason(v.image) or ("", ""))[0],
        "state-reason-message": lambda v: (state_reason(v.image) or ("", ""))[1],
        "root-device-type": lambda v: v.image.root_device_type,
        "root-device-name": lambda v: v.image.root_device_name,
        "virtualization-type": lambda v: v.image.virtualization_type,
        "hypervisor": lambda _v: "kvm",
        "platform": lambda _v: None,
        "block-device-mapping.device-name": lambda v: [
            m.device_name for m in v.block_device_mappings
        ],
        "block-device-mapping.snapshot-id": lambda v: [
            m.ebs.snapshot_id if m.ebs else None for m in v.block_device_mappings
        ],
        "block-device-mapping.volume-size": lambda v: [
            m.ebs.volume_size if m.ebs else None for m in v.block_device_mappings
        ],
        "block-device-mapping.volume-type": lambda v: [
            m.ebs.volume_type if m.ebs else None for m in v.block_device_mappings
        ],
        "block-device-mapping.delete-on-termination": lambda v: [
            m.ebs.delete_on_termination if m.ebs else None for m in v.block_device_mappings
        ],
        # AWS's aliases name its own images (amazon, aws-marketplace); karri's have none
        "owner-alias": lambda _v: None,
        "creation-date": lambda v: iso8601(v.image.created_at),
        "product-code": lambda _v: [],
        "product-code.type": lambda _v: [],
        "block-device-mapping.encrypted": lambda v: [
            bool(m.ebs.encrypted) if m.ebs else None for m in v.block_device_mappings
        ],
        # What karri's images never carry (boot mode, ENA or SR-IOV flags, a source image
        # or instance, Inspector scans, watermarks, allowed-image and free-tier settings,
        # SSM parameters): the filters match none of them, as on AWS for an image without.
        **dict.fromkeys(UNSET, lambda _v: None),
    }
)
