"""What the instance calls are asked, as the cloud reads it: plain values, no wire names.

The EC2 API layer turns a parsed request into these; the service checks what they mean
(with AWS's codes and messages) and carries them out. A ``None`` is "not given".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from karri.cloud.volumes.mappings import BlockDeviceMapping


@dataclass(frozen=True)
class NetworkInterfaceSpec:
    """A launch's network interface: the primary one (device index 0), new, in a subnet,
    with an address and a public address or not; others new or existing (``interface_id``),
    attached at their device index."""

    interface_id: str | None = None
    subnet_id: str | None = None
    private_ip: str | None = None
    device_index: int | None = None
    associate_public_ip: bool | None = None
    groups: tuple[str, ...] = ()
    """The security group ids of the interface."""
    description: str | None = None
    delete_on_termination: bool | None = None
    secondary_count: int | None = None
    private_ips: tuple[tuple[str, bool], ...] = ()
    """``PrivateIpAddresses``: each address and whether it is the primary one."""


@dataclass(frozen=True)
class MetadataOptions:
    """The instance metadata options of a launch, checked against AWS's values (karri's
    metadata service answers IMDSv1 and v2 either way)."""

    http_tokens: str | None = None
    http_endpoint: str | None = None
    http_protocol_ipv6: str | None = None
    instance_metadata_tags: str | None = None
    hop_limit: int | None = None


@dataclass(frozen=True)
class ProfileRef:
    """An IAM instance profile as EC2 names it: by ARN, by name, or both."""

    arn: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class LaunchOptions:
    """Launch options: those karri has nothing behind are refused with AWS's codes."""

    subnet_id: str | None = None
    launch_template_id: str | None = None
    launch_template_name: str | None = None
    instance_profile: ProfileRef | None = None
    metadata: MetadataOptions = MetadataOptions()
    core_count: int | None = None
    threads_per_core: int | None = None


@dataclass(frozen=True)
class RunRequest:
    """RunInstances. Two requests with one client token must be equal values."""

    image_id: str | None
    min_count: int | None
    max_count: int | None
    instance_type: str | None = None
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    zone: str | None = None
    key_name: str | None = None
    user_data: str | None = None
    """Base64-encoded, as the client sent it."""
    security_groups: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    shutdown_behavior: str | None = None
    disable_api_termination: bool = False
    disable_api_stop: bool = False
    private_ip: str | None = None
    network_interfaces: tuple[NetworkInterfaceSpec, ...] = ()
    instance_tags: Mapping[str, str] = field(default_factory=dict)
    volume_tags: Mapping[str, str] = field(default_factory=dict)
    block_device_mappings: tuple[BlockDeviceMapping, ...] = ()
    client_token: str | None = None
    options: LaunchOptions = LaunchOptions()
    fingerprint: str = ""
    """What makes two requests with one client token the same, as the API layer saw the
    whole request (members karri ignores included, as AWS compares them); empty: the
    fields above."""


ModifiableAttribute = Literal[
    "instanceType",
    "userData",
    "disableApiTermination",
    "instanceInitiatedShutdownBehavior",
    "kernel",
    "ramdisk",
    "sourceDestCheck",
    "disableApiStop",
]
RESETTABLE = ("kernel", "ramdisk", "sourceDestCheck")
"""What ResetInstanceAttribute may reset (AWS: kernel | ramdisk | sourceDestCheck)."""
MODIFIABLE: tuple[ModifiableAttribute, ...] = get_args(ModifiableAttribute)


@dataclass(frozen=True)
class AttributeChange:
    """One attribute ModifyInstanceAttribute sets, named as DescribeInstanceAttribute
    names it. ``userData`` is the data itself (decoded); ``disableApiTermination`` a
    boolean or its text."""

    name: ModifiableAttribute
    value: str | bytes | bool | None


@dataclass(frozen=True)
class DeviceChange:
    """A device of ModifyInstanceAttribute's block device mappings: whether its volume
    is deleted when the instance terminates (None: left as it is)."""

    device_name: str | None
    delete_on_termination: bool | None = None


@dataclass(frozen=True)
class AttributeRequest:
    """ModifyInstanceAttribute: the attributes to set, and the devices to change."""

    changes: tuple[AttributeChange, ...] = ()
    devices: tuple[DeviceChange, ...] = ()
    groups: tuple[str, ...] = ()
    """The security group ids that replace the instance's (``Groups``)."""
