"""Network ACLs in a VPC's namespace: ``table ip karri_acl``.

AWS's network ACLs are stateless and per subnet: what enters a subnet is checked against
its ACL's inbound entries, what leaves it against the outbound ones, in rule-number order,
the first match deciding, the ``*`` rule denying what none matched. Traffic between two
instances of one subnet is not checked (it never crosses the subnet's boundary), and
neither is the namespace's own traffic (DHCP, the metadata service: ``input``/``output``,
not ``forward``), as AWS exempts its own services.

One ``forward`` chain at priority -5 (after ``routing.py``'s -10, before the security
groups' 0) sends a packet leaving subnet S to ``o-S`` and one entering S to ``i-S``; an
allow entry ``return``s (so a packet between two subnets passes its source's outbound
chain, then its destination's inbound one), a deny entry drops, and each chain ends with
the ``*`` drop. Nothing uses conntrack: a reply is checked like any packet, so inbound
tcp/80 without an outbound rule for the ephemeral ports loses the replies (as on AWS).
Each change replaces the table in one ``nft -f`` transaction (atomic: no packet sees a
half-built table). A subnet the cloud said nothing about is not filtered; ``None`` (a node
told nothing) filters nothing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network

TABLE = "karri_acl"
ANY = "0.0.0.0/0"
_PORTED = (6, 17)
ICMP = 1


@dataclass(frozen=True)
class AclEntry:
    """One numbered entry: ``protocol`` -1 (all) or an IP protocol number; the ports are
    destination ports (TCP/UDP), ``icmp_type``/``icmp_code`` -1 for any."""

    rule_number: int
    egress: bool
    protocol: int
    allow: bool
    cidr: str = ANY
    port_from: int | None = None
    port_to: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None


@dataclass(frozen=True)
class SubnetAcl:
    """A subnet (its CIDR) and the entries of the ACL associated with it."""

    subnet: str
    entries: tuple[AclEntry, ...] = ()


def _name(direction: str, subnet: IPv4Network) -> str:
    return f"{direction}-{int(subnet.network_address):08x}{subnet.prefixlen:02d}"


def entry_rule(entry: AclEntry) -> str:
    """The nft rule of one entry (without the ``add rule`` prefix)."""
    parts: list[str] = []
    network = IPv4Network(entry.cidr)
    if network.prefixlen:
        parts.append(f"ip {'daddr' if entry.egress else 'saddr'} {network}")
    if entry.protocol != -1:
        parts.append(f"meta l4proto {entry.protocol}")
        if entry.protocol in _PORTED and entry.port_from is not None:
            low, high = entry.port_from, entry.port_to if entry.port_to is not None else 65535
            parts.append(f"th dport {low}" if low == high else f"th dport {low}-{high}")
        if entry.protocol == ICMP and entry.icmp_type is not None and entry.icmp_type != -1:
            parts.append(f"icmp type {entry.icmp_type}")
            if entry.icmp_code is not None and entry.icmp_code != -1:
                parts.append(f"icmp code {entry.icmp_code}")
    parts.append("return" if entry.allow else "drop")
    return " ".join(parts)


def acls_script(acls: Iterable[SubnetAcl] | None) -> str:
    """The whole table, replacing the one in force in the same transaction."""
    lines = [f"add table ip {TABLE}", f"delete table ip {TABLE}", f"add table ip {TABLE}"]
    lines.append(
        f"add chain ip {TABLE} forward {{ type filter hook forward priority -5; policy accept; }}"
    )
    for acl in sorted(acls or (), key=lambda a: IPv4Network(a.subnet)):
        subnet = IPv4Network(acl.subnet)
        for direction, egress, here, there in (("o", True, "saddr", "daddr"),
                                               ("i", False, "daddr", "saddr")):  # fmt: skip
            chain = _name(direction, subnet)
            lines.append(f"add chain ip {TABLE} {chain}")
            lines.append(
                f"add rule ip {TABLE} forward ip {here} {subnet} ip {there} != {subnet} "
                f"jump {chain}"
            )
            entries = sorted(
                (e for e in acl.entries if e.egress == egress), key=lambda e: e.rule_number
            )
            for entry in entries:
                lines.append(f"add rule ip {TABLE} {chain} {entry_rule(entry)}")
            lines.append(f"add rule ip {TABLE} {chain} drop")
    return "\n".join(lines) + "\n"
