"""Public addresses on a real uplink (``public_interface``), without QEMU: "the outside"
is a namespace holding one end of a veth pair whose other end, in the host's namespace,
is the public interface; a server there records who connects. Guests are namespaces on
the VPC's bridge (vpcnet.py). Needs root; every namespace is removed at teardown."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from karri.node import NodeSettings
from karri.node.firewall import Firewall, GroupRules, Member, Rule
from karri.node.publicnat import LoopbackNat, transit_network
from karri.node.routing import routes_script

from . import guests
from .conftest import LoopThread
from .test_firewall import pytestmark as needs_nft
from .vpcnet import HOST_SIDE, OUTSIDE, Outside, Vpc

pytestmark = needs_nft

PREFIX = f"karri-test-up-{os.getpid()}"
POOL = "198.51.100.128/25"
PUBLIC, SECOND = "198.51.100.130", "198.51.100.131"
MASQUERADE = "198.51.100.140"  # the VPC's own address for instances without one
OPEN = GroupRules(
    "sg-open", (Rule("-1", cidrs=("0.0.0.0/0",)),), (Rule("-1", cidrs=("0.0.0.0/0",)),)
)


def seen_from(connect) -> str | None:
    """The source address the outside's server saw, or None if no connection came."""
    sock = connect(OUTSIDE, 8080, 1.0)
    if sock is None:
        return None
    with sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return sock.recv(256).decode().split("\r\n\r\n", 1)[-1]


@pytest.fixture
def outside() -> Iterator[Outside]:
    world = Outside(PREFIX)
    yield world
    world.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert PREFIX not in listed


@pytest.fixture
def world(loop: LoopThread, outside: Outside) -> Iterator[tuple[Vpc, Outside, LoopbackNat]]:
    vpc = Vpc(PREFIX)
    nat = LoopbackNat(
        vpc.ns, f"kfu{os.getpid() % 10**8}", transit_network(PREFIX), outside.interface
    )
    try:
        loop.run(nat.start({}))
        yield vpc, outside, nat
    finally:
        loop.run(nat.close())
        vpc.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{PREFIX}-vpc" not in listed


def test_instances_with_a_public_ip_go_out_as_it_and_are_reached_on_it(
    world: tuple[Vpc, Outside, LoopbackNat], loop: LoopThread
) -> None:
    vpc, outside, nat = world
    b, c = vpc.guest(12), vpc.guest(13)
    firewall = Firewall(vpc.ns, ("br0",))
    loop.run(firewall.load([OPEN], [Member(g.tap, g.ip, ("sg-open",)) for g in (b, c)]))
    assert loop.run(nat.associate(PUBLIC, b.ip))

    assert seen_from(b.connect) == PUBLIC  # SNAT to its public IP
    assert seen_from(c.connect) is None  # no public IP: nothing outside (as on AWS)
    reached = outside.ns.call(socket.socket)  # and the outside reaches b on its address
    with reached:
        reached.settimeout(1.0)
        reached.connect((PUBLIC, 80))
        reached.sendall(b"ping")
        assert reached.recv(64).decode() == f"{b.ip} ping"
    assert not b.reaches(HOST_SIDE, 22)  # the host is not reached through the uplink

    loop.run(nat.associate(PUBLIC, c.ip))  # moved: now c goes out as it
    assert seen_from(c.connect) == PUBLIC
    assert seen_from(b.connect) is None
    assert loop.run(nat.associate(SECOND, b.ip))
    loop.run(nat.associate(SECOND, c.ip))  # c, which has one, is given another
    assert seen_from(c.connect) == SECOND
    loop.run(nat.disassociate(PUBLIC))  # its older one goes: c still goes out as SECOND
    assert seen_from(c.connect) == SECOND
    loop.run(nat.disassociate(SECOND))
    assert loop.run(nat.associate(PUBLIC, c.ip))

    again = LoopbackNat(vpc.ns, nat.host_if, transit_network(PREFIX), outside.interface)
    assert loop.run(again.start({PUBLIC: c.ip})) == []  # a restarted node adopts it
    assert seen_from(c.connect) == PUBLIC
    loop.run(again.disassociate(PUBLIC))
    assert seen_from(c.connect) is None


