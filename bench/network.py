"""Network plumbing benchmark (issue 15), without QEMU: namespaces stand in for guests.

Each "guest" is a network namespace with one end of a veth pair on the bridge of a VPC
namespace (tests/node/vpcnet.py), so these figures are the kernel's plumbing alone, not
a TCG guest's virtio path (which is far slower and would hide it).

1. Rule in force: 100 changes on a running "instance", alternately authorizing and
   revoking tcp/80 from 0.0.0.0/0; for an authorize, the time from the call to the first
   connection that gets through (probed back to back from the other guest); for a revoke,
   the call's own time (the transaction is in force when it returns) and a check that the
   next connection fails.
2. TCP throughput of one stream (Python sockets, 256 KiB writes, 3 s; the median of 3
   rounds, the kinds interleaved since the shared machine's load drifts): guest -> guest
   on the raw bridge (br_netfilter off: bridged frames skip the inet hooks); guest -> guest
   through the security groups (br_netfilter, conntrack, the firewall's chains); host ->
   guest through a loopback public address (1:1 NAT) and the groups; guest -> "the
   outside" (a namespace behind a veth whose host end is the public interface,
   tests/node/vpcnet.py's Outside) through a NAT gateway (natgateways.py: the groups,
   SNAT to the gateway's elastic IP, out by the uplink's macvlan); guest -> guest of
   another subnet (routed by the namespace between two bridges, the groups); the same
   through a route to an interface (subnetroutes.py: the first subnet's table sends the
   second one's prefix via a third guest in a third subnet, a namespace forwarding like a
   NAT instance, so the packets cross the namespace twice; the replies come straight
   back). One Python
   stream is CPU-bound on a 2-core machine: the ratios say more than the MiB/s.

    .venv/bin/python bench/network.py [--changes 100] [--seconds 3] [--rounds 3] [--json]  (root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from ipaddress import IPv4Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from karri.node.firewall import Firewall, GroupRules, Member, Rule
from karri.node.natgateways import NatGateway
from karri.node.publicnat import LoopbackNat, transit_network
from karri.node.subnetroutes import InterfaceRoute, SubnetRoutes, VpcRoutes
from karri.node.subnetroutes import apply as apply_routes
from tests.node.vpcnet import OUTSIDE, SUBNET, Guest, Outside, Vpc, sh

SINK_PORT = 5001
CHUNK = 256 * 1024
ALL_OUT = (Rule("-1", cidrs=("0.0.0.0/0",)),)
OPEN = (
    Rule("tcp", 80, 80, cidrs=("0.0.0.0/0",)),
    Rule("tcp", SINK_PORT, SINK_PORT, cidrs=("0.0.0.0/0",)),
)


STREAMS = (
    ("raw_bridge_mib_s", "guest -> guest, raw bridge"),
    ("groups_mib_s", "guest -> guest, security groups"),
    ("host_nat_groups_mib_s", "host -> public IP -> guest (NAT, groups)"),
    ("nat_gateway_mib_s", "guest -> NAT gateway -> outside (SNAT)"),
    ("cross_subnet_mib_s", "guest -> guest of another subnet (routed)"),
    ("interface_route_mib_s", "guest -> instance route -> other subnet"),
)
SECOND = "172.31.16"  # the second subnet's /20, on br1
THIRD = "172.31.32"  # the forwarding guest's (in a subnet of its own: from the first one's,
# its forwarded packets would be routed back to it by that subnet's table, as on AWS)
ELASTIC = "198.51.100.150"  # the NAT gateway's address on the outside's network


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rule_in_force(firewall: Firewall, a: Guest, b: Guest, changes: int) -> dict[str, float]:
    closed = GroupRules("sg-b", egress=ALL_OUT)
    opened = GroupRules("sg-b", ingress=OPEN, egress=ALL_OUT)
    authorize: list[float] = []
    revoke: list[float] = []
    for n in range(changes):
        start = time.perf_counter()
        if n % 2 == 0:
            asyncio.run(firewall.set_group(opened))
            while not a.reaches(b.ip, timeout=0.05):
                if time.perf_counter() - start > 5:
                    raise RuntimeError("an authorized rule did not take effect within 5 s")
            authorize.append(time.perf_counter() - start)
        else:
            asyncio.run(firewall.set_group(closed))
            revoke.append(time.perf_counter() - start)
            if a.reaches(b.ip, timeout=0.05):
                raise RuntimeError("a revoked rule still let a new connection through")
    figures = {}
    for name, values in (("authorize", authorize), ("revoke", revoke)):
        figures[f"{name}_p50_ms"] = statistics.median(values) * 1000
        figures[f"{name}_p99_ms"] = percentile(values, 0.99) * 1000
    return figures


def sink(guest: Guest | Outside) -> tuple[socket.socket, list[int]]:
    """A server in ``guest`` that counts what it reads (the last count per connection)."""
    server = guest.ns.call(socket.socket)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", SINK_PORT))
    server.listen(4)
    counts: list[int] = []

    def serve() -> None:
        buffer = bytearray(CHUNK)
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            total = 0
            with conn:
                while n := conn.recv_into(buffer):
                    total += n
            counts.append(total)

    threading.Thread(target=serve, daemon=True).start()
    return server, counts


def stream(make_socket, ip: str, seconds: float, counts: list[int]) -> float:
    """MiB/s of one TCP stream to ``ip``, as counted by the sink."""
    sock = make_socket()
    sock.connect((ip, SINK_PORT))
    payload = memoryview(os.urandom(CHUNK))
    done = len(counts)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        sock.sendall(payload)
    sock.close()
    while len(counts) == done:
        time.sleep(0.01)
    return counts[-1] / (time.perf_counter() - start) / 2**20


def bridge_netfilter(vpc: Vpc, on: bool) -> None:
    sh("ip", "-n", vpc.ns.name, "link", "set", "br0", "type", "bridge", "nf_call_iptables",
       "1" if on else "0")  # fmt: skip


def claim(nat: LoopbackNat, private_ip: str) -> str:
    """A free address of the loopback pool, mapped to ``private_ip``."""
    for n in range(os.getpid() % 1000, os.getpid() % 1000 + 5000):
        address = f"127.64.{n // 250 % 250 + 1}.{n % 250 + 2}"
        if asyncio.run(nat.associate(address, private_ip)):
            return address
    raise RuntimeError("no free address in 127.64.0.0/16")


def forwarded(guest: Guest) -> int:
    """The packets ``guest`` has forwarded (its /proc/net/snmp ``Ip: ForwDatagrams``)."""
    out = subprocess.run(
        ["ip", "netns", "exec", guest.ns.name, "cat", "/proc/net/snmp"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    names, values = (line.split() for line in out if line.startswith("Ip:"))
    return int(values[names.index("ForwDatagrams")])


def via_hop(vpc: Vpc, hop: Guest, on: bool) -> None:
    """The first subnet's route table sends the second's prefix to ``hop`` (or not)."""
    bridges = {IPv4Network(f"{s}.0/20"): f"br{n}" for n, s in enumerate((SUBNET, SECOND, THIRD))}
    route = InterfaceRoute(f"{SECOND}.0/20", hop.ip)
    routes = VpcRoutes((SubnetRoutes(f"{SUBNET}.0/20", (route,)),)) if on else VpcRoutes()
    asyncio.run(apply_routes(vpc.ns, bridges, routes, [hop.ip]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")

    prefix = f"karri-bench-net-{os.getpid()}"
    vpc = Vpc(prefix)
    outside = Outside(prefix)
    nat = LoopbackNat(
        vpc.ns, f"kbn{os.getpid() % 10**8}", transit_network(prefix), outside.interface
    )
    results: dict[str, float] = {}
    try:
        a, b = vpc.guest(11), vpc.guest(12)
        server, counts = sink(b)
        vpc.bridge("br1", SECOND)
        vpc.bridge("br2", THIRD)
        c, hop = vpc.guest(13, "br1", SECOND), vpc.guest(14, "br2", THIRD)
        sh("ip", "netns", "exec", hop.ns.name, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        across, across_counts = sink(c)
        sh(
            "ip",
            "netns",
            "exec",
            vpc.ns.name,
            "sysctl",
            "-qw",
            "net.bridge.bridge-nf-call-iptables=0",
        )
        firewall = Firewall(vpc.ns, ("br0", "br1", "br2"))
        members = [Member(g.tap, g.ip, ("sg-b",)) for g in (b, c, hop)]
        asyncio.run(
            firewall.load(
                [GroupRules("sg-a", egress=ALL_OUT), GroupRules("sg-b", OPEN, ALL_OUT)],
                [Member(a.tap, a.ip, ("sg-a",)), *members],
            )
        )
        asyncio.run(nat.start({}))
        public = claim(nat, b.ip)
        asyncio.run(nat.set_gateways([NatGateway("nat-bench", ELASTIC, (f"{a.ip}/32",))]))
        far, far_counts = sink(outside)
        a_socket = lambda: a.ns.call(socket.socket)  # noqa: E731
        rounds: dict[str, list[float]] = {key: [] for key, _ in STREAMS}
        for _ in range(args.rounds):  # interleaved: the machine's load drifts
            bridge_netfilter(vpc, False)  # bridged frames skip the inet hooks: the raw bridge
            rounds["raw_bridge_mib_s"].append(stream(a_socket, b.ip, args.seconds, counts))
            bridge_netfilter(vpc, True)
            rounds["groups_mib_s"].append(stream(a_socket, b.ip, args.seconds, counts))
            rounds["host_nat_groups_mib_s"].append(
                stream(socket.socket, public, args.seconds, counts)
            )
            rounds["nat_gateway_mib_s"].append(stream(a_socket, OUTSIDE, args.seconds, far_counts))
            rounds["cross_subnet_mib_s"].append(stream(a_socket, c.ip, args.seconds, across_counts))
            via_hop(vpc, hop, True)
            before = forwarded(hop)
            rounds["interface_route_mib_s"].append(
                stream(a_socket, c.ip, args.seconds, across_counts)
            )
            assert forwarded(hop) > before + 1000, "the stream did not go through the hop"
            via_hop(vpc, hop, False)
        results.update({key: statistics.median(values) for key, values in rounds.items()})
        results.update(rule_in_force(firewall, a, b, args.changes))
        server.close()
        far.close()
        across.close()
    finally:
        asyncio.run(nat.close())
        vpc.close()
        outside.close()

    if args.json:
        print(json.dumps(results, indent=2))
        return
    raw = results["raw_bridge_mib_s"]
    print(f"rule in force, {args.changes} changes on a running member:")
    for name in ("authorize", "revoke"):
        p50, p99 = results[f"{name}_p50_ms"], results[f"{name}_p99_ms"]
        print(f"  {name:9}  p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    print(f"TCP, one stream, {args.seconds:g} s, median of {args.rounds} interleaved rounds:")
    for key, label in STREAMS:
        value = results[key]
        print(f"  {label:42} {value:8.0f} MiB/s  {value / raw * 100:5.0f} % of raw")


if __name__ == "__main__":
    main()
