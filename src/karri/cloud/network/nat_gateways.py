"""NAT gateways: CreateNatGateway, DeleteNatGateway, DescribeNatGateways, by AWS's rules.

A gateway takes a private address of its subnet on an interface of its own (``eni-``,
type ``nat_gateway``, counted in the subnet's ``AvailableIpAddressCount``) and, when
public (the default), the elastic IP named by ``AllocationId``, associated with that
interface. What AWS reports as a failure after the call (``failed`` with a
``FailureCode``) is reported so here too: a VPC without an attached internet gateway
(``Gateway.NotAttached``), an elastic IP already associated
(``Resource.AlreadyAssociated``), a full subnet (``InsufficientFreeAddressesInSubnet``),
an address the node finds held by another owner on the host (``InternalError``). Ids that
do not exist are refused at once.

States follow the node: ``pending`` until the node reports the gateway in force
(``observe``), ``deleting`` until it reports it gone; then ``deleted``, the elastic IP and
the interface let go, and the row kept an hour (as AWS shows deleted gateways). Routes to
a gateway that is deleted or failed are ``blackhole``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from karri.cloud.filters import FilterSet, Page
from karri.cloud.network.address_models import ElasticIp, associate
from karri.cloud.network.addresses import ALLOCATION
from karri.cloud.network.addressing import free_private_ips, new_mac
from karri.cloud.network.gateways import BLACKHOLE, attached_gateway
from karri.cloud.network.interfaces import taken_ips
from karri.cloud.network.models import NatGateway, NetworkInterface, Route, Subnet
from karri.cloud.network.route_tables import internet_subnets, nat_subnets
from karri.cloud.network.vpc_changes import owned
from karri.cloud.network.vpc_parts import VpcPartService
from karri.cloud.network.vpcs import SUBNET, Filters, Kind, checked_ids, not_found, taggable
from karri.db.base import utcnow
from karri.errors import CloudError, invalid_combination, invalid_value, missing_parameter
from karri.ids import new_id
from karri.node import NatGateway as NatGatewaySpec
from karri.node import NatGatewayReport

NAT_GATEWAY = Kind(
    NatGateway,
    "nat",
    "natgateway",
    "natGateway",
    "NatGatewayMalformed",
    "NatGatewayNotFound",
    "NatGatewayId",
)
PENDING, AVAILABLE, FAILED, DELETING, DELETED = (
    "pending",
    "available",
    "failed",
    "deleting",
    "deleted",
)
LIVE = (PENDING, AVAILABLE)  # what the node keeps
COUNTED = (PENDING, AVAILABLE, DELETING)  # against the limit
MAX_PER_ZONE = 5  # AWS's default quota of NAT gateways per availability zone
KEPT_AFTER_END = timedelta(hours=1)  # deleted and failed gateways stay visible so long
INTERFACE_TYPE = "nat_gateway"


def _expired() -> tuple[Any, ...]:
    """Gateways deleted or failed more than an hour ago."""
    return (
        NatGateway.state.in_((DELETED, FAILED)),
        NatGateway.deleted_at < utcnow() - KEPT_AFTER_END,
    )


@dataclass(frozen=True)
class NatGatewayView:
    gateway: NatGateway
    tags: dict[str, str] = field(default_factory=dict)


NAT_GATEWAY_FILTERS: FilterSet[NatGatewayView] = FilterSet(
    {
        "nat-gateway-id": lambda v: v.gateway.id,
        "state": lambda v: v.gateway.state,
        "subnet-id": lambda v: v.gateway.subnet_id,
        "vpc-id": lambda v: v.gateway.vpc_id,
    }
)


class NatGateways(VpcPartService):
    """``on_change``: the VPC's gateways or their routes changed; the node is to be told
    (``node_gateways``) and its answer given to ``observe``. ``allocation`` is held while a
    gateway's private address is chosen and written (RunInstances holds it too).
    ``hosted`` False: the cloud runs no node of its own (`karri up --no-local-node`),
    where gateways run, so CreateNatGateway is refused."""

    allocation: AbstractContextManager[Any] = nullcontext()
    hosted: bool = True

    def register(self) -> None:
        self.tags.register(taggable(NAT_GATEWAY))

    # -- the API -------------------------------------------------------------------------

    def create(
        self,
        account_id: str,
        subnet_id: str | None,
        allocation_id: str | None,
        connectivity_type: str | None,
        client_token: str | None,
        tags: Mapping[str, str] | None = None,
    ) -> NatGatewayView:
        if not self.hosted:
            raise CloudError(
                "UnsupportedOperation",
                "NAT gateways run on the cloud's own node, and this cloud runs none "
                "(karri up --no-local-node).",
            )
        kind = connectivity_type or "public"
        if kind not in ("public", "private"):
            raise invalid_value(f"Value ({kind}) for parameter connectivityType is invalid.")
        if client_token is not None and (len(client_token) > 64 or not client_token.isascii()):
            raise invalid_value("The client token must be at most 64 ASCII characters.")
        with self.allocation, self.db.write_session() as session:
            self._purge(session)
            if client_token:
                earlier = session.scalar(
                    select(NatGateway).where(
                        NatGateway.account_id == account_id,
                        NatGateway.client_token == client_token,
                    )
                )
                if earlier is not None:
                    if earlier.subnet_id != subnet_id or earlier.allocation_id != allocation_id:
                        raise CloudError(
                            "IdempotentParameterMismatch",
                            "The client token was already used with other parameters.",
                        )
                    return NatGatewayView(
                        earlier, self.tags.of(session, [earlier.id], account_id)[earlier.id]
                    )
            subnet = owned(session, SUBNET, account_id, subnet_id)
            address = self._allocation(session, account_id, kind, allocation_id)
            in_zone = session.scalar(
                select(func.count())
                .select_from(NatGateway)
                .join(Subnet, Subnet.id == NatGateway.subnet_id)
                .where(
                    NatGateway.account_id == account_id,
                    NatGateway.state.in_(COUNTED),
                    Subnet.zone == subnet.zone,
                )
            )
            if (in_zone or 0) >= MAX_PER_ZONE:
                raise CloudError(
                    "NatGatewayLimitExceeded",
                    "The maximum number of NAT gateways has been reached.",
                )
            gateway = NatGateway(
                id=new_id("nat", lambda i: session.get(NatGateway, i) is not None),
                account_id=account_id,
                vpc_id=subnet.vpc_id,
                subnet_id=subnet.id,
                connectivity_type=kind,
                state=PENDING,
                allocation_id=address.id if address else None,
                public_ip=address.public_ip if address else None,
                client_token=client_token or None,
            )
            failure = self._failure(session, gateway, address)
            if failure is None:
                failure = self._take_address(session, gateway, subnet.cidr_block, subnet.zone)
            if failure is not None:
                gateway.state, gateway.deleted_at = FAILED, utcnow()
                gateway.failure_code, gateway.failure_message = failure
            elif address is not None:
                assert gateway.network_interface_id and gateway.private_ip
                gateway.association_id = associate(
                    session, address, gateway.network_interface_id, gateway.private_ip
                )
            session.add(gateway)
            session.flush()
            if tags:
                self.tags.put(session, account_id, [gateway.id], dict(tags))
            view = NatGatewayView(gateway, dict(tags or {}))
            vpc_id, live = gateway.vpc_id, gateway.state == PENDING
        if live:
            self.on_change(vpc_id)
        return view

    def delete(self, account_id: str, gateway_id: str | None) -> str:
        with self.db.write_session() as session:
            gateway = owned(session, NAT_GATEWAY, account_id, gateway_id)
            if gateway.state in (DELETING, DELETED):
                return gateway.id
            session.execute(
                update(Route).where(Route.nat_gateway_id == gateway.id).values(state=BLACKHOLE)
            )
            if gateway.state == FAILED:  # nothing on the node, nothing held
                gateway.state, gateway.deleted_at = DELETED, utcnow()
                return gateway.id
            gateway.state = DELETING
            vpc_id = gateway.vpc_id
        self.on_change(vpc_id)
        return gateway.id

    def describe(
        self,
        account_id: str,
        ids: Sequence[str] | None = None,
        filters: Filters = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[NatGatewayView]:
        return self.vpcs._describe(
            NAT_GATEWAY,
            account_id,
            ids,
            filters,
            max_results,
            next_token,
            NAT_GATEWAY_FILTERS,
            lambda _s, rows, tags: [NatGatewayView(r, tags[r.id]) for r in rows],
        )

    # -- the node ------------------------------------------------------------------------

    def node_gateways(self, vpc_id: str) -> list[NatGatewaySpec]:
        """The VPC's gateways as the node keeps them, each with the subnets routed through
        it: none while the gateway's own subnet has no route to an internet gateway (its
        traffic would lead nowhere on AWS either)."""
        with self.db.session() as session:
            gateways = list(
                session.scalars(
                    select(NatGateway)
                    .where(NatGateway.vpc_id == vpc_id, NatGateway.state.in_(LIVE))
                    .order_by(NatGateway.id)
                )
            )
            if not gateways:
                return []
            public = set(internet_subnets(session, vpc_id))
            routed = nat_subnets(session, vpc_id)
            cidrs = {g.subnet_id: self._cidr_of(session, g.subnet_id) for g in gateways}
        return [
            NatGatewaySpec(
                g.id,
                g.public_ip,
                tuple(routed.get(g.id, ())) if cidrs[g.subnet_id] in public else (),
            )
            for g in gateways
        ]

    def unsettled_vpcs(self) -> list[str]:
        """The VPCs with a gateway the node has not reported on yet (``pending`` or
        ``deleting``); gateways ended more than an hour ago are forgotten meanwhile."""
        with self.db.session() as session:
            unsettled = set(
                session.scalars(
                    select(NatGateway.vpc_id).where(NatGateway.state.in_((PENDING, DELETING)))
                )
            )
            expired = session.scalar(select(NatGateway.id).where(*_expired()).limit(1))
        if expired is not None:
            with self.db.write_session() as session:
                self._purge(session)
        return sorted(unsettled)

    def observe(self, vpc_id: str, report: NatGatewayReport) -> None:
        """What the node reported after being told ``node_gateways``: pending gateways it
        has in force are ``available``, those it refused ``failed``; deleting ones it no
        longer has are ``deleted``, their address and interface let go."""
        with self.db.write_session() as session:
            for gateway in session.scalars(
                select(NatGateway).where(
                    NatGateway.vpc_id == vpc_id, NatGateway.state.in_((PENDING, DELETING))
                )
            ):
                if gateway.state == PENDING and gateway.id in report.in_force:
                    gateway.state = AVAILABLE
                elif gateway.state == PENDING and gateway.id in report.refused:
                    self._release(session, gateway)
                    gateway.state, gateway.deleted_at = FAILED, utcnow()
                    gateway.failure_code = "InternalError"
                    gateway.failure_message = (
                        f"Network interface {gateway.network_interface_id}, created and used "
                        "internally by this NAT gateway is in an invalid state. Please try "
                        "again."
                    )
                    session.execute(
                        update(Route)
                        .where(Route.nat_gateway_id == gateway.id)
                        .values(state=BLACKHOLE)
                    )
                elif gateway.state == DELETING and gateway.id not in report.in_force:
                    self._release(session, gateway)
                    gateway.state, gateway.deleted_at = DELETED, utcnow()

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _allocation(
        session: Session, account_id: str, kind: str, allocation_id: str | None
    ) -> ElasticIp | None:
        if kind == "private":
            if allocation_id:
                raise invalid_combination(
                    "AllocationId cannot be specified for a private NAT gateway."
                )
            return None
        if not allocation_id:
            raise missing_parameter("AllocationId")
        checked_ids(ALLOCATION, [allocation_id])
        address = session.get(ElasticIp, allocation_id)
        if address is None or address.account_id != account_id:
            raise not_found(ALLOCATION, [allocation_id])
        return address

    @staticmethod
    def _failure(
        session: Session, gateway: NatGateway, address: ElasticIp | None
    ) -> tuple[str, str] | None:
        """What AWS would report this gateway failed for, before any address is taken."""
        if address is None:
            return None
        if attached_gateway(session, gateway.vpc_id) is None:
            return (
                "Gateway.NotAttached",
                f"Network {gateway.vpc_id} has no Internet gateway attached",
            )
        if address.association_id is not None:
            return (
                "Resource.AlreadyAssociated",
                f"Elastic IP address {address.id} is already associated",
            )
        return None

    @staticmethod
    def _take_address(
        session: Session, gateway: NatGateway, cidr: str, zone: str
    ) -> tuple[str, str] | None:
        """The gateway's interface with the lowest free address of its subnet."""
        free = free_private_ips(cidr, taken_ips(session, gateway.vpc_id), 1)
        if not free:
            return (
                "InsufficientFreeAddressesInSubnet",
                "Subnet has insufficient free addresses to create this NAT gateway",
            )
        interface = NetworkInterface(
            id=new_id("eni", lambda i: session.get(NetworkInterface, i) is not None),
            account_id=gateway.account_id,
            vpc_id=gateway.vpc_id,
            subnet_id=gateway.subnet_id,
            zone=zone,
            mac=new_mac(
                lambda m: (
                    session.scalar(select(NetworkInterface.id).where(NetworkInterface.mac == m))
                    is not None
                )
            ),
            private_ip=free[0],
            description=f"Interface for NAT Gateway {gateway.id}",
            interface_type=INTERFACE_TYPE,
            source_dest_check=False,
        )
        session.add(interface)
        gateway.network_interface_id, gateway.private_ip = interface.id, interface.private_ip
        return None

    @staticmethod
    def _release(session: Session, gateway: NatGateway) -> None:
        """Let go of the gateway's elastic IP association and its interface."""
        if gateway.association_id:
            address = session.scalar(
                select(ElasticIp).where(ElasticIp.association_id == gateway.association_id)
            )
            if address is not None:
                address.disassociated_id = address.association_id
                address.association_id = None
                address.network_interface_id = None
                address.private_ip = None
        if gateway.network_interface_id:
            session.execute(
                delete(NetworkInterface).where(NetworkInterface.id == gateway.network_interface_id)
            )

    def _purge(self, session: Session) -> None:
        """Forget gateways deleted or failed more than an hour ago."""
        ended = list(session.scalars(select(NatGateway.id).where(*_expired())))
        if ended:
            self.tags.forget(session, ended)
            session.execute(delete(NatGateway).where(NatGateway.id.in_(ended)))

    @staticmethod
    def _cidr_of(session: Session, subnet_id: str) -> str | None:
        return session.scalar(select(Subnet.cidr_block).where(Subnet.id == subnet_id))
