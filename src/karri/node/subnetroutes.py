"""Routes to network interfaces: a subnet's traffic routed by its own route table.

On AWS a route table may send a range (0.0.0.0/0, another network, or one of the VPC's
own subnets: a route more specific than the local one) to a network interface or an
instance, e.g. a NAT instance or a firewall appliance; a route whose target is gone
(interface deleted or detached, instance stopped) is a ``blackhole``. The cloud sends,
per subnet, the routes of its table that target an interface (``SubnetRoutes``), each with
the interface's private address as next hop (None: a blackhole), and the addresses of the
interfaces whose SourceDestCheck is off (``VpcRoutes.forwarders``, network.py's bridge
table lets them send and receive for other addresses).

In the VPC's namespace, policy routing: for each subnet with such routes, a kernel table
(``TABLE_BASE`` + n) holding the local routes (every bridge's prefix, as the ``main``
table has them) and the subnet's routes (``via`` the target on its bridge, ``onlink``; a
``blackhole`` when the cloud says so or no port of this node has the target's address),
and an ``ip rule iif <subnet's bridge> lookup <table>`` (priority ``RULE_BASE`` + n).
What the table does not hold (0.0.0.0/0 to an internet or NAT gateway) falls through to
``main`` as before. Only packets arriving on the bridge are steered: the namespace's own
traffic (DHCP, metadata, DNS) keeps ``main``. A change writes the wanted routes with
``route replace`` first and removes the stale ones after, then the rules likewise, so no
packet meets an empty table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from karri.node.commands import run
from karri.node.netns import Namespace

TABLE_BASE = 7300  # kernel table ids TABLE_BASE .. TABLE_BASE + LIMIT - 1 are karri's
RULE_BASE = 7300  # and so are the rule priorities
LIMIT = 1000
SYSCTLS = ("net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0")
"""A route to an interface in the packet's own subnet sends it back out of the bridge it
came in on: no ICMP redirect may tell the guest to bypass the target."""

KernelRoute = tuple[int, IPv4Network]  # (table, destination)
KernelRule = tuple[int, str, int]  # (priority, iif, table)


@dataclass(frozen=True)
class InterfaceRoute:
    """A route of a subnet's table: ``destination`` (CIDR) to the interface whose primary
    private address is ``target``; None: a blackhole."""

    destination: str
    target: str | None


@dataclass(frozen=True)
class SubnetRoutes:
    """A subnet (CIDR) and the routes of its route table that target an interface."""

    subnet: str
    routes: tuple[InterfaceRoute, ...]


@dataclass(frozen=True)
class VpcRoutes:
    """What the cloud tells a node of a VPC's interfaces beyond their ports: the routes
    to them per subnet, the primary private addresses of those whose SourceDestCheck is
    off, and the elastic IPs of addresses other than an instance's primary one ((public,
    private): a secondary address, another interface; network.py maps them 1:1 as it
    maps an instance's public address)."""

    subnets: tuple[SubnetRoutes, ...] = ()
    forwarders: tuple[str, ...] = ()
    elastic: tuple[tuple[str, str], ...] = ()


def _network(text: str) -> IPv4Network:
    return IPv4Network("0.0.0.0/0" if text == "default" else text)


def kernel_tables(
    bridges: Mapping[IPv4Network, str], routes: VpcRoutes, present: Iterable[str]
) -> dict[str, tuple[int, dict[IPv4Network, str]]]:
    """Bridge -> (table id, destination -> the ``ip route`` words after it) for each
    subnet that has a bridge here and routes to interfaces. ``present``: the addresses of
    the node's ports (a target without one is a blackhole)."""
    here = set(present)
    wanted: dict[str, tuple[int, dict[IPv4Network, str]]] = {}
    for n, entry in enumerate(sorted(routes.subnets, key=lambda s: _network(s.subnet))):
        bridge = bridges.get(_network(entry.subnet))
        if bridge is None or not entry.routes or n >= LIMIT:
            continue
        table = {net: f"dev {br} scope link src {net.network_address + 1}"
                 for net, br in bridges.items()}  # fmt: skip
        for route in entry.routes:
            via = _next_hop(bridges, route.target, here)
            table[_network(route.destination)] = via or ""
        wanted[bridge] = (TABLE_BASE + n, table)
    return wanted


def _next_hop(bridges: Mapping[IPv4Network, str], target: str | None, here: set[str]) -> str:
    """``via <target> dev <its bridge> onlink``, or "" (a blackhole) for a target that
    has no port on this node."""
    if target is None or target not in here:
        return ""
    address = IPv4Address(target)
    bridge = next((b for net, b in bridges.items() if address in net), None)
    return f"via {address} dev {bridge} onlink" if bridge else ""


def _route_line(table: int, destination: IPv4Network, words: str) -> str:
    if not words:
        return f"route replace blackhole {destination} table {table}"
    return f"route replace {destination} {words} table {table}"


def plan(
    wanted: Mapping[str, tuple[int, Mapping[IPv4Network, str]]],
    routes_now: Iterable[KernelRoute],
    rules_now: Iterable[KernelRule],
) -> list[str]:
    """The ``ip -batch`` lines from what is in force (``routes_now``: (table,
    destination) in karri's tables; ``rules_now``: (priority, iif, table) of karri's
    rules) to ``wanted``: routes written, stale routes removed, then the rules."""
    lines: list[str] = []
    keep: set[tuple[int, IPv4Network]] = set()
    for table, entries in wanted.values():
        for destination, words in sorted(entries.items()):
            lines.append(_route_line(table, destination, words))
            keep.add((table, destination))
    lines += [f"route del {d} table {t}" for t, d in sorted(set(routes_now) - keep)]
    rules = {(RULE_BASE + t - TABLE_BASE, b, t) for b, (t, _) in wanted.items()}
    now = set(rules_now)
    lines += [f"rule add pref {p} iif {b} lookup {t}" for p, b, t in sorted(rules - now)]
    lines += [f"rule del pref {p} iif {b} lookup {t}" for p, b, t in sorted(now - rules)]
    return lines


def _ours(number: int, base: int) -> bool:
    return base <= number < base + LIMIT


async def in_force(
    ns: Namespace,
) -> tuple[list[tuple[int, IPv4Network]], list[tuple[int, str, int]]]:
    """karri's routes (table, destination) and rules (priority, iif, table) in ``ns``."""
    routes = [
        (int(r["table"]), _network(r["dst"]))
        for r in json.loads(await ns.ip("-j", "route", "show", "table", "all") or "[]")
        if str(r.get("table", "")).isdigit() and _ours(int(r["table"]), TABLE_BASE)
    ]
    rules = [
        (int(r["priority"]), r.get("iif", ""), int(r["table"]))
        for r in json.loads(await ns.ip("-j", "rule", "show") or "[]")
        if _ours(int(r["priority"]), RULE_BASE) and str(r.get("table", "")).isdigit()
    ]
    return routes, rules


async def apply(
    ns: Namespace, bridges: Mapping[IPv4Network, str], routes: VpcRoutes, present: Iterable[str]
) -> None:
    """Put ``routes`` in force in the namespace (``present``: the node's port addresses)."""
    wanted = kernel_tables(bridges, routes, present)
    if wanted:  # the bridges made before the default changed keep their own setting
        each = [f"net.ipv4.conf.{b}.send_redirects=0" for b in sorted(bridges.values())]
        await run(*ns.exec_args("sysctl", "-q", "-w", *SYSCTLS, *each))
    await ns.ip_batch(plan(wanted, *await in_force(ns)))
