"""Routes to network interfaces and SourceDestCheck in a real VPC namespace (network.py's
``VpcNetwork`` with subnetroutes.py's policy routing), without QEMU: guests are
namespaces on veths in place of the taps (test_network_acls.as_guest), so the
anti-spoofing bridge table, the security groups (one group open both ways), the ACL and
uplink tables are all in the path.

Subnet A (10.0.0.0/24) holds ``n``, the stand-in for a NAT instance or appliance, and
``a``; subnet B (10.0.1.0/24) holds ``p``, a private instance. ``n`` owns 192.0.2.1 on
its ``lo`` (an address beyond the VPC that only it answers) and may forward. Shown: B's
0.0.0.0/0 to ``n`` takes p's traffic to ``n`` only once n's SourceDestCheck is off (it
neither gets a packet for another address nor answers from one before); A, whose table
has no such route, does not reach it; a blackhole (target gone or told so) drops; a route
more specific than the local one (A's prefix to ``n``, from B) passes p's traffic to
``a`` through ``n``, so it stops when ``n`` stops forwarding; a guest with the check on
cannot send from an address not its own; a restarted node adopts it all unchanged."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from karri.node.firewall import GroupRules
from karri.node.network import Port, VpcNetwork, tap_name
from karri.node.subnetroutes import TABLE_BASE, InterfaceRoute, SubnetRoutes, VpcRoutes

from .conftest import LoopThread, needs_root
from .test_network_acls import EVERYTHING, OPEN, guests_in
from .test_network_acls import as_guest as _as_guest
from .test_uplink import seen_from
from .vpcnet import Guest, Outside, answer, exchange, sh

pytestmark = needs_root

PREFIX = f"karri-test-rt-{os.getpid()}"
A, B = "10.0.0.0/24", "10.0.1.0/24"
BEYOND = "192.0.2.1"  # on n's lo only
NAT_PUBLIC = "198.51.100.140"
IN_ONLY = GroupRules("sg-in-only", EVERYTHING, ())  # n's public IP on the outside's network


def port(n: int, ip: str, subnet: str) -> Port:
    instance_id = f"i-0000001{n}"
    return Port(instance_id, tap_name(instance_id), f"0e:00:00:00:01:0{n}", ip, subnet,
                ("sg-open",))  # fmt: skip


PORTS = {"n": port(1, "10.0.0.4", A), "a": port(2, "10.0.0.5", A), "p": port(3, "10.0.1.4", B)}
N_IP = PORTS["n"].ip


def routes(*entries: tuple[str, str, str | None], forwarders: tuple[str, ...] = ()) -> VpcRoutes:
    """(subnet, destination, target) triples as the cloud sends them."""
    by_subnet: dict[str, list[InterfaceRoute]] = {}
    for subnet, destination, target in entries:
        by_subnet.setdefault(subnet, []).append(InterfaceRoute(destination, target))
    subnets = tuple(SubnetRoutes(s, tuple(r)) for s, r in by_subnet.items())
    return VpcRoutes(subnets, forwarders)


@pytest.fixture(scope="module")
def vpc(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    base = tmp_path_factory.mktemp("routes")
    with guests_in(loop, base, "vpc-0123456789abcdef2", PORTS, "rt-") as (net, guests):
        sh("ip", "-n", guests["n"].ns.name, "address", "add", f"{BEYOND}/32", "dev", "lo")
        yield net, guests, base


def answer_from(guest: Guest, ip: str, source: str | None = None) -> str | None:
    """What a server at ``ip``:80 answers ``guest`` (from ``source``), or None."""
    sock = guest.ns.call(socket.socket)
    with sock:
        sock.settimeout(0.5)
        try:
            if source:
                sock.bind((source, 0))
            sock.connect((ip, 80))
        except OSError:
            return None
        return exchange(sock)


def forwarding(guest: Guest, on: bool) -> None:
    sh("ip", "netns", "exec", guest.ns.name, "sysctl", "-q", "-w",
       f"net.ipv4.ip_forward={int(on)}")  # fmt: skip


def kernel(net: VpcNetwork, *args: str) -> str:
    return subprocess.run(
        ["ip", "-n", net.ns.name, *args], capture_output=True, text=True, check=True
    ).stdout


def test_a_subnet_goes_where_its_route_table_sends_it(loop: LoopThread, vpc: tuple) -> None:
    net, guests, _ = vpc
    p, a, n = guests["p"], guests["a"], guests["n"]
    seen_by_n = f"{N_IP} ping"
    assert answer_from(p, BEYOND) is None  # nothing routes there yet
    default_to_n = (B, "0.0.0.0/0", N_IP)
    loop.run(net.set_routes(routes(default_to_n)))
    assert answer_from(p, BEYOND) is None  # n's SourceDestCheck on: not its address
    loop.run(net.set_routes(routes(default_to_n, forwarders=(N_IP,))))
    assert answer_from(p, BEYOND) == seen_by_n  # through n, answered from 192.0.2.1
    assert answer_from(a, BEYOND) is None  # A's table (the main one) has no such route
    assert answer_from(p, a.ip) == f"{a.ip} ping"  # the local routes stay local

    loop.run(net.set_routes(routes((B, "0.0.0.0/0", None), forwarders=(N_IP,))))
    assert "blackhole default" in kernel(net, "route", "show", "table", str(TABLE_BASE))
    assert answer_from(p, BEYOND) is None
    assert answer_from(p, a.ip) == f"{a.ip} ping"

    # more specific than the local route: B's traffic to A goes through n
    through_n = routes((B, A, N_IP), forwarders=(N_IP,))
    forwarding(n, False)
    loop.run(net.set_routes(through_n))
    assert answer_from(p, a.ip) is None  # n does not forward
    forwarding(n, True)
    assert answer_from(p, a.ip) == f"{a.ip} ping"  # forwarded by n (with p's address)
    assert answer_from(a, p.ip) == f"{p.ip} ping"  # A's own table: straight to B

    loop.run(net.set_routes(VpcRoutes()))  # everything gone: no table, no rule left
    assert str(TABLE_BASE) not in kernel(net, "rule", "show")
    assert kernel(net, "route", "show", "table", "all").count("table 73") == 0
    assert answer_from(p, BEYOND) is None


def test_a_route_to_an_interface_not_on_the_node_is_a_blackhole(
    loop: LoopThread, vpc: tuple
) -> None:
    net, guests, _ = vpc
    p = guests["p"]
    loop.run(net.set_routes(routes((B, "0.0.0.0/0", "10.0.0.9"), forwarders=(N_IP,))))
    assert "blackhole default" in kernel(net, "route", "show", "table", str(TABLE_BASE))
    assert answer_from(p, BEYOND) is None
    loop.run(net.set_routes(VpcRoutes()))


def test_source_dest_check_on_stops_another_source(loop: LoopThread, vpc: tuple) -> None:
    net, guests, _ = vpc
    p, a = guests["p"], guests["a"]
    loop.run(net.set_routes(VpcRoutes()))
    sh("ip", "-n", p.ns.name, "address", "add", "10.0.1.99/32", "dev", "eth0")
    try:
        assert answer_from(p, a.ip, source=p.ip) == f"{a.ip} ping"
        assert answer_from(p, a.ip, source="10.0.1.99") is None  # spoofed: dropped
    finally:
        sh("ip", "-n", p.ns.name, "address", "del", "10.0.1.99/32", "dev", "eth0")


def test_a_restarted_node_adopts_the_routes(loop: LoopThread, vpc: tuple) -> None:
    net, guests, base = vpc
    p = guests["p"]
    wanted = routes((B, "0.0.0.0/0", N_IP), forwarders=(N_IP,))
    loop.run(net.set_routes(wanted))
    rules, tables = kernel(net, "rule", "show"), kernel(net, "route", "show", "table", "all")
    again = VpcNetwork(base / "data", base / "state", "vpc-0123456789abcdef2")
    loop.run(again.start(list(PORTS.values()), [OPEN], {}, None, None, routes=wanted), 60)
    assert kernel(net, "rule", "show") == rules
    assert kernel(net, "route", "show", "table", "all") == tables
    try:
        assert answer_from(p, BEYOND) == f"{N_IP} ping"
    finally:  # the kernel holds what ``net`` holds too: it undoes it
        loop.run(again.dhcp.stop())  # its own dnsmasq; the fixture ends the namespace
        loop.run(net.set_routes(VpcRoutes()))


MASQUERADE = """table ip nat {
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    oifname "eth0" ip saddr 10.0.1.0/24 masquerade
  }
}
"""


def test_a_nat_instance_masquerades_what_the_route_sends_it(loop: LoopThread, vpc: tuple) -> None:
    net, guests, _ = vpc
    p, a, n = guests["p"], guests["a"], guests["n"]
    a.serve_udp(5353)
    forwarding(n, True)
    loop.run(net.set_routes(routes((B, A, N_IP), forwarders=(N_IP,))))
    assert p.ask_udp(a.ip, 5353) == f"{a.ip} ping"
    assert a.heard[-1] == p.ip  # forwarded by n as it came
    sh("ip", "netns", "exec", n.ns.name, "nft", "-f", "-", stdin=MASQUERADE)
    try:
        assert p.ask_udp(a.ip, 5353) == f"{a.ip} ping"  # the reply back through n
        assert a.heard[-1] == N_IP  # masqueraded by n: a NAT instance
    finally:
        sh("ip", "netns", "exec", n.ns.name, "nft", "delete", "table", "ip", "nat")
        loop.run(net.set_routes(VpcRoutes()))


def test_elastic_ips_of_a_secondary_address_and_another_interface(
    loop: LoopThread, vpc: tuple
) -> None:
    net, guests, _ = vpc
    a = guests["a"]
    first = f"127.64.{os.getpid() % 250 + 2}.{os.getpid() // 250 % 250 + 2}"
    second = first.rsplit(".", 1)[0] + f".{(int(first.rsplit('.', 1)[1]) + 1) % 250 + 2}"
    loop.run(net.set_port_addresses(PORTS["a"].key, ("10.0.0.50",)))
    sh("ip", "-n", a.ns.name, "address", "add", "10.0.0.50/24", "dev", "eth0")
    card = Port(PORTS["n"].instance_id, "kte00000011", "0e:00:00:00:01:09", "10.0.1.20", B,
                ("sg-open",), interface_id="eni-00000011")  # fmt: skip
    loop.run(net.plug(card))
    eni = _as_guest(net, card, "rt-e")
    try:
        elastic = ((first, "10.0.0.50"), (second, card.ip))
        loop.run(net.set_routes(VpcRoutes(elastic=elastic)))
        assert answer(first) == f"{a.ip} ping"  # to a's secondary address
        assert answer(second) == f"{card.ip} ping"  # to n's second interface
        loop.run(net.unplug(card.key))  # detached: its address leads nowhere
        assert answer(second) is None
        assert net.elastic == {first: "10.0.0.50"}
        loop.run(net.set_routes(VpcRoutes()))  # disassociated
        assert answer(first) is None and net.elastic == {}
    finally:
        eni.close()
        subprocess.run(["ip", "netns", "delete", eni.ns.name], check=False)
        loop.run(net.unplug(card.key))
        loop.run(net.set_port_addresses(PORTS["a"].key, ()))
        loop.run(net.set_routes(VpcRoutes()))


def test_a_nat_instance_takes_a_private_subnet_out_as_its_public_ip(
    loop: LoopThread, tmp_path: Path
) -> None:
    """The whole NAT-instance path on a real uplink (test_uplink.py's outside): B's
    0.0.0.0/0 to ``n``, which masquerades; the outside sees n's public IP."""
    the_outside = Outside(f"{PREFIX}-nat")
    try:
        with guests_in(loop, tmp_path, "vpc-0123456789abcdef3", PORTS, "rtn-",
                       the_outside.interface) as (net, guests):  # fmt: skip
            p, n = guests["p"], guests["n"]
            loop.run(net.set_internet([A]))  # A routed to the internet gateway, B not
            assert loop.run(net.publish(PORTS["n"].key, [NAT_PUBLIC])) == NAT_PUBLIC
            assert seen_from(n.connect) == NAT_PUBLIC
            forwarding(n, True)
            sh("ip", "netns", "exec", n.ns.name, "nft", "-f", "-", stdin=MASQUERADE)
            assert seen_from(p.connect) is None  # B reaches nothing outside
            loop.run(net.set_routes(routes((B, "0.0.0.0/0", N_IP))))
            assert seen_from(p.connect) is None  # n's SourceDestCheck on
            loop.run(net.set_routes(routes((B, "0.0.0.0/0", N_IP), forwarders=(N_IP,))))
            assert seen_from(p.connect) == NAT_PUBLIC  # out through n, as n's public IP
    finally:
        the_outside.close()


def test_what_a_forwarder_sends_from_another_address_passes_its_egress_groups(
    loop: LoopThread, vpc: tuple
) -> None:
    """A new connection from an address beyond the VPC (an appliance's network): let
    through with n's SourceDestCheck off, by n's egress rules (none: nothing)."""
    net, guests, _ = vpc
    a, n = guests["a"], guests["n"]
    back_to_n = (A, "192.0.2.0/24", N_IP)  # a's replies to 192.0.2.1 go to n
    loop.run(net.set_routes(routes(back_to_n)))
    assert answer_from(n, a.ip, source=BEYOND) is None  # the check on: dropped
    loop.run(net.set_routes(routes(back_to_n, forwarders=(N_IP,))))
    assert answer_from(n, a.ip, source=BEYOND) == f"{a.ip} ping"
    loop.run(net.set_groups([OPEN, IN_ONLY]))
    loop.run(net.set_port_groups(PORTS["n"].key, ("sg-in-only",)))
    try:
        assert answer_from(n, a.ip, source=BEYOND) is None  # n's egress allows nothing
    finally:
        loop.run(net.set_port_groups(PORTS["n"].key, ("sg-open",)))
        loop.run(net.set_routes(VpcRoutes()))
    assert answer_from(n, a.ip, source=BEYOND) is None
