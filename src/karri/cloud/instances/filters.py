"""DescribeInstances' filters: every name the EC2 API reference lists, read from what
DescribeInstances reports of the instance (its row, primary interface and the interface's
tags, elastic IP, volume attachments, its reservation's client token, its IAM instance
profile).

Names for what karri's instances never have (capacity reservations, dedicated hosts,
placement groups, Outposts, IPv6, spot requests, operators) match no instance, as on AWS
for an instance without one; ``FIXED`` holds the settings every
karri instance has (the API reports the same values).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from karri.cloud.filters import FilterSet
from karri.cloud.instances import states
from karri.cloud.instances.addresses import public_dns_name
from karri.cloud.instances.groups import groups_of
from karri.cloud.instances.models import Instance
from karri.cloud.instances.profiles import Profile
from karri.cloud.network.address_models import ElasticIp
from karri.cloud.network.defaults import private_dns_name
from karri.cloud.network.models import NetworkInterface
from karri.cloud.volumes.models import VolumeAttachment


@dataclass(frozen=True)
class Fixed:
    """What every karri instance has, whatever its launch asked (the metadata service
    answers IMDSv1 and v2 on IPv4; guests boot by BIOS; no hibernation, enclaves, ENA)."""

    boot_mode: str = "legacy-bios"
    platform_details: str = "Linux/UNIX"
    usage_operation: str = "RunInstances"
    hostname_type: str = "ip-name"
    capacity_reservation_preference: str = "open"
    auto_recovery: str = "default"
    metadata: Mapping[str, Any] = field(
        default_factory=lambda: {
            "state": "applied",
            "http-endpoint": "enabled",
            "http-protocol-ipv4": "enabled",
            "http-protocol-ipv6": "disabled",
            "http-put-response-hop-limit": 1,
            "http-tokens": "optional",
            "instance-metadata-tags": "disabled",
        }
    )


FIXED = Fixed()


@dataclass(frozen=True)
class InstanceFacts:
    """One instance as the filters read it."""

    instance: Instance
    region: str
    interface: NetworkInterface | None = None
    interface_tags: Mapping[str, str] = field(default_factory=dict)
    elastic_ip: ElasticIp | None = None
    volumes: Sequence[VolumeAttachment] = ()
    client_token: str | None = None
    zone_id: str | None = None
    profile: Profile | None = None
    public_names: bool = True  # its VPC gives public DNS names (enableDnsHostnames)


Getter = Callable[[InstanceFacts], Any]


def _row(getter: Callable[[Instance], Any]) -> Getter:
    return lambda f: getter(f.instance)


def _eni(getter: Callable[[NetworkInterface], Any]) -> Getter:
    return lambda f: getter(f.interface) if f.interface is not None else None


def _volumes(getter: Callable[[VolumeAttachment], Any]) -> Getter:
    return lambda f: [getter(a) for a in f.volumes]


def _public_ip(f: InstanceFacts) -> str | None:
    return f.instance.public_ip


def _public_dns(f: InstanceFacts) -> str | None:
    ip = f.instance.public_ip
    return public_dns_name(ip, f.region) if ip and f.public_names else None


def _private_dns(f: InstanceFacts) -> str | None:
    ip = f.instance.private_ip
    return private_dns_name(ip, f.region) if ip else None


def _eni_private_dns(f: InstanceFacts) -> str | None:
    ip = f.interface.private_ip if f.interface is not None else None
    return private_dns_name(ip, f.region) if ip else None


def _ip_owner(f: InstanceFacts) -> str | None:
    if not f.instance.public_ip:
        return None
    return f.instance.account_id if f.elastic_ip else "amazon"


def _elastic(attr: str) -> Getter:
    return lambda f: getattr(f.elastic_ip, attr) if f.elastic_ip else None


def _groups(attr: str) -> Getter:
    return lambda f: [getattr(g, attr) for g in groups_of(f.instance)]


def _none(_f: InstanceFacts) -> None:
    return None


def _association(prefix: str) -> dict[str, Getter]:
    """The public address of the primary interface (and of its primary address)."""
    return {
        f"{prefix}.allocation-id": _elastic("id"),
        f"{prefix}.association-id": _elastic("association_id"),
        f"{prefix}.carrier-ip": _none,
        f"{prefix}.customer-owned-ip": _none,
        f"{prefix}.ip-owner-id": _ip_owner,
        f"{prefix}.public-dns-name": _public_dns,
        f"{prefix}.public-ip": _public_ip,
    }


_INTERFACE: dict[str, Getter] = {
    "addresses.primary": _eni(lambda _n: True),
    "addresses.private-dns-name": _eni_private_dns,
    "addresses.private-ip-address": _eni(lambda n: n.private_ip),
    **{f"addresses.{k}": v for k, v in _association("association").items()},
    **_association("association"),
    "attachment.attach-time": _eni(lambda n: n.attach_time),
    "attachment.attachment-id": _eni(lambda n: n.attachment_id),
    "attachment.delete-on-termination": _eni(lambda n: n.delete_on_termination),
    "attachment.device-index": _eni(lambda n: n.device_index),
    "attachment.instance-id": _eni(lambda n: n.instance_id),
    "attachment.instance-owner-id": _eni(lambda n: n.account_id),
    "attachment.network-card-index": _eni(lambda _n: 0),
    "attachment.status": _eni(lambda n: n.attachment_status),
    "availability-zone": _eni(lambda n: n.zone),
    "deny-all-igw-traffic": _none,
    "description": _eni(lambda n: n.description),
    "group-id": lambda f: _groups("group_id")(f) if f.interface else None,
    "group-name": lambda f: _groups("name")(f) if f.interface else None,
    "ipv4-prefixes.ipv4-prefix": _none,
    "ipv6-address": _none,
    "ipv6-addresses.ipv6-address": _none,
    "ipv6-addresses.is-primary-ipv6": _none,
    "ipv6-native": _eni(lambda _n: False),
    "ipv6-prefixes.ipv6-prefix": _none,
    "mac-address": _eni(lambda n: n.mac),
    "network-interface-id": _eni(lambda n: n.id),
    "operator.managed": _eni(lambda _n: False),
    "operator.principal": _none,
    "outpost-arn": _none,
    "owner-id": _eni(lambda n: n.account_id),
    "private-dns-name": _eni_private_dns,
    "private-ip-address": _eni(lambda n: n.private_ip),
    "public-dns-name": lambda f: _public_dns(f) if f.interface else None,
    "requester-id": _none,
    "requester-managed": _eni(lambda _n: False),
    "source-dest-check": _eni(lambda n: n.source_dest_check),
    "status": _eni(lambda n: n.status),
    "subnet-id": _eni(lambda n: n.subnet_id),
    "tag-key": lambda f: list(f.interface_tags),
    "tag-value": lambda f: list(f.interface_tags.values()),
    "vpc-id": _eni(lambda n: n.vpc_id),
}

FILTERS: FilterSet[InstanceFacts] = FilterSet(
    {
        "affinity": _none,
        "architecture": _row(lambda i: i.architecture),
        "availability-zone": _row(lambda i: i.zone),
        "availability-zone-id": lambda f: f.zone_id,
        "block-device-mapping.attach-time": _volumes(lambda a: a.attach_time),
        "block-device-mapping.delete-on-termination": _volumes(lambda a: a.delete_on_termination),
        "block-device-mapping.device-name": _volumes(lambda a: a.device),
        "block-device-mapping.status": _volumes(lambda a: a.state),
        "block-device-mapping.volume-id": _volumes(lambda a: a.volume_id),
        "boot-mode": lambda _f: FIXED.boot_mode,
        "capacity-reservation-id": _none,
        "capacity-reservation-specification.capacity-reservation-preference": lambda _f: (
            FIXED.capacity_reservation_preference
        ),
        "capacity-reservation-specification.capacity-reservation-target."
        "capacity-reservation-id": _none,
        "capacity-reservation-specification.capacity-reservation-target."
        "capacity-reservation-resource-group-arn": _none,
        "client-token": lambda f: f.client_token,
        "current-instance-boot-mode": lambda _f: FIXED.boot_mode,
        "dns-name": _public_dns,
        "ebs-optimized": lambda _f: False,
        "ena-support": lambda _f: False,
        "enclave-options.enabled": lambda _f: False,
        "hibernation-options.configured": lambda _f: False,
        "host-id": _none,
        "hypervisor": lambda _f: "kvm",
        "iam-instance-profile.arn": lambda f: f.profile.arn if f.profile else None,
        "iam-instance-profile.id": lambda f: f.profile.id if f.profile else None,
        "image-id": _row(lambda i: i.image_id),
        "instance-id": _row(lambda i: i.id),
        "instance-lifecycle": _none,
        "instance-state-code": _row(lambda i: states.CODES[i.state]),
        "instance-state-name": _row(lambda i: i.state),
        "instance-type": _row(lambda i: i.instance_type),
        "instance.group-id": _groups("group_id"),
        "instance.group-name": _groups("name"),
        "group-id": _groups("group_id"),  # EC2-Classic's names, still answered
        "group-name": _groups("name"),
        "ip-address": _public_ip,
        "ipv6-address": _none,
        "kernel-id": _row(lambda i: i.kernel_id),
        "key-name": _row(lambda i: i.key_name),
        "launch-index": _row(lambda i: i.launch_index),
        "launch-time": _row(lambda i: i.launch_time),
        "maintenance-options.auto-recovery": lambda _f: FIXED.auto_recovery,
        **{f"metadata-options.{k}": (lambda _f, v=v: v) for k, v in FIXED.metadata.items()},
        "monitoring-state": lambda _f: "disabled",
        **{f"network-interface.{k}": v for k, v in _INTERFACE.items()},
        "network-performance-options.bandwidth-weighting": _none,
        "operator.managed": lambda _f: False,
        "operator.principal": _none,
        "outpost-arn": _none,
        "owner-id": _row(lambda i: i.account_id),
        "placement-group-name": _none,
        "placement-partition-number": _none,
        "platform": _none,
        "platform-details": lambda _f: FIXED.platform_details,
        "private-dns-name": _private_dns,
        "private-dns-name-options.enable-resource-name-dns-a-record": lambda _f: False,
        "private-dns-name-options.enable-resource-name-dns-aaaa-record": lambda _f: False,
        "private-dns-name-options.hostname-type": lambda _f: FIXED.hostname_type,
        "private-ip-address": _row(lambda i: i.private_ip),
        "product-code": lambda _f: [],
        "product-code.type": lambda _f: [],
        "ramdisk-id": _row(lambda i: i.ramdisk_id),
        "reason": _row(lambda i: i.transition_reason),
        "requester-id": _none,
        "reservation-id": _row(lambda i: i.reservation_id),
        "root-device-name": _row(lambda i: i.root_device_name),
        "root-device-type": _row(lambda i: i.root_device_type),
        "source-dest-check": _row(lambda i: i.source_dest_check),
        "spot-instance-request-id": _none,
        "state-reason-code": _row(lambda i: i.state_reason_code),
        "state-reason-message": _row(lambda i: i.state_reason_message),
        "subnet-id": _row(lambda i: i.subnet_id),
        "tenancy": lambda _f: "default",
        "tpm-support": _none,
        "usage-operation": lambda _f: FIXED.usage_operation,
        "usage-operation-update-time": _row(lambda i: i.launch_time),
        "virtualization-type": lambda _f: "hvm",
        "vpc-id": _row(lambda i: i.vpc_id),
    }
)

VOLUME_FILTERS = frozenset(n for n in FILTERS.getters if n.startswith("block-device-mapping."))
"""The names that read the instance's volumes (fetched only when one is asked for)."""

INTERFACE_TAG_FILTERS = frozenset({"network-interface.tag-key", "network-interface.tag-value"})
