"""Route tables: CreateRouteTable, DeleteRouteTable, AssociateRouteTable,
DisassociateRouteTable, ReplaceRouteTableAssociation, CreateRoute, ReplaceRoute,
DeleteRoute, by AWS's rules.

A subnet without an association of its own uses its VPC's main table. A table's local
routes (one per VPC range) are implicit and cannot be touched; a route's target is an
internet gateway attached to the VPC, or a network interface of the VPC (given as such or
as an instance with exactly one). A route whose target went away (gateway detached,
interface deleted) is ``blackhole``."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Network
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from karri.cloud.network.cidrs import parse_cidr
from karri.cloud.network.gateways import ACTIVE, ATTACHED, BLACKHOLE
from karri.cloud.network.interface_routes import subnet_tables, vpc_routes
from karri.cloud.network.models import (
    InternetGateway,
    NatGateway,
    NetworkInterface,
    Route,
    RouteTable,
    RouteTableAssociation,
    Vpc,
)
from karri.cloud.network.views import RouteTableView
from karri.cloud.network.vpc_changes import dependency, owned, owned_vpc
from karri.cloud.network.vpc_parts import VpcPartService
from karri.cloud.network.vpc_ranges import add_local_routes, vpc_blocks
from karri.cloud.network.vpcs import ROUTE_TABLE, SUBNET
from karri.errors import CloudError, invalid_combination, invalid_value, missing_parameter
from karri.ids import is_valid_id, new_id
from karri.node import VpcRoutes

MAX_ROUTES = 50  # per table (AWS's default quota)
LOCAL = "local"
UNSUPPORTED_TARGETS = (
    "TransitGatewayId",
    "VpcPeeringConnectionId",
    "EgressOnlyInternetGatewayId",
    "LocalGatewayId",
    "CarrierGatewayId",
    "VpcEndpointId",
    "CoreNetworkArn",
    "OdbNetworkArn",
)


def _association_not_found(association_id: str) -> CloudError:
    return CloudError(
        "InvalidAssociationID.NotFound", f"The association ID '{association_id}' does not exist"
    )


def nat_subnets(session: Session, vpc_id: str) -> dict[str, list[str]]:
    """NAT gateway id -> the VPC's subnets (CIDRs) whose route table sends 0.0.0.0/0 to
    it (the route ``active``)."""
    by_table = dict(
        session.execute(
            select(Route.route_table_id, Route.nat_gateway_id).where(
                Route.destination_cidr == "0.0.0.0/0",
                Route.nat_gateway_id.is_not(None),
                Route.state == ACTIVE,
            )
        ).all()
    )
    routed: dict[str, list[str]] = {}
    for subnet, table in subnet_tables(session, vpc_id):
        if table in by_table:
            routed.setdefault(by_table[table], []).append(subnet.cidr_block)
    return {k: sorted(v) for k, v in routed.items()}


def internet_subnets(session: Session, vpc_id: str) -> list[str]:
    """The VPC's subnets (CIDRs) whose route table (their own, else the main one) sends
    0.0.0.0/0 to an internet gateway attached to the VPC."""
    gateway = select(InternetGateway.id).where(
        InternetGateway.vpc_id == vpc_id, InternetGateway.attachment_state == ATTACHED
    )
    routed = set(
        session.scalars(
            select(Route.route_table_id).where(
                Route.destination_cidr == "0.0.0.0/0", Route.gateway_id.in_(gateway)
            )
        )
    )
    return sorted(s.cidr_block for s, table in subnet_tables(session, vpc_id) if table in routed)


def _nat_target(
    session: Session, account_id: str, vpc: Vpc, network: IPv4Network, gateway_id: str
) -> tuple[str, str]:
    """The NAT gateway a route may target and the route's state (``blackhole`` for one
    that failed or is going)."""
    if any(network.subnet_of(IPv4Network(b)) for b in vpc_blocks(session, vpc)):
        raise invalid_value(
            f"The destination CIDR block {network} is equal to or more specific than one of "
            "this VPC's CIDR blocks. This route can target only an interface or an instance."
        )
    gateway = session.get(NatGateway, gateway_id) if is_valid_id(gateway_id, "nat") else None
    if gateway is None or gateway.account_id != account_id or gateway.state == "deleted":
        raise CloudError("NatGatewayNotFound", f"The natGateway ID '{gateway_id}' does not exist")
    if gateway.vpc_id != vpc.id:
        raise invalid_value(
            f"route table and NAT gateway {gateway.id} belong to different networks"
        )
    return gateway.id, ACTIVE if gateway.state in ("pending", "available") else BLACKHOLE


class RouteTables(VpcPartService):
    """``on_change``: which subnets reach outside may have changed (``internet_subnets``)."""

    def internet_subnets(self, vpc_id: str) -> list[str]:
        with self.db.session() as session:
            return internet_subnets(session, vpc_id)

    def vpc_routes(self, vpc_id: str) -> VpcRoutes:
        with self.db.session() as session:
            return vpc_routes(session, vpc_id)

    # -- tables ----------------------------------------------------------------------

    def create(
        self, account_id: str, vpc_id: str | None, tags: Mapping[str, str] | None = None
    ) -> RouteTableView:
        with self.db.write_session() as session:
            vpc = owned_vpc(session, account_id, vpc_id)
            table_id = new_id("rtb", lambda i: session.get(RouteTable, i) is not None)
            session.add(RouteTable(id=table_id, account_id=account_id, vpc_id=vpc.id))
            session.flush()
            add_local_routes(session, table_id, vpc_blocks(session, vpc))
            if tags:
                self.tags.put(session, account_id, [table_id], dict(tags))
        return self.vpcs.describe_route_tables(account_id, [table_id]).items[0]

    def delete(self, account_id: str, table_id: str | None) -> None:
        with self.db.write_session() as session:
            table = owned(session, ROUTE_TABLE, account_id, table_id)
            if session.scalar(
                select(RouteTableAssociation.id).where(
                    RouteTableAssociation.route_table_id == table.id
                )
            ):
                raise dependency("routeTable", table.id)
            session.execute(delete(Route).where(Route.route_table_id == table.id))
            self.tags.forget(session, [table.id])
            session.delete(table)

    # -- associations ----------------------------------------------------------------

    def associate(self, account_id: str, table_id: str | None, subnet_id: str | None) -> str:
        with self.db.write_session() as session:
            table = owned(session, ROUTE_TABLE, account_id, table_id)
            subnet = owned(session, SUBNET, account_id, subnet_id)
            if subnet.vpc_id != table.vpc_id:
                raise invalid_value(
                    f"Route table {table.id} and subnet {subnet.id} belong to different networks"
                )
            if session.scalar(
                select(RouteTableAssociation.id).where(RouteTableAssociation.subnet_id == subnet.id)
            ):
                raise CloudError(
                    "Resource.AlreadyAssociated",
                    f"the specified association for route table {table.id} conflicts with "
                    "an existing association",
                )
            association_id = new_id(
                "rtbassoc", lambda i: session.get(RouteTableAssociation, i) is not None
            )
            session.add(
                RouteTableAssociation(
                    id=association_id, route_table_id=table.id, subnet_id=subnet.id
                )
            )
            vpc_id = table.vpc_id
        self.on_change(vpc_id)
        return association_id

    def disassociate(self, account_id: str, association_id: str | None) -> None:
        with self.db.write_session() as session:
            association, current = self._association(session, account_id, association_id)
            if association.main:
                raise invalid_value(
                    f"cannot disassociate the main route table association {association.id}"
                )
            vpc_id = current.vpc_id
            session.delete(association)
        self.on_change(vpc_id)

    def replace_association(
        self, account_id: str, association_id: str | None, table_id: str | None
    ) -> str:
        """The subnet's (or the VPC's main) association moved to another table of the
        VPC: a new association id, as on AWS."""
        with self.db.write_session() as session:
            association, current = self._association(session, account_id, association_id)
            table = owned(session, ROUTE_TABLE, account_id, table_id)
            if table.vpc_id != current.vpc_id:
                raise invalid_value(
                    f"Route table {table.id} and association {association.id} belong to "
                    "different networks"
                )
            replaced = RouteTableAssociation(
                id=new_id("rtbassoc", lambda i: session.get(RouteTableAssociation, i) is not None),
                route_table_id=table.id,
                subnet_id=association.subnet_id,
                main=association.main,
            )
            session.delete(association)
            session.flush()
            session.add(replaced)
            new_id_, vpc_id = replaced.id, table.vpc_id
        self.on_change(vpc_id)
        return new_id_

    # -- routes ----------------------------------------------------------------------

    def create_route(
        self, account_id: str, table_id: str | None, cidr: str | None, targets: Mapping[str, Any]
    ) -> None:
        with self.db.write_session() as session:
            table, vpc, network = self._route_place(session, account_id, table_id, cidr)
            if self._route(session, table.id, network) is not None:
                raise CloudError(
                    "RouteAlreadyExists", f"The route identified by {network} already exists."
                )
            count = len(
                list(session.scalars(select(Route.id).where(Route.route_table_id == table.id)))
            )
            if count >= MAX_ROUTES:
                raise CloudError(
                    "RouteLimitExceeded", "The maximum number of routes has been reached."
                )
            route = Route(
                route_table_id=table.id,
                destination_cidr=str(network),
                gateway_id="",
                origin="CreateRoute",
            )
            self._target(session, account_id, vpc, table, network, targets, route)
            session.add(route)
            vpc_id = vpc.id
        self.on_change(vpc_id)

    def replace_route(
        self, account_id: str, table_id: str | None, cidr: str | None, targets: Mapping[str, Any]
    ) -> None:
        with self.db.write_session() as session:
            table, vpc, network = self._route_place(session, account_id, table_id, cidr)
            route = self._route(session, table.id, network)
            if route is None or route.gateway_id == LOCAL:
                raise self._no_route(table.id, network, route)
            route.gateway_id, route.network_interface_id, route.instance_id = "", None, None
            route.nat_gateway_id = None
            route.origin = "CreateRoute"
            self._target(session, account_id, vpc, table, network, targets, route)
            vpc_id = vpc.id
        self.on_change(vpc_id)

    def delete_route(self, account_id: str, table_id: str | None, cidr: str | None) -> None:
        with self.db.write_session() as session:
            table, vpc, network = self._route_place(session, account_id, table_id, cidr)
            route = self._route(session, table.id, network)
            if route is None or route.gateway_id == LOCAL:
                raise self._no_route(table.id, network, route)
            session.delete(route)
            vpc_id = vpc.id
        self.on_change(vpc_id)

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _no_route(table_id: str, network: IPv4Network, route: Route | None) -> CloudError:
        if route is not None:  # the local route
            return invalid_value(f"cannot remove local route {network} in route table {table_id}")
        return CloudError(
            "InvalidRoute.NotFound",
            f"no route with destination-cidr-block {network} in route table {table_id}",
        )

    @staticmethod
    def _route(session: Session, table_id: str, network: IPv4Network) -> Route | None:
        return session.scalar(
            select(Route).where(
                Route.route_table_id == table_id, Route.destination_cidr == str(network)
            )
        )

    @staticmethod
    def _route_place(
        session: Session, account_id: str, table_id: str | None, cidr: str | None
    ) -> tuple[RouteTable, Vpc, IPv4Network]:
        if not cidr:
            raise missing_parameter("DestinationCidrBlock")
        network = parse_cidr(cidr, "destinationCidrBlock")
        table = owned(session, ROUTE_TABLE, account_id, table_id)
        vpc = session.get(Vpc, table.vpc_id)
        assert vpc is not None
        return table, vpc, network

    @staticmethod
    def _target(
        session: Session,
        account_id: str,
        vpc: Vpc,
        table: RouteTable,
        network: IPv4Network,
        targets: Mapping[str, Any],
        route: Route,
    ) -> None:
        """Point ``route`` at the one target given (and set its state)."""
        given = {k: v for k, v in targets.items() if v}
        if not given:
            raise missing_parameter("GatewayId")
        if len(given) > 1:
            raise invalid_combination(
                "The parameter " + " and ".join(sorted(given)) + " cannot be used together"
            )
        ((kind, value),) = given.items()
        if kind in UNSUPPORTED_TARGETS:
            raise CloudError("UnsupportedOperation", f"The route target {kind} is not supported.")
        within = any(network.subnet_of(IPv4Network(b)) for b in vpc_blocks(session, vpc))
        if kind == "GatewayId":
            if within:
                raise invalid_value(
                    f"The destination CIDR block {network} is equal to or more specific than "
                    "one of this VPC's CIDR blocks. This route can target only an interface "
                    "or an instance."
                )
            gateway = session.get(InternetGateway, value) if is_valid_id(value, "igw") else None
            if gateway is None or gateway.account_id != account_id:
                raise CloudError(
                    "InvalidGatewayID.NotFound", f"The gateway ID '{value}' does not exist"
                )
            if gateway.vpc_id != vpc.id or gateway.attachment_state != ATTACHED:
                raise invalid_value(
                    f"route table {table.id} and network gateway {gateway.id} belong to "
                    "different networks"
                )
            route.gateway_id, route.state = gateway.id, ACTIVE
            return
        if kind == "NatGatewayId":
            route.nat_gateway_id, route.state = _nat_target(
                session, account_id, vpc, network, value
            )
            return
        if kind == "InstanceId":
            interfaces = list(
                session.scalars(
                    select(NetworkInterface).where(
                        NetworkInterface.instance_id == value,
                        NetworkInterface.account_id == account_id,
                    )
                )
            )
            if not interfaces:
                raise CloudError(
                    "InvalidInstanceID.NotFound", f"The instance ID '{value}' does not exist"
                )
            if len(interfaces) > 1:
                raise invalid_value(f"There are multiple interfaces attached to instance '{value}'")
            interface = interfaces[0]
            route.instance_id = value
        else:  # NetworkInterfaceId
            interface = session.get(NetworkInterface, value)
            if interface is None or interface.account_id != account_id:
                raise CloudError(
                    "InvalidNetworkInterfaceID.NotFound",
                    f"The networkInterface ID '{value}' does not exist",
                )
            route.instance_id = interface.instance_id
        if interface.vpc_id != vpc.id:
            raise invalid_value(
                f"route table {table.id} and interface {interface.id} belong to different networks"
            )
        route.network_interface_id, route.state = interface.id, ACTIVE

    @staticmethod
    def _association(
        session: Session, account_id: str, association_id: str | None
    ) -> tuple[RouteTableAssociation, RouteTable]:
        """The account's association of that id and its route table."""
        if not association_id:
            raise missing_parameter("AssociationId")
        if not is_valid_id(association_id, "rtbassoc"):
            raise _association_not_found(association_id)
        association = session.get(RouteTableAssociation, association_id)
        table = session.get(RouteTable, association.route_table_id) if association else None
        if association is None or table is None or table.account_id != account_id:
            raise _association_not_found(association_id)
        return association, table
