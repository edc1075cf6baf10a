"""Extra network interfaces between the cloud and the node: an attachment to a running
instance is ``attaching`` until the node has hot-plugged the NIC, a detachment
``detaching`` until the guest has released it (then the interface is ``available``).
A launch takes the instance's interfaces along (``extra_interfaces``) and settles them once the
node has started it; a stopped or terminated instance needs no node to settle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from karri.cloud.instances import states
from karri.cloud.instances.groups import parsed
from karri.cloud.instances.models import Instance
from karri.cloud.network.interfaces import detach_rows
from karri.cloud.network.models import InterfaceAddress, NetworkInterface, Subnet
from karri.node import InterfaceMetadata, NetworkCard

ATTACHING, ATTACHED, DETACHING = "attaching", "attached", "detaching"


@dataclass(frozen=True)
class Settling:
    """What one unsettled attachment needs: the node's part (``on_node``) then
    ``settle``."""

    interface_id: str
    instance_id: str
    attachment_id: str
    status: str
    card: NetworkCard
    on_node: bool


def unsettled(session: Session) -> list[tuple[str, str]]:
    """(interface id, its attachment status) of those attaching or detaching."""
    rows = session.execute(
        select(NetworkInterface.id, NetworkInterface.attachment_status).where(
            NetworkInterface.attachment_status.in_((ATTACHING, DETACHING))
        )
    )
    return [(interface_id, status) for interface_id, status in rows]


def card(row: NetworkInterface, cidr: str, secondaries: Sequence[str]) -> NetworkCard:
    """An extra interface as the node plugs it in (its subnet's ``cidr``, its secondary
    addresses)."""
    groups = parsed(row.security_groups)
    return NetworkCard(
        row.id,
        row.mac,
        row.private_ip,
        cidr,
        row.device_index or 0,
        tuple(g.group_id for g in groups),
        tuple(secondaries),
    )


def secondaries_of(session: Session, interface_ids: list[str]) -> dict[str, list[str]]:
    """The secondary addresses of each of these interfaces (those that have any)."""
    found: dict[str, list[str]] = {}
    for address in session.scalars(
        select(InterfaceAddress)
        .where(InterfaceAddress.network_interface_id.in_(interface_ids))
        .order_by(InterfaceAddress.private_ip)
    ):
        found.setdefault(address.network_interface_id, []).append(address.private_ip)
    return found


def addresses_of(session: Session, instance_id: str) -> dict[str | None, tuple[str, ...]]:
    """The secondary addresses of the instance's primary interface (None) and of each of
    its attached extra ones (by id), as the node is to hold them."""
    rows = session.execute(
        select(NetworkInterface.id, NetworkInterface.device_index).where(
            NetworkInterface.instance_id == instance_id,
            or_(
                NetworkInterface.device_index == 0,
                NetworkInterface.attachment_status == ATTACHED,
            ),
        )
    ).all()
    found = secondaries_of(session, [i for i, _index in rows])
    return {(None if index == 0 else i): tuple(found.get(i, ())) for i, index in rows}


def extra_interfaces(
    session: Session, instance_ids: Sequence[str]
) -> dict[str, list[tuple[NetworkInterface, str]]]:
    """Each instance's extra interfaces attaching or attached (those a launch plugs in),
    by device index, with their subnet's CIDR block: one query for a wave of launches."""
    rows = session.execute(
        select(NetworkInterface, Subnet.cidr_block)
        .join(Subnet, Subnet.id == NetworkInterface.subnet_id)
        .where(
            NetworkInterface.instance_id.in_(list(instance_ids)),
            NetworkInterface.device_index > 0,
            NetworkInterface.attachment_status.in_((ATTACHING, ATTACHED)),
        )
        .order_by(NetworkInterface.device_index)
    )
    found: dict[str, list[tuple[NetworkInterface, str]]] = {}
    for row, cidr in rows:
        found.setdefault(row.instance_id, []).append((row, cidr))
    return found


def plan(session: Session, interface_id: str) -> Settling | None:
    """What settling the interface takes now; None while its instance is between states
    (a launch or a stop in progress) or when nothing is left to do."""
    found = session.execute(
        select(NetworkInterface, Subnet.cidr_block)
        .join(Subnet, Subnet.id == NetworkInterface.subnet_id)
        .where(NetworkInterface.id == interface_id)
    ).first()
    if found is None:
        return None
    row, cidr = found
    if row.attachment_status not in (ATTACHING, DETACHING) or not row.instance_id:
        return None
    instance = session.get(Instance, row.instance_id)
    state = instance.state if instance is not None else states.TERMINATED
    if state not in (states.RUNNING, states.STOPPED, states.TERMINATED):
        return None
    return Settling(
        row.id,
        row.instance_id,
        row.attachment_id or "",
        row.attachment_status,
        card(row, cidr, secondaries_of(session, [row.id]).get(row.id, ())),
        on_node=state == states.RUNNING,
    )


def settle(session: Session, settling: Settling) -> None:
    """The attachment ``attached``, or the interface detached, unless it changed
    meanwhile."""
    row = session.get(NetworkInterface, settling.interface_id)
    if (
        row is None
        or row.attachment_id != settling.attachment_id
        or row.attachment_status != settling.status
    ):
        return
    if settling.status == ATTACHING:
        row.attachment_status = ATTACHED
    else:
        detach_rows(session, [row])


def launched(session: Session, instance_id: str, cards: tuple[NetworkCard, ...]) -> None:
    """The interfaces a launch plugged in are attached."""
    ids = [c.interface_id for c in cards]
    if not ids:  # only the primary interface: nothing was attaching
        return
    for row in session.scalars(
        select(NetworkInterface).where(
            NetworkInterface.id.in_(ids),
            NetworkInterface.instance_id == instance_id,
            NetworkInterface.attachment_status == ATTACHING,
        )
    ):
        row.attachment_status = ATTACHED


def card_groups(session: Session, vpc_id: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """(instance id, interface id) to its group ids, for the attached extra interfaces of
    the VPC's running instances (``Reconciler._push_groups``)."""
    rows = session.execute(
        select(NetworkInterface)
        .join(Instance, Instance.id == NetworkInterface.instance_id)
        .where(
            NetworkInterface.vpc_id == vpc_id,
            NetworkInterface.device_index > 0,
            NetworkInterface.attachment_status == ATTACHED,
            Instance.state == states.RUNNING,
        )
    )
    return {
        (row.instance_id or "", row.id): tuple(g.group_id for g in parsed(row.security_groups))
        for (row,) in rows
    }


def interfaces_metadata(
    extra: Sequence[tuple[NetworkInterface, str]], secondaries: Mapping[str, Sequence[str]]
) -> tuple[InterfaceMetadata, ...]:
    """What the instance's metadata says of its attached extra interfaces (``extra``: as
    ``extra_interfaces`` found them; ``secondaries``: as ``secondaries_of``)."""
    return tuple(
        InterfaceMetadata(
            row.mac,
            row.id,
            row.device_index or 0,
            (row.private_ip, *secondaries.get(row.id, ())),
            row.subnet_id,
            cidr,
            tuple(g.group_id for g in parsed(row.security_groups)),
            tuple(g.name for g in parsed(row.security_groups)),
        )
        for row, cidr in extra
        if row.attachment_status == ATTACHED
    )
