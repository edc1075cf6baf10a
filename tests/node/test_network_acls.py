"""Network ACLs in a real VPC namespace (network.py's ``VpcNetwork`` with acls.py's
table), without QEMU: each instance's tap is swapped for a veth of the same name whose
other end is the eth0 of a namespace standing in for the guest (vpcnet.Guest: a TCP
echo server on port 80), with the port's MAC and address, so the anti-spoofing table,
the security groups (one group open both ways) and the routing table are all in the path.

Two subnets: A (10.0.0.0/24: a1, a2) and B (10.0.1.0/24: b). Shown: a deny entry on B
stops A's traffic and removing it restores it; the ``*`` rule of a new ACL cuts a subnet
off from the other but not its own instances from each other; stateless: inbound tcp/80
alone loses the replies until an outbound rule lets the ephemeral ports out; a new
``VpcNetwork`` adopting the namespace (a restarted node) puts its ACLs in force."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from karri.node.acls import AclEntry, SubnetAcl
from karri.node.firewall import GroupRules, Rule
from karri.node.netns import Namespace
from karri.node.network import Port, VpcNetwork, tap_name

from .conftest import LoopThread, needs_root
from .vpcnet import Guest, sh

pytestmark = needs_root

PREFIX = f"karri-test-acl-{os.getpid()}"
A, B = "10.0.0.0/24", "10.0.1.0/24"
EVERYTHING = (Rule("-1", cidrs=("0.0.0.0/0",)),)
OPEN = GroupRules("sg-open", EVERYTHING, EVERYTHING)
ALLOW_ALL = (AclEntry(100, False, -1, True), AclEntry(100, True, -1, True))


def port(n: int, ip: str, subnet: str) -> Port:
    instance_id = f"i-0000000{n}"
    return Port(instance_id, tap_name(instance_id), f"0e:00:00:00:00:0{n}", ip, subnet,
                ("sg-open",))  # fmt: skip


PORTS = {
    "a1": port(1, "10.0.0.4", A),
    "a2": port(2, "10.0.0.5", A),
    "b": port(3, "10.0.1.4", B),
}


def as_guest(net: VpcNetwork, p: Port, name: str) -> Guest:
    """Replace the port's tap by a veth to a guest namespace with its MAC and address."""
    guest = Guest(Namespace(f"{PREFIX}-{name}"), p.tap, p.ip)
    sh("ip", "netns", "add", guest.ns.name)
    vpc_ns, bridge = net.ns.name, net.bridge_of(p)
    sh("ip", "-n", vpc_ns, "link", "delete", p.tap)
    sh("ip", "-n", vpc_ns, "link", "add", p.tap, "type", "veth", "peer", "name", "eth0",
       "netns", guest.ns.name)  # fmt: skip
    sh("ip", "-n", vpc_ns, "link", "set", p.tap, "master", bridge, "up")
    prefix = p.subnet.split("/")[1]
    gateway = p.subnet.rsplit(".", 1)[0] + ".1"
    for line in (
        "link set lo up",
        f"link set eth0 address {p.mac}",
        f"address add {p.ip}/{prefix} dev eth0",
        "link set eth0 up",
        f"route add default via {gateway}",
    ):
        sh("ip", "-n", guest.ns.name, *line.split())
    guest.serve()
    return guest


@contextlib.contextmanager
def guests_in(
    loop: LoopThread,
    base: Path,
    vpc_id: str,
    ports: dict[str, Port],
    prefix: str = "",
    public_interface: str | None = None,
) -> Iterator[tuple[VpcNetwork, dict[str, Guest]]]:
    """A real ``VpcNetwork`` open to everything (``OPEN``) with ``ports`` as guests
    (``as_guest``, named ``prefix`` + their key); all removed at the end."""
    net = VpcNetwork(base / "data", base / "state", vpc_id, public_interface)
    guests: dict[str, Guest] = {}
    try:
        loop.run(net.start([], [OPEN], {}, None, None), 60)
        for p in ports.values():
            loop.run(net.plug(p), 30)
        guests = {name: as_guest(net, p, prefix + name) for name, p in ports.items()}
        yield net, guests
    finally:
        for guest in guests.values():
            guest.close()
            subprocess.run(["ip", "netns", "delete", guest.ns.name], check=False)
        loop.run(net.close(delete_namespace=True), 60)


