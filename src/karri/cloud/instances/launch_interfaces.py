"""RunInstances' ``NetworkInterfaces``: the primary one (device index 0), new or existing,
shapes the instance (subnet, address, groups: ``service.py``); the others, new or
existing, are attached to it in the launch's transaction by the network's rules
(``network/interface_rules.py``). Several interfaces, or an existing one, launch one
instance only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from karri.cloud.instances.groups import SecurityGroup, parsed, stored
from karri.cloud.instances.requests import NetworkInterfaceSpec
from karri.cloud.network import interface_rules
from karri.cloud.network.interface_limits import limits_of
from karri.cloud.network.interface_rules import AttachTarget
from karri.cloud.network.interfaces import INTERFACE
from karri.cloud.network.models import NetworkInterface, Subnet
from karri.cloud.network.vpc_changes import owned
from karri.errors import CloudError, invalid_combination, invalid_value

LAUNCH_DESCRIPTION = ""


@dataclass(frozen=True)
class Extra:
    """An interface other than the primary one, its groups resolved."""

    spec: NetworkInterfaceSpec
    groups: tuple[SecurityGroup, ...] = ()


def split(
    specs: Sequence[NetworkInterfaceSpec], max_count: int, instance_type: str
) -> tuple[NetworkInterfaceSpec | None, list[NetworkInterfaceSpec]]:
    """The primary interface's spec (None: none given) and the others, checked."""
    if not specs:
        return None, []
    if len(specs) == 1 and specs[0].device_index is None:
        specs = [NetworkInterfaceSpec(**{**specs[0].__dict__, "device_index": 0})]
    indexes = [s.device_index for s in specs]
    if any(i is None for i in indexes):
        raise invalid_value("Each network interface requires a device index.")
    if len(set(indexes)) != len(indexes):
        raise invalid_value("Each network interface requires a unique device index.")
    primary = next((s for s in specs if s.device_index == 0), None)
    if primary is None:
        raise invalid_value(
            "When specifying network interfaces, you must include a device at index 0."
        )
    extras = [s for s in specs if s is not primary]
    if (extras or primary.interface_id) and max_count > 1:
        raise invalid_combination(
            "Multiple network interfaces may be given when launching one instance only"
        )
    limit = limits_of(instance_type).interfaces
    if len(specs) > limit:
        raise CloudError(
            "AttachmentLimitExceeded",
            f"Interface count {len(specs)} exceeds the limit for {instance_type}",
        )
    for spec in specs:
        if spec.interface_id and (
            spec.subnet_id
            or spec.private_ip
            or spec.groups
            or spec.private_ips
            or spec.secondary_count
            or spec.description is not None
        ):
            raise invalid_combination(
                "An existing network interface cannot be given a subnet, addresses, groups "
                "or a description."
            )
    for spec in extras:
        if spec.associate_public_ip:
            raise invalid_combination(
                "The associatePublicIPAddress parameter can only be specified for the network "
                "interface with DeviceIndex 0."
            )
    return primary, extras


def existing_primary(
    session: Session, account_id: str, spec: NetworkInterfaceSpec
) -> NetworkInterfaceSpec:
    """The primary spec of a launch that names an existing interface, with what that
    interface brings: its subnet and groups (its address comes with it too)."""
    interface = owned(session, INTERFACE, account_id, spec.interface_id)
    if interface.instance_id or interface.status == "in-use":
        raise interface_rules.in_use(interface.id)
    return replace(
        spec,
        subnet_id=interface.subnet_id,
        groups=tuple(g.group_id for g in parsed(interface.security_groups)),
    )


def address_of(session: Session, interface_id: str) -> str:
    interface = session.get(NetworkInterface, interface_id)
    assert interface is not None
    return interface.private_ip


def take_primary(
    session: Session, account_id: str, interface_id: str, instance_id: str
) -> NetworkInterface:
    """The existing interface attached to the new instance at device index 0 (in the
    launch's transaction; it stays when the instance ends unless told otherwise)."""
    interface = owned(session, INTERFACE, account_id, interface_id)
    if interface.instance_id or interface.status == "in-use":
        raise interface_rules.in_use(interface.id)
    interface.instance_id = instance_id
    interface.attachment_id = interface_rules.new_attachment_id(session)
    interface.device_index = 0
    interface.attachment_status = "attached"
    interface.attach_time = datetime.now(UTC)
    interface.delete_on_termination = False
    interface.status = "in-use"
    interface.security_groups = None  # the instance's now (given back when it ends)
    session.flush()
    return interface


def attach_extras(
    session: Session,
    account_id: str,
    target: AttachTarget,
    extras: Sequence[Extra],
    subnet_of: Callable[[str | None], Subnet],
) -> None:
    """Make (or take) and attach each extra interface to the new instance."""
    for extra in extras:
        spec = extra.spec
        assert spec.device_index is not None
        if spec.interface_id:
            interface = owned(session, INTERFACE, account_id, spec.interface_id)
            interface_rules.attach(session, interface, target, spec.device_index)
            interface.delete_on_termination = bool(spec.delete_on_termination)
            continue
        subnet = subnet_of(spec.subnet_id)
        primary, wanted = interface_rules.requested_addresses(spec.private_ip, spec.private_ips)
        interface = interface_rules.make_interface(
            session,
            account_id,
            subnet,
            stored(extra.groups),
            primary,
            spec.description or LAUNCH_DESCRIPTION,
        )
        interface_rules.add_secondaries(
            session,
            interface,
            subnet.cidr_block,
            wanted,
            spec.secondary_count or 0,
            limits_of(target.instance_type).addresses,
        )
        interface_rules.attach(session, interface, target, spec.device_index)
        interface.delete_on_termination = (
            True if spec.delete_on_termination is None else spec.delete_on_termination
        )


def primary_extras(
    session: Session,
    interface: NetworkInterface,
    spec: NetworkInterfaceSpec | None,
    cidr: str,
    instance_type: str,
) -> None:
    """The primary interface's description, secondary addresses and DeleteOnTermination."""
    if spec is None:
        return
    if spec.description is not None:
        interface.description = interface_rules.checked_description(spec.description) or ""
    if spec.delete_on_termination is not None:
        interface.delete_on_termination = spec.delete_on_termination
    _, wanted = interface_rules.requested_addresses(spec.private_ip, spec.private_ips)
    if wanted or spec.secondary_count:
        interface_rules.add_secondaries(
            session,
            interface,
            cidr,
            wanted,
            spec.secondary_count or 0,
            limits_of(instance_type).addresses,
        )
