"""NAT gateways on a real uplink (``public_interface``), without QEMU: the outside and
its server as in test_uplink.py, guests as namespaces on the VPC's bridge (vpcnet.py).
A subnet routed through a NAT gateway goes out as the gateway's elastic IP and is not
reached from outside; without the route, or once the gateway is gone, it reaches
nothing. Needs root; every namespace is removed at teardown."""

from __future__ import annotations

import socket
import subprocess

import pytest

from karri.node import NatGateway, NatGatewayReport
from karri.node.firewall import Firewall, Member
from karri.node.publicnat import LoopbackNat, transit_network
from karri.node.routing import routes_script

from .conftest import LoopThread
from .test_firewall import pytestmark as needs_nft
from .test_uplink import OPEN, PREFIX, outside, seen_from, world  # noqa: F401 (fixtures)
from .vpcnet import HOST_SIDE, Outside, Vpc

pytestmark = needs_nft

ELASTIC = "198.51.100.150"  # the NAT gateway's elastic IP
PRIVATE = "172.31.0.0/20"  # vpcnet's subnet, routed through the gateway
GATEWAY = NatGateway("nat-00000001", ELASTIC, (PRIVATE,))


def local_routes(nat: LoopbackNat) -> str:
    return subprocess.run(
        ["ip", "-o", "route", "show", "table", "local", "dev", nat.host_if],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def on_pub(vpc: Vpc) -> str:
    return subprocess.run(
        ["ip", "-n", vpc.ns.name, "-o", "address", "show", "dev", "pub"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_a_private_subnet_goes_out_as_its_nat_gateway_and_is_not_reached(
    world: tuple[Vpc, Outside, LoopbackNat],  # noqa: F811 (test_uplink's fixture)
    loop: LoopThread,
) -> None:
    vpc, the_outside, nat = world
    c = vpc.guest(13)
    firewall = Firewall(vpc.ns, ("br0",))
    loop.run(firewall.load([OPEN], [Member(c.tap, c.ip, ("sg-open",))]))
    loop.run(vpc.ns.nft(routes_script([])))  # no subnet routed to the internet gateway
    assert seen_from(c.connect) is None

    report = loop.run(nat.set_gateways([GATEWAY]))
    assert report == NatGatewayReport(("nat-00000001",), ())
    loop.run(vpc.ns.nft(routes_script([], nat.gateway_sources)))
    assert seen_from(c.connect) == ELASTIC  # SNAT to the gateway's elastic IP
    assert f"{ELASTIC} via" in local_routes(nat) and ELASTIC in on_pub(vpc)
    assert not c.reaches(HOST_SIDE, 22)  # the host stays out of reach
    unsolicited = the_outside.ns.call(socket.socket)  # nothing comes in on the gateway's IP
    with unsolicited:
        unsolicited.settimeout(1.0)
        with pytest.raises(OSError):
            unsolicited.connect((ELASTIC, 80))
    unsolicited = the_outside.ns.call(socket.socket)  # nor to the guest's private address
    with unsolicited:
        unsolicited.settimeout(1.0)
        with pytest.raises(OSError):
            unsolicited.connect((c.ip, 80))

    # a restarted node adopts the namespace with the gateway in force
    again = LoopbackNat(vpc.ns, nat.host_if, transit_network(PREFIX), the_outside.interface)
    assert loop.run(again.start({}, None, [GATEWAY])) == []
    assert again.gateway_report([GATEWAY]).in_force == ("nat-00000001",)
    assert seen_from(c.connect) == ELASTIC

    # the route gone (the gateway kept, routing no subnet): nothing outside
    loop.run(again.set_gateways([NatGateway("nat-00000001", ELASTIC, ())]))
    loop.run(vpc.ns.nft(routes_script([], again.gateway_sources)))
    assert seen_from(c.connect) is None
    loop.run(again.set_gateways([GATEWAY]))
    loop.run(vpc.ns.nft(routes_script([], again.gateway_sources)))
    assert seen_from(c.connect) == ELASTIC
    # the gateway deleted: nothing outside, its address given back
    assert loop.run(again.set_gateways([])) == NatGatewayReport()
    loop.run(vpc.ns.nft(routes_script([], again.gateway_sources)))
    assert seen_from(c.connect) is None
    assert ELASTIC not in local_routes(nat) and ELASTIC not in on_pub(vpc)
