"""Security groups in the kernel, without QEMU: each "guest" is a network namespace with
one end of a veth pair, the other end enslaved to the bridge of a VPC namespace, and TCP
servers on sockets opened inside it. Needs root; every namespace is removed at teardown."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from karri.node.firewall import Firewall, FirewallError, GroupRules, Member, Rule
from karri.node.netns import Namespace
from karri.node.network import NFT_RULES, Port
from karri.node.network import _elements as spoofing_pair
from karri.node.publicnat import LoopbackNat, transit_network

from .conftest import LoopThread
from .vpcnet import SUBNET, Guest, Vpc, answer, exchange, sh

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not Path("/proc/sys/net/bridge").exists(),
    reason="needs root, nft and br_netfilter (CONFIG_BRIDGE_NETFILTER)",
)

PREFIX = f"karri-test-fw-{os.getpid()}"
ALL_OUT = (Rule("-1", cidrs=("0.0.0.0/0",)),)


@pytest.fixture
def vpc() -> Iterator[Vpc]:
    network = Vpc(PREFIX)
    yield network
    network.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert PREFIX not in listed


@pytest.fixture
def firewall(vpc: Vpc) -> Firewall:
    return Firewall(vpc.ns, ("br0",))


def until(check: Callable[[], bool], limit: float = 2.0) -> None:
    """Try ``check`` back to back until it holds; AssertionError after ``limit`` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if check():
            return
    raise AssertionError(f"{check} did not hold within {limit} s")


def test_ingress_is_closed_by_default_opened_by_a_rule_and_closed_by_its_revoke(
    vpc: Vpc, firewall: Firewall, loop: LoopThread
) -> None:
    a, b = vpc.guest(11), vpc.guest(12)
    assert a.reaches(b.ip)  # no firewall yet: the bridge passes everything
    closed = GroupRules("sg-b", egress=ALL_OUT)
    loop.run(
        firewall.load(
            [GroupRules("sg-a", egress=ALL_OUT), closed],
            [Member(a.tap, a.ip, ("sg-a",)), Member(b.tap, b.ip, ("sg-b",))],
        )
    )
    assert not a.reaches(b.ip)
    assert not b.reaches(a.ip)

    opened = GroupRules(
        "sg-b", ingress=(Rule("tcp", 80, 80, cidrs=("0.0.0.0/0",)),), egress=ALL_OUT
    )
    start = time.monotonic()
    loop.run(firewall.set_group(opened))
    call = time.monotonic() - start
    until(lambda: a.reaches(b.ip, timeout=0.2))
    open_after = time.monotonic() - start
    print(f"\nauthorize: call {call * 1000:.1f} ms, open after {open_after * 1000:.1f} ms")
    assert open_after < 1.0
    assert not b.reaches(a.ip)  # A's own ingress is still closed

    kept = a.connect(b.ip)
    assert kept is not None
    start = time.monotonic()
    loop.run(firewall.set_group(closed))
    call = time.monotonic() - start
    assert not a.reaches(b.ip, timeout=0.5)
    print(f"revoke: call {call * 1000:.1f} ms, closed for the next connection at once")
    assert call < 1.0
    with kept:  # as on AWS, a connection tracked before the revoke goes on
        assert exchange(kept) == f"{b.ip} ping"


def test_replies_pass_and_removing_egress_stops_only_new_outbound_connections(
    vpc: Vpc, firewall: Firewall, loop: LoopThread
) -> None:
    a, b = vpc.guest(11), vpc.guest(12)
    web_in = (Rule("tcp", 80, 80, cidrs=(f"{SUBNET}.0/20",)),)
    loop.run(
        firewall.load(
            [
                GroupRules("sg-a", ingress=web_in, egress=ALL_OUT),
                GroupRules("sg-b", web_in, ALL_OUT),
            ],
            [Member(a.tap, a.ip, ("sg-a",)), Member(b.tap, b.ip, ("sg-b",))],
        )
    )
    # A's ingress allows only port 80: B's replies (to A's ephemeral port) pass by state
    assert a.reaches(b.ip) and b.reaches(a.ip)

    loop.run(firewall.set_group(GroupRules("sg-a", ingress=web_in)))
    assert not a.reaches(b.ip)
    assert b.reaches(a.ip)  # A's replies to allowed inbound still flow

    loop.run(firewall.set_group(GroupRules("sg-a", ingress=web_in, egress=ALL_OUT)))
    assert a.reaches(b.ip)


