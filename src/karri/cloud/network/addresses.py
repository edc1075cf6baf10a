"""Elastic IP addresses, and the choice of every public address of the cloud.

Public addresses come from one pool (``settings.public_pool``) for the whole cloud: an
elastic IP stays with its account until released, an automatically assigned one is an
instance's while it runs. The cloud chooses both (the node is told which one), so that an
elastic IP is never handed out as another instance's address.

``Instance.public_ip`` is the address the instance has now: its elastic IP when one is
associated (also while it is stopped), else its automatic one while it runs. As on AWS,
associating an elastic IP gives the automatic address back; disassociating it gives a
running instance whose interface asked for a public address a new automatic one.

Changes reach the node through ``on_change``: the instances whose address changed, in
the order in which the node must be told (the one losing an address first).

With a real uplink (``masquerade_enabled``: ``--public-interface``) each VPC with
instances also gets an address of the pool of its own (``Vpc.masquerade_ip``, recorded
so it is stable across restarts): its instances without a public IP go out as it. It is
never an elastic IP or an instance's, and goes back to the pool with the VPC's row."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from karri.cloud.filters import FilterSet
from karri.cloud.instances import states
from karri.cloud.instances.models import Instance
from karri.cloud.network import interfaces as network_interfaces
from karri.cloud.network.address_models import ElasticIp, associate, associated
from karri.cloud.network.gateways import attached_gateway
from karri.cloud.network.models import NetworkInterface, Vpc
from karri.cloud.network.vpcs import Kind, checked_ids, not_found, taggable
from karri.cloud.tags import Tags
from karri.db.engine import Database
from karri.errors import CloudError, invalid_combination, invalid_value, missing_parameter
from karri.ids import is_valid_id, new_id
from karri.node.publicnat import PublicPool

MAX_PER_ACCOUNT = 5
DOMAINS = ("vpc", "standard")
ATTRIBUTES = ("domain-name",)
ALLOCATION = Kind(
    ElasticIp,
    "eipalloc",
    "elastic-ip",
    "allocation",
    "InvalidAllocationID.Malformed",
    "InvalidAllocationID.NotFound",
)
ASSOCIATION = Kind(
    ElasticIp,
    "eipassoc",
    "elastic-ip",
    "association",
    "InvalidAssociationID.Malformed",
    "InvalidAssociationID.NotFound",
)
INSTANCE = Kind(
    Instance,
    "i",
    "instance",
    "instance",
    "InvalidInstanceID.Malformed",
    "InvalidInstanceID.NotFound",
)


@dataclass(frozen=True)
class AddressView:
    address: ElasticIp
    tags: dict[str, str] = field(default_factory=dict)


FILTERS: FilterSet[AddressView] = FilterSet(
    {
        "allocation-id": lambda v: v.address.id,
        "association-id": lambda v: v.address.association_id,
        "domain": lambda v: v.address.domain,
        "instance-id": lambda v: v.address.instance_id,
        "network-border-group": lambda v: v.address.network_border_group,
        "network-interface-id": lambda v: v.address.network_interface_id,
        "network-interface-owner-id": lambda v: (
            v.address.account_id if v.address.network_interface_id else None
        ),
        "private-ip-address": lambda v: v.address.private_ip,
        "public-ip": lambda v: v.address.public_ip,
    }
)

Changed = Callable[[Sequence[str]], None]


class Addresses:
    """AllocateAddress and the rest; ``assign``/``kept``/``forget_instance`` for the
    reconciler."""

    def __init__(
        self,
        db: Database,
        tags: Tags,
        region: str,
        pool: PublicPool,
        on_change: Changed = lambda _ids: None,
        masquerade_enabled: bool = False,
    ) -> None:
        self.db = db
        self.masquerade_enabled = masquerade_enabled
        self.tags = tags
        self.region = region
        self.pool = pool
        self.on_change = on_change
        self.routes_changed: Callable[[str], None] = lambda _vpc_id: None
        """Told a VPC after a committed change of an association: the node maps an
        elastic IP of an address other than an instance's primary one with its routes
        (``interface_routes.vpc_routes``)."""
        self._elsewhere: set[str] = set()
        """Addresses of the pool that another owner on the host holds (another karri, as
        the node found): never chosen again while this process runs."""
        tags.register(taggable(ALLOCATION))

    # -- the API ---------------------------------------------------------------------

    def allocate(self, account_id: str, domain: str | None, tags: Mapping[str, str]) -> AddressView:
        if domain is not None and domain not in DOMAINS:
            raise invalid_value(f"Invalid value '{domain}' for domain.")
        with self.db.write_session() as session:
            owned = session.scalars(
                select(ElasticIp.id).where(ElasticIp.account_id == account_id)
            ).all()
            if len(owned) >= MAX_PER_ACCOUNT:
                raise CloudError(
                    "AddressLimitExceeded", "The maximum number of addresses has been reached."
                )
            public_ip = self._free(session)
            if public_ip is None:
                raise CloudError(
                    "InsufficientAddressCapacity", "There are no free addresses in the pool."
                )
            row = ElasticIp(
                id=new_id("eipalloc", lambda i: session.get(ElasticIp, i) is not None),
                account_id=account_id,
                public_ip=public_ip,
                domain="vpc",  # EC2-Classic is retired: every address is a VPC's
                network_border_group=self.region,
            )
            session.add(row)
            session.flush()
            if tags:
                self.tags.put(session, account_id, [row.id], dict(tags))
            return AddressView(row, dict(tags))

    def associate(
        self,
        account_id: str,
        allocation_id: str | None,
        public_ip: str | None,
        instance_id: str | None,
        interface_id: str | None,
        private_ip: str | None,
        allow_reassociation: bool,
    ) -> str:
        """Associate the address with the instance's primary interface (or the given
        interface); returns the association id."""
        if instance_id and interface_id:
            raise invalid_combination(
                "Only one of instanceId or networkInterfaceId may be specified"
            )
        if not instance_id and not interface_id:
            raise missing_parameter("InstanceId")
        with self.db.write_session() as session:
            address = self._address(session, account_id, allocation_id, public_ip)
            interface = self._target(session, account_id, instance_id, interface_id)
            if attached_gateway(session, interface.vpc_id) is None:
                raise CloudError(
                    "Gateway.NotAttached",
                    f"Network {interface.vpc_id} is not attached to any internet gateway",
                )
            private_ip = private_ip or interface.private_ip
            if (
                private_ip != interface.private_ip
                and private_ip not in network_interfaces.secondaries(session, interface.id)
            ):
                raise invalid_value(
                    f"The specified private IP address {private_ip} is not assigned to "
                    f"the network interface {interface.id}."
                )
            # the instance's public address is the one of its primary interface's primary
            # address (the one the node maps); others are the interface's alone
            instance_id = (
                interface.instance_id
                if interface.device_index == 0 and private_ip == interface.private_ip
                else None
            )
            if (
                address.association_id
                and address.network_interface_id != interface.id
                and (not allow_reassociation or _held_by_gateway(session, address))
            ):
                raise CloudError(
                    "Resource.AlreadyAssociated",
                    f"resource {address.id} is already associated with associate-id "
                    f"{address.association_id}",
                )
            changed = [address.instance_id] if address.instance_id else []
            for other in session.scalars(
                select(ElasticIp).where(
                    ElasticIp.network_interface_id == interface.id,
                    ElasticIp.private_ip == private_ip,
                    ElasticIp.id != address.id,
                )
            ):
                _clear(other)  # one elastic IP per private address: the new one replaces it
            associate(session, address, interface.id, private_ip)
            address.instance_id = instance_id
            session.flush()
            changed += [instance_id] if instance_id else []
            self._settle(session, changed)
            association_id = address.association_id
            vpc_id = interface.vpc_id
        self.on_change(_unique(changed))
        self.routes_changed(vpc_id)  # it may be an address other than an instance's primary one
        return association_id

    def disassociate(
        self, account_id: str, association_id: str | None, public_ip: str | None
    ) -> None:
        """Idempotent, as AWS documents it: the association this call ended (or an
        address not associated, named by ``public_ip``) succeeds again. An association id
        that never existed, or that a new association or a termination has replaced, is
        ``InvalidAssociationID.NotFound`` (what AWS answers then, as Terraform's
        ``aws_eip_association`` shows: it ignores that error when it deletes one)."""
        with self.db.write_session() as session:
            if association_id is not None:
                checked_ids(ASSOCIATION, [association_id])
                address = session.scalar(
                    select(ElasticIp).where(
                        or_(
                            ElasticIp.association_id == association_id,
                            ElasticIp.disassociated_id == association_id,
                        ),
                        ElasticIp.account_id == account_id,
                    )
                )
                if address is None:
                    raise not_found(ASSOCIATION, [association_id])
            elif public_ip is not None:
                address = self._address(session, account_id, None, public_ip)
            else:
                raise missing_parameter("AssociationId")
            if address.association_id is None:
                return  # disassociated already: AWS answers success again
            if _held_by_gateway(session, address):
                raise CloudError(
                    "InvalidIPAddress.InUse",
                    f"Address {address.public_ip} is in use by a NAT gateway; delete the "
                    "NAT gateway to release it.",
                )
            changed = [address.instance_id] if address.instance_id else []
            ended = address.association_id
            interface = session.get(NetworkInterface, address.network_interface_id or "")
            vpc_id = interface.vpc_id if interface else None
            _clear(address)
            address.disassociated_id = ended
            session.flush()
            self._settle(session, changed)
        self.on_change(changed)
        if vpc_id:
            self.routes_changed(vpc_id)

    def ids_by_public_ip(self, account_id: str, ips: Sequence[str]) -> dict[str, str]:
        """The allocation ids of the account's addresses with these public IPs or association
        ids (how ``PublicIp`` and ``AssociationId`` name one), for authorization."""
        with self.db.session() as session:
            rows = session.execute(
                select(ElasticIp.public_ip, ElasticIp.association_id, ElasticIp.id).where(
                    ElasticIp.account_id == account_id,
                    (ElasticIp.public_ip.in_(list(ips)))
                    | (ElasticIp.association_id.in_(list(ips))),
                )
            )
            found: dict[str, str] = {}
            for public_ip, association_id, allocation_id in rows:
                found[public_ip] = allocation_id
                if association_id:
                    found[association_id] = allocation_id
            return found

    def release(self, account_id: str, allocation_id: str | None, public_ip: str | None) -> None:
        with self.db.write_session() as session:
            address = self._address(session, account_id, allocation_id, public_ip, auth=True)
            if address.association_id:
                raise CloudError(
                    "InvalidIPAddress.InUse", f"Address {address.public_ip} is in use."
                )
            self.tags.forget(session, [address.id])
            session.delete(address)

    def describe(
        self,
        account_id: str,
        allocation_ids: Sequence[str] | None = None,
        public_ips: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[AddressView]:
        allocation_ids = checked_ids(ALLOCATION, allocation_ids)
        FILTERS.compile(filters)
        with self.db.session() as session:
            rows = list(
                session.scalars(
                    select(ElasticIp)
                    .where(ElasticIp.account_id == account_id)
                    .order_by(ElasticIp.public_ip)
                )
            )
            missing = sorted(set(allocation_ids) - {r.id for r in rows})
            if missing:
                raise not_found(ALLOCATION, missing)
            missing = sorted(set(public_ips or ()) - {r.public_ip for r in rows})
            if missing:
                raise _no_address(missing[0])
            if allocation_ids:
                rows = [r for r in rows if r.id in allocation_ids]
            if public_ips:
                rows = [r for r in rows if r.public_ip in public_ips]
            tags = self.tags.of(session, [r.id for r in rows], account_id)
        views = [AddressView(r, tags[r.id]) for r in rows]
        return FILTERS.apply(views, filters, lambda v: v.tags)

    def attributes(
        self, account_id: str, allocation_ids: Sequence[str] | None, attribute: str | None
    ) -> list[AddressView]:
        """DescribeAddressesAttribute: no address has a PTR record (``domain-name``), so
        only the addresses asked for are listed, with nothing set."""
        if attribute is not None and attribute not in ATTRIBUTES:
            raise invalid_value(f"Invalid value '{attribute}' for attribute.")
        if not allocation_ids:
            return []
        return self.describe(account_id, allocation_ids)

    # -- the reconciler's side -------------------------------------------------------

    def assign(self, instance_id: str) -> str | None:
        """Before a launch: the instance's elastic IP, else a free address of the pool
        if its interface asks for one; recorded as its ``public_ip`` and returned."""
        with self.db.session() as session:  # most launches have nothing to record
            if instance_id not in self.assigning(session, [instance_id]):
                return None
        with self.db.write_session() as session:
            instance = session.get(Instance, instance_id)
            if instance is None:
                return None
            self._settle_one(session, instance, running=True)
            return instance.public_ip

    def taken_elsewhere(self, instance_id: str, public_ip: str) -> str | None:
        """The node could not map ``public_ip`` to the instance: another owner on the
        host holds it. The instance's record says what is true (an elastic IP stays
        associated but the instance has no public address); an automatic address is
        replaced by a free one, returned for the node to try."""
        self._elsewhere.add(public_ip)
        with self.db.write_session() as session:
            instance = session.get(Instance, instance_id)
            if instance is None or instance.public_ip != public_ip:
                return instance.public_ip if instance else None
            instance.public_ip = None
            if not _is_elastic(session, public_ip):
                self._settle_one(session, instance, running=True)
            return instance.public_ip

    def masquerade(self, vpc_id: str) -> str | None:
        """The VPC's outbound masquerade address: the recorded one, else (with a real
        uplink, and instances in the VPC) a free address of the pool, recorded now."""
        if not self.masquerade_enabled:
            return None
        with self.db.write_session() as session:
            vpc = session.get(Vpc, vpc_id)
            if vpc is None or vpc.masquerade_ip is not None:
                return vpc.masquerade_ip if vpc else None
            has_instances = session.scalar(
                select(Instance.id)
                .where(Instance.vpc_id == vpc_id, Instance.state != states.TERMINATED)
                .limit(1)
            )
            if has_instances is None:
                return None
            vpc.masquerade_ip = self._free(session)
            return vpc.masquerade_ip

    def kept(self, session: Session, instance_id: str) -> str | None:
        """The address a stopped instance keeps: its elastic IP's."""
        address = associated(session, [instance_id]).get(instance_id)
        return address.public_ip if address else None

    def forget_instance(self, session: Session, instance_id: str) -> None:
        """A terminated instance's elastic IP is disassociated (it stays the account's)."""
        address = associated(session, [instance_id]).get(instance_id)
        if address is not None:
            _clear(address)

    # -- helpers ---------------------------------------------------------------------

    def _settle(self, session: Session, instance_ids: Sequence[str]) -> None:
        for instance_id in _unique(instance_ids):
            instance = session.get(Instance, instance_id)
            if instance is not None:
                self._settle_one(session, instance, running=instance.state == states.RUNNING)

    @staticmethod
    def assigning(session: Session, instance_ids: Sequence[str]) -> set[str]:
        """Of these instances, those whose address ``assign`` may change: not those that
        have none, are given no elastic IP and ask for no automatic one (read for a wave
        of launches at once)."""
        if not instance_ids:
            return set()
        rows = session.execute(
            select(Instance.id, Instance.public_ip, Instance.associate_public_ip).where(
                Instance.id.in_(list(instance_ids))
            )
        )
        elastic = associated(session, instance_ids)
        return {i for i, public_ip, asks in rows if public_ip is not None or asks or i in elastic}

    def _settle_one(self, session: Session, instance: Instance, *, running: bool) -> None:
        """The instance's public address after a change: its elastic IP, else (running, and
        asking for one) the automatic address it has or a new one."""
        address = associated(session, [instance.id]).get(instance.id)
        if address is not None:
            instance.public_ip = address.public_ip
        elif not running or not instance.associate_public_ip:
            instance.public_ip = None
        elif instance.public_ip is None or _is_elastic(session, instance.public_ip):
            instance.public_ip = self._free(session)
        session.flush()

    def _free(self, session: Session) -> str | None:
        """An address of the pool that no elastic IP, instance or VPC (its masquerade
        address) holds, nor another owner on the host."""
        used = set(session.scalars(select(ElasticIp.public_ip))) | self._elsewhere
        masquerading = select(Vpc.masquerade_ip).where(Vpc.masquerade_ip.is_not(None))
        used |= set(session.scalars(masquerading))
        used |= set(
            session.scalars(
                select(Instance.public_ip).where(
                    Instance.public_ip.is_not(None), Instance.state != states.TERMINATED
                )
            )
        )
        return next((ip for ip in self.pool.candidates() if ip not in used), None)

    def _address(
        self,
        session: Session,
        account_id: str,
        allocation_id: str | None,
        public_ip: str | None,
        *,
        auth: bool = False,
    ) -> ElasticIp:
        if allocation_id is not None:
            checked_ids(ALLOCATION, [allocation_id])
            row = session.get(ElasticIp, allocation_id)
            if row is None or row.account_id != account_id:
                raise not_found(ALLOCATION, [allocation_id])
            return row
        if public_ip is None:
            raise missing_parameter("AllocationId")
        row = session.scalar(select(ElasticIp).where(ElasticIp.public_ip == public_ip))
        if row is None or row.account_id != account_id:
            if auth and row is not None:
                raise CloudError(
                    "AuthFailure", "You do not have permission to access the specified resource."
                )
            raise _no_address(public_ip)
        return row

    def _target(
        self,
        session: Session,
        account_id: str,
        instance_id: str | None,
        interface_id: str | None,
    ) -> NetworkInterface:
        if interface_id is not None:
            checked_ids(network_interfaces.INTERFACE, [interface_id])
            interface = session.get(NetworkInterface, interface_id)
            if interface is None or interface.account_id != account_id:
                raise not_found(network_interfaces.INTERFACE, [interface_id])
            if interface.instance_id is None:
                return interface
            self._target(session, account_id, interface.instance_id, None)  # its state
            return interface
        assert instance_id is not None
        if not is_valid_id(instance_id, "i"):
            raise CloudError(INSTANCE.malformed, f'Invalid id: "{instance_id}"')
        instance = session.get(Instance, instance_id)
        if instance is None or instance.account_id != account_id:
            raise not_found(INSTANCE, [instance_id])
        if instance.state not in (states.PENDING, states.RUNNING, states.STOPPED, states.STOPPING):
            raise CloudError(
                "IncorrectInstanceState",
                f"The instance '{instance_id}' is not in a valid state for this operation.",
            )
        interface = network_interfaces.of_instances(session, [instance_id]).get(instance_id)
        if interface is None:
            raise not_found(INSTANCE, [instance_id])
        return interface


