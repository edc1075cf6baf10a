"""A VPC's subnets across hosts (node/overlay.py), without QEMU: three "hosts" are network
namespaces joined by a test bridge (192.0.2.0/24, TEST-NET-1), each holding VPC
namespaces (tests/node/vpcnet.py's stand-ins: a bridge and guests on veths) whose
subnets are joined by VXLAN devices made from the host's namespace. Needs root; every
namespace is removed at teardown."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from karri.node.firewall import Firewall, GroupRules, Member, Rule
from karri.node.netns import Namespace
from karri.node.network import Port, VpcNetwork, _remote_members, bridge_name
from karri.node.overlay import (
    Overlay,
    RemotePort,
    SubnetLink,
    apply,
    underlay_mtu,
    vxlan_name,
)
from tests.hosts import Host, Hosts

from .conftest import LoopThread
from .vpcnet import SUBNET, Guest, Vpc, sh

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not Path("/proc/sys/net/bridge").exists(),
    reason="needs root, nft and br_netfilter",
)

PREFIX = f"karri-test-vx-{os.getpid()}"
CIDR = IPv4Network(f"{SUBNET}.0/20")
GATEWAY_MAC = "02:00:5e:10:00:01"  # the same on every host, as network.py makes it
COUNTER = """table inet vxcount {
  chain pre {
    type filter hook prerouting priority -500; policy accept;
    udp dport 4789 counter
  }
}
"""


def vxlan_packets(host: Host) -> int:
    """The VXLAN datagrams addressed to ``host`` so far."""
    out = subprocess.run(
        ["ip", "netns", "exec", host.ns.name, "nft", "list", "table", "inet", "vxcount"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(out.split("counter packets ")[1].split()[0])


class Fabric(Hosts):
    """The hosts' own network (tests/hosts.py), each host counting VXLAN datagrams, and
    the VPC namespaces of the test."""

    def __init__(self) -> None:
        super().__init__(PREFIX, "192.0.2")  # TEST-NET-1, in the namespaces only
        self.vpcs: list[Vpc] = []

    def host(self, n: int) -> Host:
        host = super().host(n)
        sh("ip", "netns", "exec", host.ns.name, "nft", "-f", "-", stdin=COUNTER)
        return host

    def vpc(self, name: str) -> Vpc:
        vpc = Vpc(f"{PREFIX}-{name}")
        sh("ip", "-n", vpc.ns.name, "link", "set", "br0", "address", GATEWAY_MAC)
        self.vpcs.append(vpc)
        return vpc

    def close(self) -> None:
        for vpc in self.vpcs:
            vpc.close()
        super().close()


def remote(guest: Guest, host: Host, groups: tuple[str, ...] = ()) -> RemotePort:
    return RemotePort(guest.tap, guest.mac, guest.ip, str(CIDR), host.address, groups)


def join(loop: LoopThread, vpc: Vpc, host: Host, vni: int, others: list[RemotePort]) -> Overlay:
    overlay = Overlay(host.address, (SubnetLink(str(CIDR), vni),), tuple(others))
    loop.run(apply(vpc.ns, {CIDR: "br0"}, overlay, underlay=host.ns))
    return overlay


@pytest.fixture
def fabric() -> Iterator[Fabric]:
    net = Fabric()
    yield net
    net.close()
    assert not net.left()


def test_guests_of_one_subnet_on_three_hosts_reach_each_other_and_nothing_floods(
    fabric: Fabric, loop: LoopThread
) -> None:
    h1, h2, h3 = fabric.host(1), fabric.host(2), fabric.host(3)
    a1, a2, a3 = fabric.vpc("a1"), fabric.vpc("a2"), fabric.vpc("a3")
    g11, g12, g13 = a1.guest(11), a2.guest(12), a3.guest(13)
    assert not g11.reaches(g12.ip)  # not joined yet
    ports = {h1: remote(g11, h1), h2: remote(g12, h2), h3: remote(g13, h3)}
    for vpc, host in ((a1, h1), (a2, h2), (a3, h3)):
        join(loop, vpc, host, 100, [p for h, p in ports.items() if h is not host])
    assert g11.reaches(g12.ip) and g12.reaches(g11.ip)
    assert g13.reaches(g11.ip) and g12.reaches(g13.ip)
    assert vxlan_packets(h2) > 0  # (the counters count)
    # a stream of full-size segments crosses (the guests' MTU is 1500, the device's path
    # 1450: it answers "fragmentation needed" to the guest, which sends smaller ones)
    sock = g11.connect(g12.ip)
    assert sock is not None
    with sock:
        sock.settimeout(10)
        sock.sendall(b"x" * 8000)
        got = b""
        while got.replace(g12.ip.encode() + b" ", b"") != b"x" * 8000:
            data = sock.recv(65536)
            assert data, got
            got += data

    # unicast between h1 and h2 never reaches h3, and ARP never crosses: the device
    # answers it from its neighbour entries, and a broadcast has nowhere to go
    before = vxlan_packets(h3)
    sh("ip", "-n", g11.ns.name, "neigh", "flush", "all")
    sh("ip", "-n", g12.ns.name, "neigh", "flush", "all")
    assert g11.reaches(g12.ip) and g12.reaches(g11.ip)
    assert vxlan_packets(h3) == before
    seen = (vxlan_packets(h2), vxlan_packets(h3))
    assert not g11.reaches(f"{SUBNET}.99")  # no one: its ARP goes nowhere
    assert g11.ask_udp(f"{SUBNET}.1", 9) is None  # the gateway: answered by h1's bridge
    assert (vxlan_packets(h2), vxlan_packets(h3)) == seen
    neigh = subprocess.run(
        ["ip", "-n", g11.ns.name, "neigh", "show", f"{SUBNET}.1"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert GATEWAY_MAC in neigh

    # a port that leaves h3 is unreachable from the others once they are told
    join(loop, a1, h1, 100, [ports[h2]])
    join(loop, a2, h2, 100, [ports[h1]])
    assert not g11.reaches(g13.ip)
    assert g11.reaches(g12.ip)
    device = vxlan_name(100)
    fdb = subprocess.run(
        ["bridge", "-n", a1.ns.name, "fdb", "show", "dev", device],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert g13.mac not in fdb and g12.mac in fdb


def test_two_vpcs_with_the_same_addresses_stay_apart(fabric: Fabric, loop: LoopThread) -> None:
    h1, h2 = fabric.host(1), fabric.host(2)
    a1, a2, b1, b2 = (fabric.vpc(n) for n in ("a1", "a2", "b1", "b2"))
    g11, g12 = a1.guest(11), a2.guest(12)
    other11, other12 = b1.guest(11), b2.guest(12)  # the very same addresses, in VPC B
    other12.serve(81)  # only B's .12 answers on port 81
    join(loop, a1, h1, 100, [remote(g12, h2)])
    join(loop, a2, h2, 100, [remote(g11, h1)])
    join(loop, b1, h1, 200, [remote(other12, h2)])
    join(loop, b2, h2, 200, [remote(other11, h1)])
    assert g11.reaches(g12.ip) and other11.reaches(other12.ip)
    assert other11.reaches(other12.ip, 81)
    assert not g11.reaches(g12.ip, 81)  # A's .12 is not B's


def test_group_address_sets_hold_remote_members(fabric: Fabric, loop: LoopThread) -> None:
    h1, h2 = fabric.host(1), fabric.host(2)
    a1, a2 = fabric.vpc("a1"), fabric.vpc("a2")
    g11, g14 = a1.guest(11), a1.guest(14)
    g12 = a2.guest(12)
    join(loop, a1, h1, 100, [remote(g12, h2)])
    join(loop, a2, h2, 100, [remote(g11, h1), remote(g14, h1)])
    assert g11.reaches(g12.ip) and g14.reaches(g12.ip)
    # on h2: the web group lets in its own members only; g11 is one, g14 is not
    out = (Rule("-1", cidrs=("0.0.0.0/0",)),)
    web = GroupRules("sg-web", ingress=(Rule("tcp", 80, 80, groups=("sg-web",)),), egress=out)
    other = GroupRules("sg-other", egress=out)
    known = {"sg-web", "sg-other"}
    members = [
        *_remote_members(remote(g11, h1, ("sg-web",)), known),
        *_remote_members(remote(g14, h1, ("sg-other",)), known),
    ]
    firewall = Firewall(a2.ns, ("br0",))
    loop.run(firewall.load([web, other], [Member(g12.tap, g12.ip, ("sg-web",)), *members]))
    assert g11.reaches(g12.ip)
    assert not g14.reaches(g12.ip)
    assert g12.reaches(g11.ip)  # its egress is open; g11's host enforces g11's groups


def test_a_vpc_network_joins_its_subnets_and_holds_remote_members(
    fabric: Fabric, loop: LoopThread, tmp_path: Path
) -> None:
    """network.py's VpcNetwork: the device on the bridge of a subnet once it has a port,
    the remote port's entries and its membership; gone when the cloud says it is gone. The
    gateway's MAC is the same on two nodes (two data dirs)."""
    h1 = fabric.host(1)
    vpc_id, subnet = "vpc-0123456789abcdef0", "10.0.0.0/24"
    nets = [VpcNetwork(tmp_path / f"d{n}", tmp_path / f"s{n}", vpc_id) for n in (1, 2)]
    net = nets[0]
    net.underlay = h1.ns
    group = GroupRules("sg-1", ingress=(Rule("tcp", 80, 80, groups=("sg-1",)),))
    far = RemotePort("kt0000beef", "0e:00:00:00:be:ef", "10.0.0.9", subnet, "192.0.2.2",
                     ("sg-1",), ("10.0.0.10",))  # fmt: skip
    elsewhere = RemotePort("kt0000cafe", "0e:00:00:00:ca:fe", "10.0.1.9", "10.0.1.0/24",
                           "192.0.2.2")  # fmt: skip
    links = (SubnetLink(subnet, 300), SubnetLink("10.0.1.0/24", 301))
    net.overlay = Overlay(h1.address, links, (far, elsewhere))  # as Node._open_vpc does
    device = vxlan_name(300)

    def show(*cmd: str) -> str:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    try:
        for n, each in enumerate(nets, 1):
            loop.run(each.start([], [group], {}), 60)
            mine = Port(f"i-0000000{n}", f"kt0000000{n}", f"0e:00:00:00:00:0{n}", "10.0.0.4",
                        subnet, ("sg-1",))  # fmt: skip
            loop.run(each.plug(mine), 30)
        bridge = bridge_name(IPv4Network(subnet))
        macs = [show("ip", "-n", n.ns.name, "-j", "link", "show", bridge) for n in nets]
        assert json.loads(macs[0])[0]["address"] == json.loads(macs[1])[0]["address"]
        assert f"master {bridge}" in show("ip", "-n", net.ns.name, "link", "show", device)
        assert "dst 192.0.2.2" in show("bridge", "-n", net.ns.name, "fdb", "show", "dev", device)
        neigh = show("ip", "-n", net.ns.name, "neigh", "show", "dev", device)
        assert "10.0.0.9 " in neigh and "10.0.0.10 " in neigh
        ruleset = show("ip", "netns", "exec", net.ns.name, "nft", "list", "table", "inet",
                       "karri_sg")  # fmt: skip
        assert "10.0.0.9" in ruleset and "10.0.0.10" in ruleset
        assert device not in show("ip", "-n", nets[1].ns.name, "link")  # told nothing
        # a subnet with ports on other nodes only: its bridge and gateway here, for routing
        other = bridge_name(IPv4Network("10.0.1.0/24"))
        assert "10.0.1.1/24" in show("ip", "-n", net.ns.name, "address", "show", other)
        assert f"master {other}" in show("ip", "-n", net.ns.name, "link", "show", vxlan_name(301))

        loop.run(net.set_overlay(Overlay(h1.address, links, ())), 30)  # it went
        assert far.mac not in show("bridge", "-n", net.ns.name, "fdb", "show", "dev", device)
        assert "10.0.0.9" not in show("ip", "-n", net.ns.name, "neigh", "show", "dev", device)
        ruleset = show("ip", "netns", "exec", net.ns.name, "nft", "list", "table", "inet",
                       "karri_sg")  # fmt: skip
        assert "10.0.0.9" not in ruleset
    finally:
        for each in nets:
            loop.run(each.close(delete_namespace=True), 60)


