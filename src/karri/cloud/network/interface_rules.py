"""Network interfaces' rules inside one transaction, shared by the API's calls
(``interface_changes.py``) and RunInstances (``instances/launch_interfaces.py``): a new
interface and its addresses, secondary addresses within a limit, an attachment by AWS's
rules (zone, VPC, device index, the instance type's limits)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from karri.cloud.network.addressing import free_private_ips, new_mac, requested_private_ip
from karri.cloud.network.interface_limits import limits_of
from karri.cloud.network.interfaces import disassociate, secondaries, taken_ips
from karri.cloud.network.models import InterfaceAddress, NetworkInterface
from karri.errors import CloudError, invalid_combination, invalid_value
from karri.ids import new_id

MAX_DESCRIPTION = 255
ATTACHABLE_STATES = ("pending", "running", "stopped")


@dataclass(frozen=True)
class AttachTarget:
    """What an attachment needs to know of an instance."""

    instance_id: str
    state: str
    instance_type: str
    zone: str
    vpc_id: str


def in_use(interface_id: str) -> CloudError:
    return CloudError("InvalidNetworkInterface.InUse", f"Interface: [{interface_id}] in use.")


def free_addresses(session: Session, vpc_id: str, cidr: str, count: int) -> list[str]:
    """``count`` free addresses of the subnet, or AWS's error when it has fewer."""
    free = free_private_ips(cidr, taken_ips(session, vpc_id), count)
    if len(free) < count:
        raise CloudError(
            "InsufficientFreeAddressesInSubnet",
            "The specified subnet does not have enough free addresses to satisfy the request.",
        )
    return free


def add_secondaries(
    session: Session,
    interface: NetworkInterface,
    cidr: str,
    wanted: Sequence[str],
    count: int,
    limit: int,
    *,
    reassign: bool = False,
) -> list[str]:
    """Give the interface these secondary addresses (each checked) and ``count`` more of
    the lowest free ones; at most ``limit`` addresses in all. Returns those added."""
    have = secondaries(session, interface.id)
    wanted = [requested_private_ip(cidr, ip) for ip in dict.fromkeys(wanted)]
    wanted = [ip for ip in wanted if ip not in have and ip != interface.private_ip]
    if 1 + len(have) + len(wanted) + count > limit:
        raise CloudError(
            "PrivateIpAddressLimitExceeded",
            f"Number of private addresses will exceed limit of {limit} for "
            f"interface {interface.id}.",
        )
    primaries = set(
        session.scalars(
            select(NetworkInterface.private_ip).where(
                NetworkInterface.vpc_id == interface.vpc_id,
                NetworkInterface.private_ip.in_(wanted),
            )
        )
    )
    for ip in wanted:
        holder = session.scalar(
            select(InterfaceAddress).where(
                InterfaceAddress.vpc_id == interface.vpc_id, InterfaceAddress.private_ip == ip
            )
        )
        if ip in primaries or (holder is not None and not reassign):
            raise CloudError("InvalidIPAddress.InUse", f"Address {ip} is in use.")
        if holder is not None:  # AllowReassignment: it moves, with no elastic IP of its own
            disassociate(session, holder.network_interface_id, [ip])
            session.delete(holder)
            session.flush()
    for ip in wanted:
        session.add(
            InterfaceAddress(
                network_interface_id=interface.id, private_ip=ip, vpc_id=interface.vpc_id
            )
        )
        session.flush()
    if count:
        wanted += add_secondaries(
            session,
            interface,
            cidr,
            free_addresses(session, interface.vpc_id, cidr, count),
            0,
            limit,
        )
    return wanted


