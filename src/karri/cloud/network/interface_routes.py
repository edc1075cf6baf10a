"""Routes to network interfaces (a NAT instance, an appliance) as the node carries them
out (``karri.node.subnetroutes``), and their state.

A route to an interface (given as such, or as the instance that had exactly one) leads
somewhere only while the interface exists and is attached to an instance that is
``pending`` or ``running``; otherwise it is a ``blackhole``, as AWS shows a route to a
stopped or terminated NAT instance or a detached interface. The state is worked out when
asked (DescribeRouteTables, the push to the node), so stopping, starting, detaching or
deleting needs no bookkeeping of routes."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from karri.cloud.instances import states
from karri.cloud.instances.models import Instance
from karri.cloud.network.address_models import ElasticIp
from karri.cloud.network.models import (
    NetworkInterface,
    Route,
    RouteTable,
    RouteTableAssociation,
    Subnet,
)
from karri.node import InterfaceRoute, SubnetRoutes, VpcRoutes

LIVE = (states.PENDING, states.RUNNING)
ACTIVE, BLACKHOLE = "active", "blackhole"  # as gateways.py (which needs vpcs.py)


def subnet_tables(session: Session, vpc_id: str) -> list[tuple[Subnet, str | None]]:
    """Each subnet of the VPC with the route table it uses (its own, else the main one)."""
    tables = {
        a.subnet_id: a.route_table_id
        for a in session.scalars(
            select(RouteTableAssociation)
            .join(RouteTable, RouteTable.id == RouteTableAssociation.route_table_id)
            .where(RouteTable.vpc_id == vpc_id)
        )
    }
    return [
        (s, tables.get(s.id, tables.get(None)))
        for s in session.scalars(select(Subnet).where(Subnet.vpc_id == vpc_id))
    ]


def targets(session: Session, routes: Iterable[Route]) -> dict[int, str | None]:
    """Each route to an interface (by id): its target's private address while the
    interface is attached to a live instance, else None (a blackhole)."""
    found: dict[int, str | None] = {}
    for route in routes:
        if not route.network_interface_id:
            continue
        interface = session.get(NetworkInterface, route.network_interface_id)
        instance = session.get(Instance, interface.instance_id) if interface else None
        live = interface is not None and instance is not None and instance.state in LIVE
        found[route.id] = interface.private_ip if live and interface else None
    return found


def route_states(session: Session, routes: Iterable[Route]) -> dict[int, str]:
    """The state of each route (by id): a route to an interface ``active`` only while it
    leads somewhere; any other keeps the state recorded with it."""
    routes = list(routes)
    live = targets(session, routes)
    return {
        r.id: (ACTIVE if live[r.id] else BLACKHOLE) if r.id in live else r.state for r in routes
    }


def vpc_routes(session: Session, vpc_id: str) -> VpcRoutes:
    """What the node needs of the VPC: each subnet's routes to interfaces (by its own
    route table, else the main one), the interfaces whose SourceDestCheck is off, and
    the elastic IPs of addresses other than an instance's primary one (a secondary
    address, another interface)."""
    tables = subnet_tables(session, vpc_id)
    rows = list(
        session.scalars(
            select(Route)
            .where(
                Route.route_table_id.in_(sorted({t for _, t in tables if t})),
                Route.network_interface_id.is_not(None),
            )
            .order_by(Route.destination_cidr)
        )
    )
    hops = targets(session, rows)
    subnets = []
    for subnet, table in sorted(tables, key=lambda st: st[0].cidr_block):
        entries = tuple(
            InterfaceRoute(r.destination_cidr, hops[r.id])
            for r in rows
            if r.route_table_id == table
        )
        if entries:
            subnets.append(SubnetRoutes(subnet.cidr_block, entries))
    forwarders = session.scalars(
        select(NetworkInterface.private_ip)
        .join(Instance, Instance.id == NetworkInterface.instance_id)
        .where(
            NetworkInterface.vpc_id == vpc_id,
            NetworkInterface.source_dest_check.is_(False),
            Instance.state.in_(LIVE),
        )
    )
    elastic = session.execute(
        select(ElasticIp.public_ip, ElasticIp.private_ip)
        .join(NetworkInterface, NetworkInterface.id == ElasticIp.network_interface_id)
        .join(Instance, Instance.id == NetworkInterface.instance_id)
        .where(
            NetworkInterface.vpc_id == vpc_id,
            ElasticIp.instance_id.is_(None),  # not the instance's own public address
            ElasticIp.private_ip.is_not(None),
            Instance.state.in_(LIVE),
        )
    )
    return VpcRoutes(
        tuple(subnets),
        tuple(sorted(forwarders)),
        tuple(sorted((str(public), str(private)) for public, private in elastic)),
    )


def source_dest_check(
    session: Session, instance_id: str | None, interface_id: str | None, value: bool
) -> None:
    """Set SourceDestCheck of an instance (its primary interface's) or of an interface
    (an instance's primary one's is the instance's too: AWS shows them as one)."""
    if interface_id is not None:
        interface = session.get(NetworkInterface, interface_id)
        assert interface is not None
        interface.source_dest_check = value
        if interface.device_index != 0 or interface.instance_id is None:
            return
        instance_id = interface.instance_id
    instance = session.get(Instance, instance_id)
    if instance is not None:
        instance.source_dest_check = value
    for primary in session.scalars(
        select(NetworkInterface).where(
            NetworkInterface.instance_id == instance_id, NetworkInterface.device_index == 0
        )
    ):
        primary.source_dest_check = value
