"""Network interfaces: each instance's primary one (device index 0), made with the
instance in its subnet, and those an account makes (``interface_changes.py``); listed by
DescribeNetworkInterfaces; at termination deleted or detached by their
``DeleteOnTermination``.

What a primary interface shows of its instance (its security groups, its public address)
is the instance's: an ``AttachedFacts`` reader passed in says it, so this package does not
read the instances' table. Other interfaces have their own groups, and each private
address its own elastic IP, if any."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from karri.cloud.filters import FilterSet, Page, paginate
from karri.cloud.instances.addresses import public_dns_name
from karri.cloud.instances.groups import parsed
from karri.cloud.network.address_models import ElasticIp
from karri.cloud.network.addressing import new_macs
from karri.cloud.network.defaults import private_dns_name
from karri.cloud.network.dns import public_name_vpcs
from karri.cloud.network.models import InterfaceAddress, NetworkInterface, Route, Subnet
from karri.cloud.network.vpcs import Kind, checked_ids, not_found, taggable
from karri.cloud.regions import Geography
from karri.cloud.tags import Tags
from karri.db.engine import Database
from karri.db.reads import read_records
from karri.ids import new_ids

INTERFACE = Kind(
    NetworkInterface,
    "eni",
    "network-interface",
    "networkInterface",
    "InvalidNetworkInterfaceId.Malformed",
    "InvalidNetworkInterfaceID.NotFound",
)
PRIMARY_DESCRIPTION = "Primary network interface"


@dataclass(frozen=True)
class AttachedFacts:
    """What an interface shows of the instance it is attached to."""

    groups: tuple[tuple[str, str], ...] = ()  # (group id, group name)
    public_ip: str | None = None
    public_dns_name: str = ""
    elastic_ip: ElasticIp | None = None


def ip_owner(facts: AttachedFacts, account_id: str) -> str | None:
    """Who owns the public address: the account for an elastic IP, else ``amazon``."""
    if not facts.public_ip:
        return None
    return account_id if facts.elastic_ip else "amazon"


class InstanceFacts(Protocol):
    def __call__(
        self, session: Session, instance_ids: Sequence[str]
    ) -> dict[str, AttachedFacts]: ...


@dataclass(frozen=True)
class SecondaryAddress:
    private_ip: str
    private_dns_name: str
    elastic_ip: ElasticIp | None = None
    public_dns_name: str = ""


@dataclass(frozen=True)
class InterfaceView:
    interface: NetworkInterface
    private_dns_name: str
    zone_id: str
    attached: AttachedFacts
    """Its groups and the public address of its primary private address."""
    tags: dict[str, str] = field(default_factory=dict)
    secondary: tuple[SecondaryAddress, ...] = ()

    @property
    def private_ips(self) -> list[str]:
        return [self.interface.private_ip, *(a.private_ip for a in self.secondary)]


def _public(v: InterfaceView) -> str | None:
    return v.attached.public_ip


def _elastic(v: InterfaceView, column: str) -> str | None:
    address = v.attached.elastic_ip
    return getattr(address, column) if address else None


FILTERS: FilterSet[InterfaceView] = FilterSet(
    {
        "association.allocation-id": lambda v: _elastic(v, "id"),
        "association.association-id": lambda v: _elastic(v, "association_id"),
        "addresses.association.owner-id": lambda v: ip_owner(v.attached, v.interface.account_id),
        "addresses.association.public-ip": _public,
        "addresses.primary": lambda v: [True] + [False] * len(v.secondary),
        "addresses.private-ip-address": lambda v: v.private_ips,
        "association.ip-owner-id": lambda v: ip_owner(v.attached, v.interface.account_id),
        "association.public-ip": _public,
        "association.public-dns-name": lambda v: v.attached.public_dns_name or None,
        "attachment.attach-time": lambda v: v.interface.attach_time,
        "attachment.attachment-id": lambda v: v.interface.attachment_id,
        "attachment.delete-on-termination": lambda v: v.interface.delete_on_termination,
        "attachment.device-index": lambda v: v.interface.device_index,
        "attachment.instance-id": lambda v: v.interface.instance_id,
        "attachment.instance-owner-id": lambda v: (
            v.interface.account_id if v.interface.instance_id else None
        ),
        "attachment.status": lambda v: v.interface.attachment_status,
        "availability-zone": lambda v: v.interface.zone,
        "availability-zone-id": lambda v: v.zone_id,
        "description": lambda v: v.interface.description,
        "group-id": lambda v: [g for g, _name in v.attached.groups],
        "group-name": lambda v: [name for _g, name in v.attached.groups],
        "ipv6-addresses.ipv6-address": lambda _v: None,
        "interface-type": lambda v: v.interface.interface_type,
        "mac-address": lambda v: v.interface.mac,
        "network-interface-id": lambda v: v.interface.id,
        "operator.managed": lambda _v: False,
        "operator.principal": lambda _v: None,
        "owner-id": lambda v: v.interface.account_id,
        "private-dns-name": lambda v: v.private_dns_name,
        "private-ip-address": lambda v: v.private_ips,
        "requester-id": lambda _v: None,
        "requester-managed": lambda _v: False,
        "source-dest-check": lambda v: v.interface.source_dest_check,
        "status": lambda v: v.interface.status,
        "subnet-id": lambda v: v.interface.subnet_id,
        "vpc-id": lambda v: v.interface.vpc_id,
    }
)


def taken_ips(session: Session, vpc_id: str) -> set[str]:
    """The private addresses of the VPC's interfaces, secondary ones included (unique
    within a VPC only)."""
    primary = select(NetworkInterface.private_ip).where(NetworkInterface.vpc_id == vpc_id)
    secondary = select(InterfaceAddress.private_ip).where(InterfaceAddress.vpc_id == vpc_id)
    return set(session.scalars(primary)) | set(session.scalars(secondary))


def create_primary(
    session: Session,
    subnet: Subnet,
    attachments: Sequence[tuple[str, str]],
    *,
    mac: str | None = None,
) -> list[NetworkInterface]:
    """The primary interface of each (instance id, private ip), attached at device index
    0, inside the caller's transaction. ``mac`` keeps a known MAC (one instance only)."""

    def ids_taken(model_column: Any):
        return lambda ids: set(session.scalars(select(model_column).where(model_column.in_(ids))))

    count = len(attachments)
    eni_ids = new_ids("eni", count, ids_taken(NetworkInterface.id))
    attachment_ids = new_ids("eni-attach", count, ids_taken(NetworkInterface.attachment_id))
    # one query for all the MACs (a query per interface flushed each new row on its own)
    macs = [mac] if mac else new_macs(count, ids_taken(NetworkInterface.mac))
    now = datetime.now(UTC)
    made = []
    for (instance_id, ip), eni_id, attachment_id, interface_mac in zip(
        attachments, eni_ids, attachment_ids, macs, strict=True
    ):
        interface = NetworkInterface(
            id=eni_id,
            account_id=subnet.account_id,
            vpc_id=subnet.vpc_id,
            subnet_id=subnet.id,
            zone=subnet.zone,
            mac=interface_mac,
            private_ip=ip,
            description=PRIMARY_DESCRIPTION,
            status="in-use",
            instance_id=instance_id,
            attachment_id=attachment_id,
            device_index=0,
            attachment_status="attached",
            attach_time=now,
            delete_on_termination=True,
        )
        session.add(interface)
        made.append(interface)
    session.flush()
    return made