def test_a_group_as_source_admits_its_members_as_they_come_and_go(
    vpc: Vpc, firewall: Firewall, loop: LoopThread
) -> None:
    a, b, c = vpc.guest(11), vpc.guest(12), vpc.guest(13)
    from_a = GroupRules("sg-b", ingress=(Rule("tcp", 80, 80, groups=("sg-a",)),), egress=ALL_OUT)
    loop.run(
        firewall.load(
            [GroupRules("sg-a", egress=ALL_OUT), from_a, GroupRules("sg-c", egress=ALL_OUT)],
            [
                Member(a.tap, a.ip, ("sg-a",)),
                Member(b.tap, b.ip, ("sg-b",)),
                Member(c.tap, c.ip, ("sg-c",)),
            ],
        )
    )
    assert a.reaches(b.ip)
    assert not c.reaches(b.ip)

    loop.run(firewall.set_member(Member(c.tap, c.ip, ("sg-c", "sg-a"))))
    assert c.reaches(b.ip)
    loop.run(firewall.set_member(Member(c.tap, c.ip, ("sg-c",))))
    assert not c.reaches(b.ip)

    with pytest.raises(FirewallError, match="sg-b"):
        loop.run(firewall.remove_group("sg-a"))  # sg-b's rule names it


def test_members_of_the_default_group_talk_to_each_other(
    vpc: Vpc, firewall: Firewall, loop: LoopThread
) -> None:
    a, b, c = vpc.guest(11), vpc.guest(12), vpc.guest(13)
    default = GroupRules(
        "sg-default", ingress=(Rule("-1", groups=("sg-default",)),), egress=ALL_OUT
    )
    loop.run(
        firewall.load(
            [default, GroupRules("sg-other", egress=ALL_OUT)],
            [Member(a.tap, a.ip, ("sg-default",)), Member(b.tap, b.ip, ("sg-default",))],
        )
    )
    assert a.reaches(b.ip) and b.reaches(a.ip)
    assert not c.reaches(a.ip)  # a tap that is no member is cut off

    loop.run(firewall.set_member(Member(c.tap, c.ip, ("sg-other",))))
    assert not c.reaches(a.ip) and not a.reaches(c.ip)

    loop.run(firewall.remove_member(b.tap))
    assert not a.reaches(b.ip)
    loop.run(firewall.set_member(Member(b.tap, b.ip, ("sg-default",))))
    assert a.reaches(b.ip)


def test_icmp_type_and_code_as_aws_gives_them(
    vpc: Vpc, firewall: Firewall, loop: LoopThread
) -> None:
    a, b = vpc.guest(11), vpc.guest(12)
    echo_only = (Rule("icmp", 8, -1, cidrs=("0.0.0.0/0",)),)
    loop.run(
        firewall.load(
            [GroupRules("sg-a", egress=ALL_OUT), GroupRules("sg-b", echo_only, ALL_OUT)],
            [Member(a.tap, a.ip, ("sg-a",)), Member(b.tap, b.ip, ("sg-b",))],
        )
    )
    assert ping(a, b.ip)
    assert not a.reaches(b.ip)
    loop.run(
        firewall.set_group(
            GroupRules("sg-b", (Rule("icmp", 0, -1, cidrs=("0.0.0.0/0",)),), ALL_OUT)
        )
    )
    assert not ping(a, b.ip)  # an echo reply rule does not admit echo requests


_ICMP_IDS = itertools.count(os.getpid() & 0x7FFF)


