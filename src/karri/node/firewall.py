"""Security groups enforced by nftables inside a VPC's namespace.

The kernel is the only place the rules live: they hold while the node controller is down.
Traffic between taps of one bridge is *bridged*, so the ``inet`` forward hook sees it only
through br_netfilter (the bridge's ``nf_call_iptables`` option, set by ``load``); the
kernel has no conntrack for ``table bridge``, which is why groups are not enforced there.
Under br_netfilter the forward hook sees the bridge, not the taps, as in and out device:
members are told apart by address instead, which the anti-spoofing ``bridge`` table of
network.py makes trustworthy (a tap sends only from its own IP).

Layout of ``table inet karri_sg``:
- two base chains on the forward hook, egress (priority 0) then ingress (priority 1):
  ``ct state established,related accept``, ``invalid drop``, then a verdict map from the
  member's address to its own chain (egress: the source, or for what an interface whose
  SourceDestCheck is off sends from another address, its packet mark; ingress: the
  route's next hop, which is the destination unless a route sends it to an interface,
  e.g. a NAT instance, whose groups then apply); forwarded traffic from or to the bridge
  that belongs to no member is dropped (broadcasts between guests, a tap not yet or no
  longer a member);
- per member ``mi-<name>`` / ``me-<name>``: a jump to each of its groups' chains, then drop;
- per group ``gi-<group>`` / ``ge-<group>``: one rule per peer of each of its rules
  (accept), and the set ``gm-<group>`` of its members' addresses, for rules that name the
  group as their peer.
Every change is one ``nft -f`` transaction touching only the chains, sets and map elements
it changes; established connections survive a revoke, as on AWS.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from karri.node.errors import NetworkError

TABLE = "karri_sg"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp"}
_NUMBERS = {"icmpv6": "58"}  # names AWS accepts that only a number says in nftables
_ALL = ("-1", "all")


class FirewallError(NetworkError):
    pass


class NftHost(Protocol):
    """Where the rules go: a network namespace (node/netns.py's Namespace)."""

    async def nft(self, script: str) -> str: ...

    async def ip(self, *args: str) -> str: ...


@dataclass(frozen=True)
class Rule:
    """One permission, as AWS's IpPermission: ``protocol`` is tcp, udp, icmp, a number or
    ``-1`` (all); for icmp ``from_port`` is the type and ``to_port`` the code (-1: any).
    The peer (source of ingress, destination of egress) is any of ``cidrs`` or ``groups``."""

    protocol: str
    from_port: int = -1
    to_port: int = -1
    cidrs: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupRules:
    group_id: str
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Member:
    """An interface filtered by its groups: ``name`` (its tap) keys it, ``ip`` finds it."""

    name: str
    ip: str
    group_ids: tuple[str, ...]
    mark: int = 0
    """Non-zero for an interface whose SourceDestCheck is off: network.py's bridge table
    marks what it sends from another address (what it forwards) with it, and its egress
    chain filters that too (``egress_marks``)."""
    remote: bool = False
    """An interface on another node (overlay.py's ``RemotePort``): in its groups' address
    sets here, its own traffic let through (its own node enforces its groups)."""


# --- rendering ---------------------------------------------------------------------
def _checked_name(name: str) -> str:
    if not _NAME.match(name):
        raise FirewallError(f"{name!r} cannot name a firewall object")
    return name


def _match(rule: Rule) -> str:
    """The protocol and port part of a rule."""
    proto = rule.protocol.lower()
    if proto in _ALL:
        return ""
    kind = _PROTOCOLS.get(proto)
    if kind == "icmp":
        if not (-1 <= rule.from_port <= 255 and -1 <= rule.to_port <= 255):
            raise FirewallError(f"bad icmp type/code {rule.from_port}/{rule.to_port}")
        if rule.from_port == -1:
            return "meta l4proto icmp"
        code = "" if rule.to_port == -1 else f" icmp code {rule.to_port}"
        return f"icmp type {rule.from_port}{code}"
    if kind is not None:
        if not 0 <= rule.from_port <= rule.to_port <= 65535:
            raise FirewallError(f"bad port range {rule.from_port}-{rule.to_port}")
        if (rule.from_port, rule.to_port) == (0, 65535):
            return f"meta l4proto {kind}"
        ports = (
            str(rule.from_port)
            if rule.from_port == rule.to_port
            else f"{rule.from_port}-{rule.to_port}"
        )
        return f"{kind} dport {ports}"
    proto = _NUMBERS.get(proto, proto)
    if proto.isdigit() and 0 <= int(proto) <= 255:
        return f"meta l4proto {int(proto)}"
    raise FirewallError(f"unknown protocol {rule.protocol!r}")


def _rule_lines(rule: Rule, peer: str) -> list[str]:
    """``peer`` is ``saddr`` (ingress) or ``daddr`` (egress)."""
    match = _match(rule)
    tail = f"{match} accept" if match else "accept"
    lines = []
    if rule.cidrs:
        nets = ", ".join(sorted({str(IPv4Network(c, strict=False)) for c in rule.cidrs}))
        lines.append(f"ip {peer} {{ {nets} }} {tail}")
    for group in rule.groups:
        lines.append(f"ip {peer} @gm-{_checked_name(group)} {tail}")
    return lines


def _chain(kind: str, name: str) -> str:
    return f"{kind}-{_checked_name(name)}"


def _fill_group_chain(group: GroupRules, direction: str) -> list[str]:
    chain = _chain("gi" if direction == "ingress" else "ge", group.group_id)
    peer = "saddr" if direction == "ingress" else "daddr"
    rules = group.ingress if direction == "ingress" else group.egress
    return [
        f"add rule inet {TABLE} {chain} {line}"
        for rule in rules
        for line in _rule_lines(rule, peer)
    ]


def _fill_member_chains(member: Member) -> list[str]:
    if member.remote:  # filtered on its own node, both ways
        return [f"add rule inet {TABLE} {_chain(k, member.name)} accept" for k in ("mi", "me")]
    lines = []
    for kind, group_kind in (("mi", "gi"), ("me", "ge")):
        chain = _chain(kind, member.name)
        lines += [
            f"add rule inet {TABLE} {chain} jump {_chain(group_kind, g)}" for g in member.group_ids
        ]
        lines.append(f"add rule inet {TABLE} {chain} drop")
    return lines


def _dispatch_elements(op: str, member: Member) -> list[str]:
    """The verdict map entries that send a member's traffic to its chains."""
    lines = []
    keys = [("ingress", "mi", member.ip), ("egress", "me", member.ip)]
    if member.mark:
        keys.append(("egress_marks", "me", f"{member.mark:#x}"))
    for name, kind, key in keys:
        value = f" : jump {_chain(kind, member.name)}" if op == "add" else ""
        lines.append(f"{op} element inet {TABLE} {name} {{ {key}{value} }}")
    return lines


def _set_elements(op: str, ip: str, groups: Iterable[str]) -> list[str]:
    """A member's address in (or out of) its groups' address sets."""
    return [f"{op} element inet {TABLE} {_chain('gm', g)} {{ {ip} }}" for g in groups]


def _base() -> str:
    chains = ["  set bridges { type ifname; }\n  map egress_marks { type mark : verdict; }\n"]
    # a packet is let in by the groups of the interface it is delivered to: its next hop
    # (its destination itself, or the interface a route sends it to: subnetroutes.py)
    for name, prio, addr, iface in (
        ("egress", 0, "ip saddr", "iifname"),
        ("ingress", 1, "rt ip nexthop", "oifname"),
    ):
        chains.append(
            f"  map {name} {{ type ipv4_addr : verdict; }}\n"
            f"  chain forward_{name} {{\n"
            f"    type filter hook forward priority {prio}; policy accept;\n"
            "    ct state established,related accept\n"
            "    ct state invalid drop\n"
            f"    {addr} vmap @{name}\n"
            + ("    meta mark vmap @egress_marks\n" if name == "egress" else "")
            + f"    {iface} @bridges drop\n"
            "  }\n"
        )
    return f"table inet {TABLE} {{\n{''.join(chains)}}}\n"


def _bridge_elements(bridges: Iterable[str]) -> list[str]:
    names = ", ".join(f'"{_checked_name(b)}"' for b in sorted(bridges))
    return [f"add element inet {TABLE} bridges {{ {names} }}"] if names else []


def _diff(
    old_groups: Mapping[str, GroupRules],
    old_members: Mapping[str, Member],
    groups: Mapping[str, GroupRules],
    members: Mapping[str, Member],
) -> list[str]:
    """The commands that turn the table holding the old groups and members into one
    holding the new ones, touching only what differs (one transaction: the order matters,
    objects are created before they are referred to and emptied before they go)."""
    lines: list[str] = []
    for group_id in groups.keys() - old_groups.keys():
        lines += Firewall._group_objects(group_id)
    for name in members.keys() - old_members.keys():
        lines += Firewall._member_objects(name)
    for group in groups.values():
        old = old_groups.get(group.group_id)
        for direction, kind in (("ingress", "gi"), ("egress", "ge")):
            if old is None or getattr(old, direction) != getattr(group, direction):
                if old is not None:
                    lines.append(f"flush chain inet {TABLE} {_chain(kind, group.group_id)}")
                lines += _fill_group_chain(group, direction)
    for name, old_member in old_members.items():
        member = members.get(name)
        if member == old_member:
            continue
        lines += [
            f"flush chain inet {TABLE} {_chain('mi', name)}",
            f"flush chain inet {TABLE} {_chain('me', name)}",
        ]
        if member is None or (member.ip, member.mark) != (old_member.ip, old_member.mark):
            lines += _dispatch_elements("delete", old_member)
        if member is None or member.ip != old_member.ip:
            lines += _set_elements("delete", old_member.ip, old_member.group_ids)
        else:
            gone = [g for g in old_member.group_ids if g not in member.group_ids]
            lines += _set_elements("delete", old_member.ip, gone)
    for name, member in members.items():
        old_member = old_members.get(name)
        if member == old_member:
            continue
        if old_member is None or (member.ip, member.mark) != (old_member.ip, old_member.mark):
            lines += _dispatch_elements("add", member)
        if old_member is None or old_member.ip != member.ip:
            lines += _set_elements("add", member.ip, member.group_ids)
        else:
            new = [g for g in member.group_ids if g not in old_member.group_ids]
            lines += _set_elements("add", member.ip, new)
        lines += _fill_member_chains(member)
    for name in old_members.keys() - members.keys():
        lines += [
            f"delete chain inet {TABLE} {_chain('mi', name)}",
            f"delete chain inet {TABLE} {_chain('me', name)}",
        ]
    for group_id in old_groups.keys() - groups.keys():
        lines += [
            f"delete chain inet {TABLE} {_chain('gi', group_id)}",
            f"delete chain inet {TABLE} {_chain('ge', group_id)}",
            f"delete set inet {TABLE} {_chain('gm', group_id)}",
        ]
    return lines


# --- the firewall ------------------------------------------------------------------
class Firewall:
    """The groups and members of one namespace, mirrored in its kernel.

    ``load`` replaces the whole table at once (a start, or adopting a namespace a crashed
    node controller left); every other call is one transaction of what changed.
    ``bridges`` are the namespace's bridges (one per subnet): forwarded traffic from or
    to them that belongs to no member is dropped.
    """

    def __init__(self, host: NftHost, bridges: Iterable[str] | str = ()) -> None:
        self.host = host
        self.bridges: set[str] = {bridges} if isinstance(bridges, str) else set(bridges)
        self.groups: dict[str, GroupRules] = {}
        self.members: dict[str, Member] = {}
        self._lock = asyncio.Lock()

    async def load(self, groups: Iterable[GroupRules], members: Iterable[Member]) -> None:
        groups = {g.group_id: g for g in groups}
        members = {m.name: m for m in members}
        self._check(groups, members)
        lines = [f"add table inet {TABLE}", f"delete table inet {TABLE}", _base()]
        lines += _bridge_elements(self.bridges)
        lines += _diff({}, {}, groups, members)
        async with self._lock:
            for bridge in sorted(self.bridges):
                await self._br_netfilter(bridge)
            await self._apply(lines)
            self.groups, self.members = groups, members

    async def remove_bridge(self, bridge: str) -> None:
        """Stop filtering a bridge that is going away (a deleted subnet)."""
        async with self._lock:
            if bridge not in self.bridges:
                return
            await self._apply(
                [f'delete element inet {TABLE} bridges {{ "{_checked_name(bridge)}" }}']
            )
            self.bridges.discard(bridge)

    async def add_bridge(self, bridge: str) -> None:
        """Filter one more bridge (a new subnet); the table must be loaded."""
        async with self._lock:
            if bridge in self.bridges:
                return
            await self._br_netfilter(bridge)
            await self._apply(_bridge_elements([bridge]))
            self.bridges.add(bridge)

    async def sync(self, groups: Iterable[GroupRules], members: Iterable[Member]) -> None:
        """Make the table hold exactly ``groups`` and ``members``, in one transaction of
        what differs (nothing at all when nothing does)."""
        async with self._lock:
            await self._sync({g.group_id: g for g in groups}, {m.name: m for m in members})

    async def set_groups(self, groups: Iterable[GroupRules]) -> None:
        """Replace every group (the members stay; none may use a group that goes)."""
        async with self._lock:
            await self._sync({g.group_id: g for g in groups}, dict(self.members))

    async def set_group(self, group: GroupRules) -> None:
        """Declare a group or replace its rules (only the directions that changed)."""
        async with self._lock:
            await self._sync({**self.groups, group.group_id: group}, dict(self.members))

    async def remove_group(self, group_id: str) -> None:
        async with self._lock:
            if group_id not in self.groups:
                return
            groups = {g: r for g, r in self.groups.items() if g != group_id}
            await self._sync(groups, dict(self.members))

    async def set_member(self, member: Member) -> None:
        """Add a member or change its groups or address."""
        async with self._lock:
            await self._sync(dict(self.groups), {**self.members, member.name: member})

    async def remove_member(self, name: str) -> None:
        async with self._lock:
            members = {n: m for n, m in self.members.items() if n != name}
            await self._sync(dict(self.groups), members)

    async def _sync(self, groups: dict[str, GroupRules], members: dict[str, Member]) -> None:
        self._check(groups, members)
        await self._apply(_diff(self.groups, self.members, groups, members))
        self.groups, self.members = groups, members

    def _check(self, groups: dict[str, GroupRules], members: dict[str, Member]) -> None:
        used = {g for m in members.values() for g in m.group_ids}
        used |= {p for g in groups.values() for r in (*g.ingress, *g.egress) for p in r.groups}
        # a clearer message than "unknown group" for a removal
        gone = sorted(g for g in self.groups if g not in groups and g in used)
        for group_id in gone:
            users = [m.name for m in members.values() if group_id in m.group_ids]
            users += [
                g.group_id
                for g in groups.values()
                if any(group_id in r.groups for r in (*g.ingress, *g.egress))
            ]
            raise FirewallError(f"group {group_id} is used by {', '.join(sorted(users))}")
        for group in groups.values():
            self._check_group(group, groups)
        for member in members.values():
            self._check_member(member, groups, members)

    async def _br_netfilter(self, bridge: str) -> None:
        await self.host.ip("link", "set", bridge, "type", "bridge", "nf_call_iptables", "1")

    # --- helpers -------------------------------------------------------------------
    @staticmethod
    def _group_objects(group_id: str) -> list[str]:
        return [
            f"add set inet {TABLE} {_chain('gm', group_id)} {{ type ipv4_addr; }}",
            f"add chain inet {TABLE} {_chain('gi', group_id)}",
            f"add chain inet {TABLE} {_chain('ge', group_id)}",
        ]

    @staticmethod
    def _member_objects(name: str) -> list[str]:
        return [
            f"add chain inet {TABLE} {_chain('mi', name)}",
            f"add chain inet {TABLE} {_chain('me', name)}",
        ]

    @staticmethod
    def _check_group(group: GroupRules, groups: dict[str, GroupRules]) -> None:
        _checked_name(group.group_id)
        for rule in (*group.ingress, *group.egress):
            try:
                _rule_lines(rule, "saddr")
            except ValueError as exc:
                raise FirewallError(f"{group.group_id}: {exc}") from None
            unknown = [g for g in rule.groups if g not in groups]
            if unknown:
                raise FirewallError(f"{group.group_id}: unknown peer group(s) {unknown}")

    @staticmethod
    def _check_member(
        member: Member, groups: dict[str, GroupRules], members: dict[str, Member]
    ) -> None:
        _checked_name(member.name)
        try:
            IPv4Address(member.ip)
        except ValueError as exc:
            raise FirewallError(str(exc)) from None
        unknown = [g for g in member.group_ids if g not in groups]
        if unknown:
            raise FirewallError(f"{member.name}: unknown group(s) {unknown}")
        for other in members.values():
            if other.name != member.name and other.ip == member.ip:
                raise FirewallError(f"{member.ip} is already the address of {other.name}")

    async def _apply(self, lines: list[str]) -> None:
        if lines:
            await self.host.nft("\n".join(lines) + "\n")