def release(session: Session, tags: Tags, instance_ids: Sequence[str]) -> None:
    """The interfaces of terminated instances: deleted (with their tags) if
    ``DeleteOnTermination``, else detached."""
    rows = list(
        session.scalars(
            select(NetworkInterface).where(NetworkInterface.instance_id.in_(list(instance_ids)))
        )
    )
    ids = [r.id for r in rows if r.delete_on_termination]
    detach_rows(session, [r for r in rows if not r.delete_on_termination])
    if ids:
        tags.forget(session, ids)
        forget(session, ids)


def secondaries(session: Session, interface_id: str) -> list[str]:
    return list(
        session.scalars(
            select(InterfaceAddress.private_ip).where(
                InterfaceAddress.network_interface_id == interface_id
            )
        )
    )


def disassociate(session: Session, interface_id: str, private_ips: Sequence[str] | None) -> None:
    """Elastic IPs on those addresses of the interface (None: all) let go."""
    query = select(ElasticIp).where(ElasticIp.network_interface_id == interface_id)
    if private_ips is not None:
        query = query.where(ElasticIp.private_ip.in_(list(private_ips)))
    for address in session.scalars(query):
        address.disassociated_id = address.association_id
        address.association_id = None
        address.network_interface_id = None
        address.private_ip = None
        address.instance_id = None