def attach(
    session: Session, interface: NetworkInterface, target: AttachTarget, device_index: int
) -> None:
    """Attach the interface at ``device_index``, by AWS's rules (inside the caller's
    transaction; RunInstances' extra interfaces come this way too)."""
    if interface.instance_id or interface.status == "in-use":
        raise in_use(interface.id)
    if target.state not in ATTACHABLE_STATES:
        raise CloudError(
            "IncorrectInstanceState",
            f"The instance '{target.instance_id}' is not in a valid state for this operation.",
        )
    if interface.zone != target.zone:
        raise invalid_value(
            f"Instance and interface must be in the same availability zone: "
            f"{target.instance_id} is in {target.zone}, {interface.id} in {interface.zone}."
        )
    if interface.vpc_id != target.vpc_id:
        raise invalid_value(
            f"Instance {target.instance_id} and interface {interface.id} are in different VPCs."
        )
    attached = list(
        session.scalars(
            select(NetworkInterface.device_index).where(
                NetworkInterface.instance_id == target.instance_id
            )
        )
    )
    if device_index in attached:
        raise invalid_value(
            f"Instance '{target.instance_id}' already has an interface attached at device "
            f"index '{device_index}'."
        )
    limits = limits_of(target.instance_type)
    if len(attached) + 1 > limits.interfaces:
        raise CloudError(
            "AttachmentLimitExceeded",
            f"Interface count {len(attached) + 1} exceeds the limit for {target.instance_type}",
        )
    addresses = 1 + (
        session.scalar(
            select(func.count())
            .select_from(InterfaceAddress)
            .where(InterfaceAddress.network_interface_id == interface.id)
        )
        or 0
    )
    if addresses > limits.addresses:
        raise CloudError(
            "PrivateIpAddressLimitExceeded",
            f"Interface {interface.id} has {addresses} private addresses; "
            f"{target.instance_type} allows {limits.addresses}.",
        )
    interface.instance_id = target.instance_id
    interface.attachment_id = new_attachment_id(session)
    interface.device_index = device_index
    # a running (or launching) guest gets the NIC from the node first (nic_settling.py)
    interface.attachment_status = "attached" if target.state == "stopped" else "attaching"
    interface.attach_time = datetime.now(UTC)
    interface.delete_on_termination = False
    interface.status = "in-use"
    session.flush()


def new_attachment_id(session: Session) -> str:
    return new_id(
        "eni-attach",
        lambda i: (
            session.scalar(select(NetworkInterface.id).where(NetworkInterface.attachment_id == i))
            is not None
        ),
    )


def checked_description(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_DESCRIPTION:
        raise invalid_value(
            f"Value for parameter description is invalid: at most {MAX_DESCRIPTION} characters."
        )
    return value


def requested_addresses(
    private_ip: str | None, private_ips: Sequence[tuple[str, bool]]
) -> tuple[str | None, list[str]]:
    """The primary address asked for (``PrivateIpAddress`` or the ``PrivateIpAddresses``
    entry marked primary; if any) and the secondary ones."""
    primaries = [ip for ip, primary in private_ips if primary]
    if len(primaries) > 1:
        raise invalid_value("Only one primary private IP address may be given.")
    if private_ip and primaries and primaries[0] != private_ip:
        raise invalid_combination(
            f"The primary private IP address given twice does not match: "
            f"{private_ip}, {primaries[0]}."
        )
    primary = private_ip or (primaries[0] if primaries else None)
    others = [ip for ip, is_primary in private_ips if not is_primary and ip != primary]
    return primary, others


def make_interface(
    session: Session,
    account_id: str,
    subnet: Any,
    groups: list[dict[str, str]],
    primary: str | None,
    description: str,
    client_token: str | None = None,
) -> NetworkInterface:
    """A new interface of the subnet, attached to nothing, with ``primary`` (checked and
    free) or the lowest free address, in the caller's transaction."""
    if primary is not None:
        primary = requested_private_ip(subnet.cidr_block, primary)
        if primary in taken_ips(session, subnet.vpc_id):
            raise CloudError("InvalidIPAddress.InUse", f"Address {primary} is in use.")
    else:
        primary = free_addresses(session, subnet.vpc_id, subnet.cidr_block, 1)[0]
    interface = NetworkInterface(
        id=new_id("eni", lambda i: session.get(NetworkInterface, i) is not None),
        account_id=account_id,
        vpc_id=subnet.vpc_id,
        subnet_id=subnet.id,
        zone=subnet.zone,
        mac=new_mac(
            lambda m: (
                session.scalar(select(NetworkInterface.id).where(NetworkInterface.mac == m))
                is not None
            )
        ),
        private_ip=primary,
        description=checked_description(description) or "",
        status="available",
        delete_on_termination=False,
        security_groups=groups,
        client_token=client_token or None,
    )
    session.add(interface)
    session.flush()
    return interface
