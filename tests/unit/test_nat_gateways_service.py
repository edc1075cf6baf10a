"""NAT gateways in-process on SQLite: what the node is told (the subnets routed through
each gateway, none while the gateway's own subnet has no route to the internet gateway)
and what its report does to the states (available; refused: failed with InternalError,
the address and interface let go; deleting: deleted)."""

from __future__ import annotations

from karri.cloud.network.addresses import Addresses
from karri.cloud.network.nat_gateways import NatGateways
from karri.cloud.network.route_tables import RouteTables
from karri.cloud.network.subnet_changes import SubnetChanges
from karri.cloud.network.vpcs import Vpcs
from karri.cloud.tags import Tags
from karri.node import NatGateway, NatGatewayReport
from karri.node.publicnat import PublicPool
from tests.unit.test_instances_service import ACCOUNT, World, world  # noqa: F401


class Place:
    """The account's default VPC (internet gateway attached, main table 0/0 → it), a
    private subnet with its own table, a NAT gateway in the default subnet."""

    def __init__(self, world: World) -> None:  # noqa: F811
        db, tags = world.db, Tags(world.db)
        geography = world.instances.geography
        self.vpcs = Vpcs(db, tags, geography)
        self.changed: list[str] = []
        self.routes = RouteTables(db, tags, self.vpcs)
        self.nat = NatGateways(db, tags, self.vpcs, self.changed.append)
        self.nat.register()
        (public,) = self.vpcs.describe_subnets(ACCOUNT).items
        self.public, self.vpc_id = public.subnet, public.subnet.vpc_id
        self.private = SubnetChanges(db, tags, geography, self.vpcs).create_subnet(
            ACCOUNT, self.vpc_id, "172.31.200.0/24"
        )
        self.table = self.routes.create(ACCOUNT, self.vpc_id).table.id
        self.routes.associate(ACCOUNT, self.table, self.private.subnet.id)
        addresses = Addresses(db, tags, "karri", PublicPool("127.64.0.0/29", "seed", tries=8))
        eip = addresses.allocate(ACCOUNT, "vpc", {}).address
        self.eip = eip.public_ip
        self.gateway = self.nat.create(ACCOUNT, self.public.id, eip.id, None, None).gateway.id

    def state(self) -> str:
        return self.nat.describe(ACCOUNT, [self.gateway]).items[0].gateway.state


def test_the_node_is_told_the_routed_subnets_and_its_report_sets_the_state(
    world: World,  # noqa: F811
) -> None:
    place = Place(world)
    assert place.changed == [place.vpc_id] and place.state() == "pending"
    assert place.nat.node_gateways(place.vpc_id) == [NatGateway(place.gateway, place.eip, ())]
    place.routes.create_route(ACCOUNT, place.table, "0.0.0.0/0", {"NatGatewayId": place.gateway})
    assert place.nat.node_gateways(place.vpc_id) == [
        NatGateway(place.gateway, place.eip, ("172.31.200.0/24",))
    ]
    assert place.nat.unsettled_vpcs() == [place.vpc_id]
    place.nat.observe(place.vpc_id, NatGatewayReport())  # not in force yet: still pending
    assert place.state() == "pending"
    place.nat.observe(place.vpc_id, NatGatewayReport((place.gateway,)))
    assert place.state() == "available" and place.nat.unsettled_vpcs() == []

    # the gateway's own subnet loses its route to the internet gateway: it leads nowhere
    main = next(
        t.table.id
        for t in place.vpcs.describe_route_tables(ACCOUNT).items
        if any(a.main for a in t.associations) and t.table.vpc_id == place.vpc_id
    )
    place.routes.delete_route(ACCOUNT, main, "0.0.0.0/0")
    assert place.nat.node_gateways(place.vpc_id) == [NatGateway(place.gateway, place.eip, ())]

    place.nat.delete(ACCOUNT, place.gateway)
    assert place.state() == "deleting" and place.nat.node_gateways(place.vpc_id) == []
    place.nat.observe(place.vpc_id, NatGatewayReport((place.gateway,)))  # still there
    assert place.state() == "deleting"
    place.nat.observe(place.vpc_id, NatGatewayReport())
    assert place.state() == "deleted"
    (table,) = place.vpcs.describe_route_tables(ACCOUNT, [place.table]).items
    assert [r.state for r in table.routes if r.destination_cidr == "0.0.0.0/0"] == ["blackhole"]


def test_a_gateway_the_node_refuses_fails_and_lets_go(world: World) -> None:  # noqa: F811
    place = Place(world)
    place.nat.observe(place.vpc_id, NatGatewayReport((), (place.gateway,)))
    (view,) = place.nat.describe(ACCOUNT, [place.gateway]).items
    assert view.gateway.state == "failed" and view.gateway.failure_code == "InternalError"
    (subnet,) = place.vpcs.describe_subnets(ACCOUNT, [place.public.id]).items
    assert subnet.available_addresses == 4091  # the interface's address given back
    assert place.nat.node_gateways(place.vpc_id) == []
