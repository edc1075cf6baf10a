"""Which subnets of a VPC reach outside it. On AWS a subnet's instances are reachable at
their public addresses (and reach out) only when the subnet's route table sends
0.0.0.0/0 to an internet gateway attached to the VPC; the cloud works that out and the
node keeps ``table ip karri_routes`` in the VPC's namespace: a ``forward`` chain, ahead of
the security groups, that drops what crosses ``uplink`` (the loopback pool's link) or
``pub`` (the macvlan on a ``--public-interface``) to or from an address of any other
subnet. The NAT keeps its mappings: the instance keeps its address, which leads nowhere
until the route exists. A subnet routed through a NAT gateway (``natgateways.py``) may send
out by ``pub`` (SNATed there) and gets back only the replies. Each change replaces the
table in one ``nft -f`` transaction. ``None`` (a node told nothing) lets every subnet
through."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network

from karri.node.publicnat import OUTSIDE, PUBLIC  # the loopback pool's link, the macvlan

TABLE = "karri_routes"
EVERYWHERE = ("0.0.0.0/0",)


def _elements(networks: list[str]) -> str:
    return f" elements = {{ {', '.join(networks)} }};" if networks else ""


def routes_script(internet: Iterable[str] | None, natted: Iterable[str] = ()) -> str:
    """The table, atomically replacing the one in force: ``internet`` are the subnets
    (CIDRs) that reach outside, ``natted`` those that go out through a NAT gateway."""
    networks = EVERYWHERE if internet is None else sorted({str(IPv4Network(n)) for n in internet})
    private = sorted({str(IPv4Network(n)) for n in natted})
    return (
        f"add table ip {TABLE}\ndelete table ip {TABLE}\n"
        f"table ip {TABLE} {{\n"
        f"  set internet {{ type ipv4_addr; flags interval;{_elements(networks)} }}\n"
        f"  set natted {{ type ipv4_addr; flags interval;{_elements(private)} }}\n"
        "  chain forward { type filter hook forward priority -10; policy accept;\n"
        f'    iifname "{PUBLIC}" ip daddr @natted ct direction reply accept\n'
        f'    oifname "{PUBLIC}" ip saddr @natted accept\n'
        f"    iifname {OUTSIDE} ip daddr != @internet drop\n"
        f"    oifname {OUTSIDE} ip saddr != @internet drop\n"
        "  }\n}\n"
    )