def test_guests_of_two_subnets_on_two_hosts_are_routed_by_their_own_gateway(
    fabric: Fabric, loop: LoopThread
) -> None:
    """g11 (172.31.0.0/20, on h1) and g17 (172.31.16.0/20, on h2): each host has both
    subnets' bridges and gateways; a packet is routed on the sending host, then bridged
    over the destination subnet's VXLAN."""
    h1, h2 = fabric.host(1), fabric.host(2)
    a1, a2 = fabric.vpc("a1"), fabric.vpc("a2")
    second = IPv4Network("172.31.16.0/20")
    for vpc in (a1, a2):
        vpc.bridge("br1", "172.31.16")
        sh("ip", "-n", vpc.ns.name, "link", "set", "br1", "address", "02:00:5e:10:00:02")
        sh("ip", "netns", "exec", vpc.ns.name, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    g11, g17 = a1.guest(11), a2.guest(17, "br1", "172.31.16")
    links = (SubnetLink(str(CIDR), 100), SubnetLink(str(second), 101))
    far17 = RemotePort(g17.tap, g17.mac, g17.ip, str(second), h2.address)
    bridges = {CIDR: "br0", second: "br1"}
    loop.run(apply(a1.ns, bridges, Overlay(h1.address, links, (far17,)), underlay=h1.ns))
    loop.run(apply(a2.ns, bridges, Overlay(h2.address, links, (remote(g11, h1),)), h2.ns))
    assert g11.reaches(g17.ip) and g17.reaches(g11.ip)


def test_two_nodes_sharing_one_host_namespace_use_a_port_each(
    fabric: Fabric, loop: LoopThread
) -> None:
    """One VNI has one device per UDP port in a namespace: two nodes on one host (two
    loopback addresses) each listen on a port of their own, and reach each other."""
    h1 = fabric.host(1)
    sh("ip", "-n", h1.ns.name, "address", "add", "192.0.2.101/24", "dev", "eth0")
    a1, a2 = fabric.vpc("a1"), fabric.vpc("a2")
    g11, g12 = a1.guest(11), a2.guest(12)
    links = (SubnetLink(str(CIDR), 100),)
    far12 = RemotePort(g12.tap, g12.mac, g12.ip, str(CIDR), "192.0.2.101", port=4800)
    far11 = RemotePort(g11.tap, g11.mac, g11.ip, str(CIDR), h1.address, port=4799)
    loop.run(apply(a1.ns, {CIDR: "br0"}, Overlay(h1.address, links, (far12,), 4799), h1.ns))
    loop.run(apply(a2.ns, {CIDR: "br0"}, Overlay("192.0.2.101", links, (far11,), 4800), h1.ns))
    assert g11.reaches(g12.ip) and g12.reaches(g11.ip)


def test_a_vpc_joined_over_a_1500_byte_network_tells_its_guests_1450(
    fabric: Fabric, loop: LoopThread, tmp_path: Path
) -> None:
    """VXLAN takes 50 bytes of the underlay's 1500 (h1's veth): the VPC's devices and taps
    get 1450, its bridges follow, and dnsmasq answers DHCP option 26 = 1450 to a client
    that asks for it (busybox udhcpc ``-O mtu``, as the tiny guest runs it, on a veth
    standing in for the port's tap)."""
    h1 = fabric.host(1)
    vpc_id, subnet = "vpc-0123456789abcdef1", "10.0.0.0/24"
    net = VpcNetwork(tmp_path / "d", tmp_path / "s", vpc_id)
    net.underlay = h1.ns
    net.overlay = Overlay(h1.address, (SubnetLink(subnet, 400),), ())
    port = Port("i-00000001", "kt00000001", "0e:00:00:00:00:01", "10.0.0.4", subnet)
    client = Namespace(f"{PREFIX}-dhcp")
    script = tmp_path / "udhcpc.script"
    script.write_text(f'#!/bin/sh\necho "$1 ip=$ip mtu=$mtu" >> {tmp_path}/heard\n')
    script.chmod(0o755)

    def mtu_of(ns: Namespace, device: str) -> int:
        out = subprocess.run(["ip", "-n", ns.name, "-j", "link", "show", device],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        return int(json.loads(out)[0]["mtu"])

    try:
        loop.run(net.start([], [], {}), 60)
        loop.run(net.plug(port), 30)
        bridge = bridge_name(IPv4Network(subnet))
        assert net.mtu == 1450
        assert loop.run(underlay_mtu("127.0.0.2", h1.ns)) == 65536  # lo's 127.0.0.1/8
        for device in (vxlan_name(400), port.tap, bridge):
            assert mtu_of(net.ns, device) == 1450, device
        # the guest: a veth in place of the tap (same name and MAC: the port's filter)
        sh("ip", "netns", "add", client.name)
        sh("ip", "-n", net.ns.name, "link", "delete", port.tap)
        sh("ip", "link", "add", port.tap, "netns", net.ns.name, "type", "veth",
           "peer", "name", "eth0", "netns", client.name)  # fmt: skip
        sh("ip", "-n", net.ns.name, "link", "set", port.tap, "master", bridge, "up")
        sh("ip", "-n", client.name, "link", "set", "eth0", "address", port.mac, "up")
        sh("ip", "netns", "exec", client.name, "busybox", "udhcpc", "-i", "eth0", "-f", "-q",
           "-n", "-t", "10", "-T", "1", "-O", "mtu", "-s", str(script))  # fmt: skip
        assert "bound ip=10.0.0.4 mtu=1450" in (tmp_path / "heard").read_text()
    finally:
        subprocess.run(["ip", "netns", "delete", client.name], check=False)
        loop.run(net.close(delete_namespace=True), 60)