@pytest.fixture(scope="module")
def vpc(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    base = tmp_path_factory.mktemp("acl")
    with guests_in(loop, base, "vpc-0123456789abcdef1", PORTS) as (net, guests):
        yield net, guests, base


def acls(a: tuple[AclEntry, ...], b: tuple[AclEntry, ...]) -> list[SubnetAcl]:
    return [SubnetAcl(A, a), SubnetAcl(B, b)]


def reach(guests: dict[str, Guest]) -> dict[str, bool]:
    """Which of the paths a1->b, b->a1, a2->a1 a TCP exchange on port 80 gets through."""
    return {
        "a1->b": guests["a1"].reaches(PORTS["b"].ip),
        "b->a1": guests["b"].reaches(PORTS["a1"].ip),
        "a2->a1": guests["a2"].reaches(PORTS["a1"].ip),
    }


ALL_OPEN = {"a1->b": True, "b->a1": True, "a2->a1": True}


def test_a_deny_entry_stops_the_other_subnet_and_its_removal_restores_it(
    loop: LoopThread, vpc: tuple
) -> None:
    net, guests, _ = vpc
    assert reach(guests) == ALL_OPEN  # no ACL told: nothing filtered
    loop.run(net.set_acls(acls(ALLOW_ALL, ALLOW_ALL)))
    assert reach(guests) == ALL_OPEN  # the default ACL's entries
    deny_80 = AclEntry(50, False, 6, False, A, 80, 80)
    loop.run(net.set_acls(acls(ALLOW_ALL, (deny_80, *ALLOW_ALL))))
    assert reach(guests) == {"a1->b": False, "b->a1": True, "a2->a1": True}
    other_port = AclEntry(50, False, 6, False, A, 81, 90)  # replaced: another port range
    loop.run(net.set_acls(acls(ALLOW_ALL, (other_port, *ALLOW_ALL))))
    assert reach(guests) == ALL_OPEN
    loop.run(net.set_acls(acls(ALLOW_ALL, (deny_80, *ALLOW_ALL))))
    assert reach(guests) == {"a1->b": False, "b->a1": True, "a2->a1": True}
    loop.run(net.set_acls(acls(ALLOW_ALL, ALLOW_ALL)))  # the entry deleted
    assert reach(guests) == ALL_OPEN


def test_the_star_rule_cuts_a_subnet_off_but_not_within_itself(
    loop: LoopThread, vpc: tuple
) -> None:
    net, guests, _ = vpc
    loop.run(net.set_acls(acls((), ALLOW_ALL)))  # A moved to a new ACL: only ``*``
    assert reach(guests) == {"a1->b": False, "b->a1": False, "a2->a1": True}
    loop.run(net.set_acls(acls(ALLOW_ALL, ALLOW_ALL)))
    assert reach(guests) == ALL_OPEN


def test_stateless_inbound_alone_loses_the_replies(loop: LoopThread, vpc: tuple) -> None:
    net, guests, _ = vpc
    inbound_80 = AclEntry(100, False, 6, True, "0.0.0.0/0", 80, 80)
    loop.run(net.set_acls(acls(ALLOW_ALL, (inbound_80,))))
    assert reach(guests)["a1->b"] is False  # the SYN enters B, the SYN-ACK may not leave
    ephemeral = AclEntry(100, True, 6, True, "0.0.0.0/0", 1024, 65535)
    loop.run(net.set_acls(acls(ALLOW_ALL, (inbound_80, ephemeral))))
    assert reach(guests)["a1->b"] is True
    loop.run(net.set_acls(acls(ALLOW_ALL, ALLOW_ALL)))


def test_a_restarted_node_adopts_the_namespace_with_its_acls(loop: LoopThread, vpc: tuple) -> None:
    net, guests, base = vpc
    loop.run(net.set_acls(acls(ALLOW_ALL, ALLOW_ALL)))
    loop.run(net.dhcp.stop())  # the old node is gone; its kernel state stays
    adopted = VpcNetwork(base / "data", base / "state", "vpc-0123456789abcdef1")
    deny_a = (AclEntry(10, False, -1, False, A), *ALLOW_ALL)
    loop.run(adopted.start(list(PORTS.values()), [OPEN], {}, None, acls(ALLOW_ALL, deny_a)), 60)
    # stateless: B's inbound deny of A also drops A's replies to B's connections
    assert reach(guests) == {"a1->b": False, "b->a1": False, "a2->a1": True}
    loop.run(adopted.set_acls(acls(ALLOW_ALL, ALLOW_ALL)))
    assert reach(guests) == ALL_OPEN
    loop.run(adopted.dhcp.stop())


def test_nothing_is_left_in_the_host(vpc: tuple) -> None:
    listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert "karri_acl" not in listed  # the table lives in the VPC's namespace only