def forget(session: Session, interface_ids: Sequence[str]) -> None:
    """Delete these interfaces and what hangs on them, inside the caller's transaction:
    secondary addresses, elastic IP associations, routes to them (blackhole)."""
    if not interface_ids:
        return
    ids = list(interface_ids)
    for interface_id in ids:
        disassociate(session, interface_id, None)
    session.execute(
        update(Route).where(Route.network_interface_id.in_(ids)).values(state="blackhole")
    )
    session.execute(delete(InterfaceAddress).where(InterfaceAddress.network_interface_id.in_(ids)))
    session.execute(delete(NetworkInterface).where(NetworkInterface.id.in_(ids)))


def detach_rows(session: Session, rows: Sequence[NetworkInterface]) -> None:
    """These interfaces attached to nothing, ``available`` again."""
    for row in rows:
        row.instance_id = None
        row.attachment_id = None
        row.device_index = None
        row.attachment_status = None
        row.attach_time = None
        row.delete_on_termination = False
        row.status = "available"


@dataclass(frozen=True)
class InstanceInterfaces:
    """An instance's interfaces other than the primary one, and every one's secondary
    addresses (by interface id), as DescribeInstances shows them."""

    extras: tuple[NetworkInterface, ...] = ()
    secondary: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Attached:
    """The interfaces attached to some instances, by instance id: each one's primary
    interface and its ``InstanceInterfaces`` (those with nothing more have none)."""

    primary: Mapping[str, NetworkInterface]
    others: Mapping[str, InstanceInterfaces]


def attached_to(session: Session, instance_ids: Sequence[str]) -> Attached:
    """Every interface of these instances in one read, as plain rows (not ORM objects,
    with the same attribute names): DescribeInstances of thousands stays cheap."""
    rows = attached_rows(session, instance_ids)
    primary = {r.instance_id: r for r in rows if r.instance_id and r.device_index == 0}
    return Attached(primary, _others(session, rows))


def others_of(session: Session, instance_ids: Sequence[str]) -> dict[str, InstanceInterfaces]:
    """Each instance's ``InstanceInterfaces`` (those with nothing more have none)."""
    return _others(session, attached_rows(session, instance_ids))


def attached_rows(session: Session, instance_ids: Sequence[str]) -> list[Any]:
    """The interfaces of these instances as plain rows (``read_records``), by device index."""
    return read_records(
        session,
        select(*NetworkInterface.__table__.c)
        .where(NetworkInterface.instance_id.in_(list(instance_ids)))
        .order_by(NetworkInterface.device_index),
    )


def _others(session: Session, rows: Sequence[Any]) -> dict[str, InstanceInterfaces]:
    """The extra interfaces among ``rows`` (ordered by device index) and the secondary
    addresses of all of them, grouped by instance in one pass."""
    owner = {r.id: r.instance_id for r in rows if r.instance_id}
    extras: dict[str, list[Any]] = {}
    for row in rows:
        if row.instance_id and row.device_index:
            extras.setdefault(row.instance_id, []).append(row)
    secondary: dict[str, dict[str, list[str]]] = {}
    if owner:
        addresses = session.execute(
            select(InterfaceAddress.network_interface_id, InterfaceAddress.private_ip)
            .where(InterfaceAddress.network_interface_id.in_(list(owner)))
            .order_by(InterfaceAddress.private_ip)
        )
        for interface_id, ip in addresses:
            by_instance = secondary.setdefault(owner[interface_id], {})
            by_instance.setdefault(interface_id, []).append(ip)
    return {
        instance_id: InstanceInterfaces(
            tuple(extras.get(instance_id, ())),
            {k: tuple(v) for k, v in secondary.get(instance_id, {}).items()},
        )
        for instance_id in extras.keys() | secondary.keys()
    }


