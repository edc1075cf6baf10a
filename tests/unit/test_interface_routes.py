"""Routes to network interfaces as the node is told them (interface_routes.vpc_routes)
and as DescribeRouteTables shows them: the target's address while its instance is live,
a blackhole once it is stopped; SourceDestCheck of an instance and of its primary
interface kept as one, and the interfaces with it off told to the node."""

from __future__ import annotations

from sqlalchemy import select

from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.network.interface_routes import route_states, source_dest_check, vpc_routes
from karri.cloud.network.models import NetworkInterface, Route, RouteTable
from karri.node import InterfaceRoute
from tests.unit.test_instances_service import ACCOUNT, World, world  # noqa: F401

VPC = default_vpc_id(ACCOUNT)


def _interfaces(world: World) -> dict[str, NetworkInterface]:  # noqa: F811
    with world.db.session() as session:
        return {i.instance_id: i for i in session.scalars(select(NetworkInterface))}


def test_a_route_to_an_instance_leads_to_it_while_it_runs(world: World) -> None:  # noqa: F811
    nat, other = world.run(min_count=2, max_count=2)
    eni = _interfaces(world)[nat]
    with world.db.write_session() as session:
        table = session.scalar(select(RouteTable.id).where(RouteTable.vpc_id == VPC))
        session.add(
            Route(
                route_table_id=table,
                destination_cidr="10.9.0.0/16",
                gateway_id="",
                network_interface_id=eni.id,
                instance_id=nat,
                origin="CreateRoute",
            )
        )
    world.set_state(nat, "running")
    with world.db.session() as session:
        told = vpc_routes(session, VPC)
        rows = list(session.scalars(select(Route).where(Route.network_interface_id == eni.id)))
        assert set(route_states(session, rows).values()) == {"active"}
    assert told.subnets and all(
        s.routes == (InterfaceRoute("10.9.0.0/16", eni.private_ip),) for s in told.subnets
    )  # every default subnet uses the main table
    assert told.forwarders == ()

    with world.db.write_session() as session:
        source_dest_check(session, nat, None, False)
    assert _interfaces(world)[nat].source_dest_check is False
    assert world.instances.get(ACCOUNT, nat).source_dest_check is False
    with world.db.write_session() as session:  # the interface's attribute is the instance's
        source_dest_check(session, None, _interfaces(world)[other].id, False)
    assert world.instances.get(ACCOUNT, other).source_dest_check is False
    with world.db.session() as session:
        assert vpc_routes(session, VPC).forwarders == tuple(
            sorted(i.private_ip for i in _interfaces(world).values())
        )

    world.set_state(nat, "stopped")
    with world.db.session() as session:
        told = vpc_routes(session, VPC)
        assert set(route_states(session, rows).values()) == {"blackhole"}
        assert told.forwarders == (_interfaces(world)[other].private_ip,)
    assert all(s.routes == (InterfaceRoute("10.9.0.0/16", None),) for s in told.subnets)