def _clear(address: ElasticIp) -> None:
    address.association_id = None
    address.instance_id = None
    address.network_interface_id = None
    address.private_ip = None


def _held_by_gateway(session: Session, address: ElasticIp) -> bool:
    """Whether a NAT gateway's interface holds the address (only deleting the gateway
    lets it go, as on AWS)."""
    if address.network_interface_id is None:
        return False
    interface = session.get(NetworkInterface, address.network_interface_id)
    return interface is not None and interface.interface_type == "nat_gateway"


def _is_elastic(session: Session, public_ip: str) -> bool:
    return session.scalar(select(ElasticIp.id).where(ElasticIp.public_ip == public_ip)) is not None


def _no_address(public_ip: str) -> CloudError:
    return CloudError("InvalidAddress.NotFound", f"Address '{public_ip}' not found.")


def _unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def mapped_in(session: Session, vpc_id: str) -> bool:
    """Whether the VPC has public addresses mapped: an instance's (automatic or elastic)
    or an elastic IP on one of its interfaces (DetachInternetGateway's check)."""
    on_instance = select(Instance.id).where(
        Instance.vpc_id == vpc_id,
        Instance.public_ip.is_not(None),
        Instance.state != states.TERMINATED,
    )
    on_interface = (
        select(ElasticIp.id)
        .join(NetworkInterface, NetworkInterface.id == ElasticIp.network_interface_id)
        .where(NetworkInterface.vpc_id == vpc_id)
    )
    return (
        session.scalar(on_instance.limit(1)) is not None
        or session.scalar(on_interface.limit(1)) is not None
    )