def of_instances(session: Session, instance_ids: Sequence[str]) -> dict[str, NetworkInterface]:
    """The primary interface of each instance that has one."""
    rows = session.scalars(
        select(NetworkInterface).where(
            NetworkInterface.instance_id.in_(list(instance_ids)),
            NetworkInterface.device_index == 0,
        )
    )
    return {row.instance_id: row for row in rows if row.instance_id}


class Interfaces:
    """DescribeNetworkInterfaces, and interfaces as tag targets."""

    def __init__(
        self, db: Database, tags: Tags, geography: Geography, facts: InstanceFacts
    ) -> None:
        self.db = db
        self.tags = tags
        self.geography = geography
        self.facts = facts
        tags.register(taggable(INTERFACE))

    def describe(
        self,
        account_id: str,
        ids: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[InterfaceView]:
        ids = checked_ids(INTERFACE, ids)
        FILTERS.compile(filters)
        with self.db.session() as session:
            query = select(NetworkInterface).where(NetworkInterface.account_id == account_id)
            if ids:
                query = query.where(NetworkInterface.id.in_(ids))
            rows = list(session.scalars(query))
            missing = sorted(set(ids) - {r.id for r in rows})
            if missing:
                raise not_found(INTERFACE, missing)
            views = self._views(session, rows, account_id)
        matched = FILTERS.apply(views, filters, lambda v: v.tags)
        return paginate(
            matched,
            lambda v: v.interface.id,
            max_results,
            next_token,
            kind="network-interfaces",
            ids_given=bool(ids),
        )

    def view(self, session: Session, row: NetworkInterface) -> InterfaceView:
        return self._views(session, [row], row.account_id)[0]

    def _views(
        self, session: Session, rows: Sequence[NetworkInterface], account_id: str
    ) -> list[InterfaceView]:
        region = self.geography.region.name
        zone_ids = {z.name: z.zone_id for z in self.geography.zones}
        ids = [r.id for r in rows]
        tags = self.tags.of(session, ids, account_id)
        primaries = [r.instance_id for r in rows if r.instance_id and r.device_index == 0]
        facts = self.facts(session, primaries)
        elastic = {
            (a.network_interface_id, a.private_ip): a
            for a in session.scalars(
                select(ElasticIp).where(ElasticIp.network_interface_id.in_(ids))
            )
        }
        extra: dict[str, list[str]] = {}
        for address in session.scalars(
            select(InterfaceAddress)
            .where(InterfaceAddress.network_interface_id.in_(ids))
            .order_by(InterfaceAddress.private_ip)
        ):
            extra.setdefault(address.network_interface_id, []).append(address.private_ip)

        named = public_name_vpcs(session, {r.vpc_id for r in rows})

        def public(r: NetworkInterface, ip: str) -> tuple[ElasticIp | None, str]:
            address = elastic.get((r.id, ip))
            name = public_dns_name(address.public_ip, region) if address else ""
            return address, name if r.vpc_id in named else ""

        def attached(r: NetworkInterface) -> AttachedFacts:
            if r.instance_id and r.device_index == 0:
                return facts.get(r.instance_id, AttachedFacts())
            address, name = public(r, r.private_ip)
            groups = parsed(r.security_groups)
            return AttachedFacts(
                tuple((g.group_id, g.name) for g in groups),
                address.public_ip if address else None,
                name,
                address,
            )

        return [
            InterfaceView(
                r,
                private_dns_name(r.private_ip, region),
                zone_ids.get(r.zone, ""),
                attached(r),
                tags=tags[r.id],
                secondary=tuple(
                    SecondaryAddress(ip, private_dns_name(ip, region), *public(r, ip))
                    for ip in extra.get(r.id, ())
                ),
            )
            for r in rows
        ]