def ping(guest: Guest, ip: str, timeout: float = 0.5) -> bool:
    """One ICMP echo from inside ``guest``; True when the reply came."""
    sock = guest.ns.call(
        lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    )
    with sock:
        sock.settimeout(timeout)
        ident = next(_ICMP_IDS)  # a new id: conntrack counts a repeated one as established
        header = bytes([8, 0, 0, 0]) + ident.to_bytes(2, "big") + (1).to_bytes(2, "big")
        sock.sendto(header[:2] + _checksum(header).to_bytes(2, "big") + header[4:], (ip, 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                packet, (source, _) = sock.recvfrom(1024)
            except OSError:
                return False
            icmp = packet[(packet[0] & 0x0F) * 4 :]
            if source == ip and icmp[0] == 0 and icmp[4:6] == ident.to_bytes(2, "big"):
                return True
        return False


@pytest.fixture
def nat(vpc: Vpc, loop: LoopThread) -> Iterator[LoopbackNat]:
    public = LoopbackNat(vpc.ns, f"kfw{os.getpid() % 10**8}", transit_network(PREFIX))
    loop.run(public.start({}))
    yield public
    loop.run(public.close())
    local = subprocess.run(
        ["ip", "route", "show", "table", "local"], capture_output=True, text=True
    )
    assert public.host_if not in local.stdout


def claim(nat: LoopbackNat, loop: LoopThread, private_ip: str) -> str:
    """A free address of the loopback pool, mapped to ``private_ip``."""
    for n in range(256):
        address = f"127.64.{(os.getpid() + n) % 250 + 2}.{(os.getpid() // 250 + n) % 250 + 2}"
        if loop.run(nat.associate(address, private_ip)):
            return address
    raise AssertionError("no free address in 127.64.0.0/16")


def test_a_loopback_public_address_is_a_1_to_1_nat_filtered_by_the_groups(
    vpc: Vpc, firewall: Firewall, nat: LoopbackNat, loop: LoopThread
) -> None:
    b, c = vpc.guest(12), vpc.guest(13)
    b.serve(8080)
    loop.run(
        firewall.load(
            [GroupRules("sg-b", egress=ALL_OUT)],
            [Member(b.tap, b.ip, ("sg-b",)), Member(c.tap, c.ip, ("sg-b",))],
        )
    )
    public = claim(nat, loop, b.ip)
    assert answer(public) is None  # the group admits nothing yet

    web = (Rule("tcp", 80, 80, cidrs=("0.0.0.0/0",)), Rule("tcp", 8080, 8080, cidrs=("0.0.0.0/0",)))
    start = time.monotonic()
    loop.run(firewall.set_group(GroupRules("sg-b", web, ALL_OUT)))
    until(lambda: answer(public, timeout=0.2) is not None)
    print(f"\nthrough the public address after {(time.monotonic() - start) * 1000:.1f} ms")
    assert answer(public) == f"{b.ip} ping"
    assert answer(public, 8080) == f"{b.ip} ping"  # every port of the address, not only 22
    with socket.socket() as sock:
        sock.settimeout(0.5)
        assert sock.connect_ex((public, 81)) != 0  # refused by the guest: nothing listens

    assert loop.run(nat.associate(public, c.ip))  # moved, as AssociateAddress does
    assert answer(public) == f"{c.ip} ping"
    assert not another_cloud_claims(public, loop)

    loop.run(nat.disassociate(public))
    assert answer(public, timeout=0.2) is None
    assert another_cloud_claims(public, loop)


def test_a_restarted_node_adopts_the_nat_without_a_gap(
    vpc: Vpc, firewall: Firewall, nat: LoopbackNat, loop: LoopThread
) -> None:
    b = vpc.guest(12)
    open_80 = GroupRules("sg-b", (Rule("tcp", 80, 80, cidrs=("0.0.0.0/0",)),), ALL_OUT)
    loop.run(firewall.load([open_80], [Member(b.tap, b.ip, ("sg-b",))]))
    public = claim(nat, loop, b.ip)
    kept = socket.create_connection((public, 80), timeout=1)

    again = LoopbackNat(vpc.ns, nat.host_if, transit_network(PREFIX))  # the next node
    assert loop.run(again.start({public: b.ip})) == []
    assert answer(public) == f"{b.ip} ping"
    with kept:  # NAT and conntrack entries survived the reload
        assert exchange(kept) == f"{b.ip} ping"

    assert loop.run(again.start({})) == []  # the address is no longer wanted: given back
    assert answer(public, timeout=0.2) is None
    assert another_cloud_claims(public, loop)


def another_cloud_claims(public: str, loop: LoopThread) -> bool:
    """Whether a second cloud's NAT could take ``public`` (only while we do not hold it)."""
    ns = Namespace(f"{PREFIX}-other")
    sh("ip", "netns", "add", ns.name)
    other = LoopbackNat(ns, f"kfx{os.getpid() % 10**8}", transit_network("another cloud"))
    try:
        loop.run(other.start({}))
        return loop.run(other.associate(public, "172.31.0.12"))
    finally:
        loop.run(other.close())
        sh("ip", "netns", "delete", ns.name)


def _checksum(data: bytes) -> int:
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_udp_answers_pass_by_state(vpc: Vpc, firewall: Firewall, loop: LoopThread) -> None:
    a, b = vpc.guest(11), vpc.guest(12)
    b.serve_udp(53)
    dns = GroupRules("sg-b", (Rule("udp", 53, 53, groups=("sg-a",)),), ALL_OUT)
    loop.run(
        firewall.load(
            [GroupRules("sg-a", egress=ALL_OUT), dns],
            [Member(a.tap, a.ip, ("sg-a",)), Member(b.tap, b.ip, ("sg-b",))],
        )
    )
    assert a.ask_udp(b.ip, 53) == f"{b.ip} ping"  # A's ingress is closed: the answer is a reply
    a.serve_udp(53)
    assert b.ask_udp(a.ip, 53) is None


def spoofing_elements(port: Port) -> str:
    """The anti-spoofing table's entries for ``port``, as network.py adds them."""
    full, mac = spoofing_pair(port)
    return f"add element bridge karri ips {{ {full} }}\nadd element bridge karri macs {{ {mac} }}\n"


def test_the_groups_work_beside_the_anti_spoofing_table(
    vpc: Vpc, firewall: Firewall, loop: LoopThread
) -> None:
    a, b, c = vpc.guest(11), vpc.guest(12), vpc.guest(13)
    b.serve_udp(53)
    default = GroupRules("sg-default", (Rule("-1", groups=("sg-default",)),), ALL_OUT)
    members = [Member(g.tap, g.ip, ("sg-default",)) for g in (a, b, c)]
    loop.run(firewall.load([default], members))
    assert a.reaches(b.ip)
    sh("ip", "-n", a.ns.name, "address", "add", f"{c.ip}/32", "dev", "eth0")

    def sent_as_c() -> bool:
        """Whether B hears a datagram that A sends with C's address."""
        sock = a.ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        with sock:
            sock.bind((c.ip, 0))
            sock.sendto(b"spoofed", (b.ip, 53))
        time.sleep(0.3)
        return c.ip in b.heard

    assert sent_as_c()  # C's group is admitted: the groups alone do not stop it
    b.heard.clear()
    ports = [Port(f"i-{g.tap}", g.tap, g.mac, g.ip) for g in (a, b, c)]
    loop.run(vpc.ns.nft(NFT_RULES + "".join(spoofing_elements(p) for p in ports)))
    assert not sent_as_c()  # dropped at A's tap
    assert a.reaches(b.ip) and b.reaches(a.ip) and c.reaches(b.ip)


def test_the_rules_stay_in_force_with_no_karri_process(vpc: Vpc) -> None:
    a, b = vpc.guest(11), vpc.guest(12)
    script = f"""
import asyncio
from karri.node.firewall import Firewall, GroupRules, Member, Rule
from karri.node.netns import Namespace
everything = (Rule("-1", cidrs=("0.0.0.0/0",)),)
asyncio.run(Firewall(Namespace({vpc.ns.name!r}), ("br0",)).load(
    [GroupRules("sg-a", egress=everything), GroupRules("sg-b", egress=everything)],
    [Member({a.tap!r}, {a.ip!r}, ("sg-a",)), Member({b.tap!r}, {b.ip!r}, ("sg-b",))],
))
"""
    subprocess.run([sys.executable, "-c", script], check=True)  # loads, exits
    assert not a.reaches(b.ip)


def test_a_reload_replaces_the_table_without_cutting_connections(
    vpc: Vpc, firewall: Firewall, loop: LoopThread
) -> None:
    a, b = vpc.guest(11), vpc.guest(12)
    web = GroupRules("sg-b", (Rule("tcp", 80, 80, cidrs=("0.0.0.0/0",)),), ALL_OUT)
    members = [Member(a.tap, a.ip, ("sg-a",)), Member(b.tap, b.ip, ("sg-b",))]
    loop.run(firewall.load([GroupRules("sg-a", egress=ALL_OUT), web], members))
    kept = a.connect(b.ip)
    assert kept is not None
    adopter = Firewall(vpc.ns, ("br0",))  # the next node, over the table the last one left
    loop.run(adopter.load([GroupRules("sg-a", egress=ALL_OUT), web], members))
    with kept:
        assert exchange(kept) == f"{b.ip} ping"
    assert a.reaches(b.ip) and not b.reaches(a.ip)