def test_instances_without_a_public_ip_go_out_as_the_vpc_masquerade_address(
    world: tuple[Vpc, Outside, LoopbackNat], loop: LoopThread
) -> None:
    vpc, outside, nat = world
    b, c = vpc.guest(12), vpc.guest(13)
    firewall = Firewall(vpc.ns, ("br0",))
    loop.run(firewall.load([OPEN], [Member(g.tap, g.ip, ("sg-open",)) for g in (b, c)]))
    assert loop.run(nat.associate(PUBLIC, b.ip))
    loop.run(nat.set_masquerade(MASQUERADE))

    assert seen_from(c.connect) == MASQUERADE  # no public IP: masqueraded
    assert seen_from(b.connect) == PUBLIC  # a public IP: still its own
    loop.run(vpc.ns.nft(routes_script([])))  # no subnet routed to an internet gateway
    assert seen_from(c.connect) is None
    loop.run(vpc.ns.nft(routes_script(["10.9.0.0/16"])))  # another subnet only
    assert seen_from(c.connect) is None
    loop.run(vpc.ns.nft(routes_script(["172.31.0.0/20"])))  # its own: out again
    assert seen_from(c.connect) == MASQUERADE
    assert not c.reaches(HOST_SIDE, 22)  # the host stays out of reach
    unsolicited = outside.ns.call(socket.socket)  # nothing comes in on the masquerade
    with unsolicited:
        unsolicited.settimeout(1.0)
        with pytest.raises(OSError):
            unsolicited.connect((MASQUERADE, 80))

    again = LoopbackNat(vpc.ns, nat.host_if, transit_network(PREFIX), outside.interface)
    assert loop.run(again.start({PUBLIC: b.ip}, MASQUERADE)) == []  # adopted after a restart
    assert seen_from(c.connect) == MASQUERADE
    assert seen_from(b.connect) == PUBLIC
    loop.run(again.set_masquerade(None))  # none: as before, nothing outside
    assert seen_from(c.connect) is None
    routes = subprocess.run(
        ["ip", "-o", "route", "show", "table", "local", "dev", nat.host_if],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert MASQUERADE not in routes  # given back (the claim between clouds on the host)
    on_pub = subprocess.run(
        ["ip", "-n", vpc.ns.name, "-o", "address", "show", "dev", "pub"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert PUBLIC in on_pub and MASQUERADE not in on_pub


FETCH = f"""ping_until 172.31.0.1
i=0; while [ $i -lt 5 ]; do
  out=$(timeout 5 wget -q -O - http://{OUTSIDE}:8080/) && break; i=$((i+1)); sleep 1
done
echo "karri-test: outside [$out]"
"""


@pytest.mark.guests
def test_real_guests_go_out_as_their_public_ip_or_the_masquerade_on_a_node_with_an_uplink(
    loop: LoopThread, outside: Outside, tiny_image: Path, tmp_path: Path
) -> None:
    """``karri up --public-interface``'s node: guest A (a public IP) fetches from the
    outside's server, which sees A's public IP; guest B (none) is seen as the VPC's
    masquerade address."""
    a, b = "i-000000c1", "i-000000c2"
    ip = {a: "172.31.0.21", b: "172.31.0.22"}
    mac = {a: "d0:0d:ac:1f:00:15", b: "d0:0d:ac:1f:00:16"}
    meta = {i: guests.metadata(i, ip[i], mac[i], user_data=guests.user_data(FETCH)) for i in ip}
    settings = NodeSettings(
        public_ip_pool=POOL, public_interface=outside.interface, stop_timeout=30
    )
    node = guests.open_node(tmp_path / "data", settings, metadata=meta.get)
    loop.run(node.set_internet_subnets(guests.VPC, None, MASQUERADE))
    loop.run(node.start(), 60)
    try:
        loop.run(node.launch(replace(guests.spec(tiny_image, a, ip[a], mac[a]), public_ip=PUBLIC)))
        loop.run(node.launch(replace(guests.spec(tiny_image, b, ip[b], mac[b]), public_ip=False)))
        assert loop.call(node.info, a).public_ip == PUBLIC
        guests.wait_console(loop, node, a, rf"outside \[{re.escape(PUBLIC)}\]", 240)
        guests.wait_console(loop, node, b, rf"outside \[{re.escape(MASQUERADE)}\]", 240)
    finally:
        loop.run(node.close(stop_instances=True), 180)
    assert not guests.vpc_namespace(node.data_dir).exists()
    local = ["ip", "-o", "route", "show", "table", "local", f"{MASQUERADE}/32"]
    assert subprocess.run(local, capture_output=True, text=True, check=True).stdout == ""
