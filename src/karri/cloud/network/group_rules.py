"""Security group rules as values: what a permission asks for, AWS's checks of it, the
rules it becomes (one per peer), and the way back (rules grouped into permissions, as
DescribeSecurityGroups shows them, and into the node's ``firewall.Rule``s).

Pure: no database. The API layer builds ``Permission``s from IpPermissions (and from the
old flat members), ``RuleSpec``s from ModifySecurityGroupRules' SecurityGroupRuleRequest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network, IPv6Network

from karri.errors import CloudError, invalid_value
from karri.node.firewall import GroupRules, Rule

MAX_DESCRIPTION = 255
# Names AWS accepts for a protocol, by its number; any other number 0-255 stays a number.
_NAMED = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}
_PORTED = ("tcp", "udp")
_TYPED = ("icmp", "icmpv6")
# What a VPC group's name and description may hold (AWS: a-z, A-Z, 0-9, spaces, and
# ._-:/()#,@[]+=&;{}!$*).
_ALLOWED = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-:/()#,@[]+=&;{}!$*"
)


def malformed(message: str) -> CloudError:
    return CloudError("InvalidPermission.Malformed", message)


@dataclass(frozen=True)
class Peer:
    """One peer of a permission, as asked: exactly one of an IPv4 CIDR, an IPv6 CIDR, a
    group (by id, or by name in the default VPC; ``user_id`` its owner) or a prefix list."""

    cidr_ipv4: str | None = None
    cidr_ipv6: str | None = None
    group_id: str | None = None
    group_name: str | None = None
    user_id: str | None = None
    prefix_list_id: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Permission:
    """An IpPermission: a protocol and port range for some peers."""

    protocol: str | None
    from_port: int | None = None
    to_port: int | None = None
    peers: tuple[Peer, ...] = ()


@dataclass(frozen=True)
class RuleSpec:
    """One rule, checked and normalized: the peer resolved (a group by its id and owner)."""

    egress: bool
    protocol: str
    from_port: int
    to_port: int
    cidr_ipv4: str | None = None
    cidr_ipv6: str | None = None
    peer_group_id: str | None = None
    peer_owner_id: str | None = None
    prefix_list_id: str | None = None
    description: str | None = None

    def key(self) -> tuple:
        """What makes two rules the same rule (the description does not)."""
        return (
            self.egress,
            self.protocol,
            self.from_port,
            self.to_port,
            self.cidr_ipv4,
            self.cidr_ipv6,
            self.peer_group_id,
            self.prefix_list_id,
        )

    def peer_text(self) -> str:
        return self.cidr_ipv4 or self.cidr_ipv6 or self.peer_group_id or self.prefix_list_id or ""


@dataclass(frozen=True)
class RuleView:
    """A stored rule, as DescribeSecurityGroupRules shows it."""

    rule_id: str
    group_id: str
    owner_id: str
    spec: RuleSpec
    peer_vpc_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def check_text(value: str | None, member: str) -> str:
    """A VPC group's name or description: 1-255 characters of AWS's set."""
    if value is None or value == "":
        raise CloudError("MissingParameter", f"The request must contain the parameter {member}")
    if len(value) > MAX_DESCRIPTION:
        raise invalid_value(
            f"Value ({value}) for parameter {member} is invalid. "
            f"Value exceeds the maximum length of {MAX_DESCRIPTION}."
        )
    if not set(value) <= _ALLOWED:
        raise invalid_value(
            f"Value ({value}) for parameter {member} is invalid. Character sets beyond "
            "ASCII are not supported."
        )
    return value


def check_description(value: str | None) -> str | None:
    """A rule's description: up to 255 characters of the same set (empty: none)."""
    if not value:
        return None
    if len(value) > MAX_DESCRIPTION or not set(value) <= _ALLOWED:
        raise invalid_value(
            f"Invalid rule description. Valid descriptions are strings less than 256 "
            f"characters from the following set: a-zA-Z0-9. _-:/()#,@[]+=&;{{}}!$*: {value}"
        )
    return value


def protocol_of(value: str | None) -> str:
    """AWS's protocol: ``tcp``, ``udp``, ``icmp``, ``icmpv6``, ``-1`` (all) or a number;
    the numbers of the named ones read as their names."""
    if value is None or value == "":
        raise malformed("Invalid IP protocol: must specify an IP protocol")
    text = value.strip().lower()
    if text in ("-1", "all"):
        return "-1"
    if text in _NAMED.values():
        return text
    if text.isascii() and text.isdigit() and len(text) <= 3 and int(text) <= 255:
        number = str(int(text))
        return _NAMED.get(number, number)
    raise invalid_value(f"Invalid value '{value}' for IP protocol. Unknown protocol.")


def ports_of(protocol: str, from_port: int | None, to_port: int | None) -> tuple[int, int]:
    """The port range (or ICMP type and code) a protocol takes; -1/-1 for the others."""
    if protocol in _PORTED:
        if from_port is None or to_port is None:
            raise invalid_value(
                "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange."
            )
        if not (0 <= from_port <= 65535 and 0 <= to_port <= 65535) or from_port > to_port:
            raise invalid_value(f"Invalid TCP/UDP port range: {from_port}-{to_port}")
        return from_port, to_port
    if protocol in _TYPED:
        kind = "ICMP" if protocol == "icmp" else "ICMPv6"
        icmp_type = -1 if from_port is None else from_port
        code = -1 if to_port is None else to_port
        if not (-1 <= icmp_type <= 255 and -1 <= code <= 255):
            raise invalid_value(f"Invalid value '{icmp_type}' for {kind} type/code {code}.")
        if icmp_type == -1 and code != -1:
            raise invalid_value(f"Invalid {kind} code {code}: the type must be given with it.")
        return icmp_type, code
    return -1, -1


def cidr_v4(value: str) -> str:
    try:
        return str(IPv4Network(value, strict=False))
    except ValueError:
        raise invalid_value(f"CIDR block {value} is malformed") from None


def cidr_v6(value: str) -> str:
    try:
        return str(IPv6Network(value, strict=False))
    except ValueError:
        raise invalid_value(f"CIDR block {value} is malformed") from None


def check_peer(peer: Peer) -> None:
    """Exactly one kind of peer."""
    given = [
        peer.cidr_ipv4,
        peer.cidr_ipv6,
        peer.group_id or peer.group_name,
        peer.prefix_list_id,
    ]
    if sum(1 for g in given if g) != 1:
        raise malformed("A rule must name exactly one peer: a CIDR, a group or a prefix list.")


def permission_text(spec: RuleSpec) -> str:
    """How AWS's messages name a rule: ``peer: 0.0.0.0/0, TCP, from port: 22, to port: 22,
    ALLOW``."""
    protocol = spec.protocol.upper() if spec.protocol != "-1" else "ALL"
    ports = (
        f", from port: {spec.from_port}, to port: {spec.to_port}"
        if spec.protocol in _PORTED + _TYPED
        else ""
    )
    return f"peer: {spec.peer_text()}, {protocol}{ports}, ALLOW"


# --- the way back -------------------------------------------------------------------


@dataclass(frozen=True)
class PermissionView:
    """Rules of one protocol and port range, grouped by kind of peer, as an
    IpPermission of DescribeSecurityGroups (``ports`` False: no FromPort/ToPort)."""

    protocol: str
    from_port: int
    to_port: int
    ports: bool
    rules: tuple[RuleView, ...]


def has_ports(protocol: str) -> bool:
    return protocol in _PORTED + _TYPED


def grouped(rules: Iterable[RuleView]) -> list[PermissionView]:
    """AWS's grouping: one permission per protocol and port range, in the order each was
    first added; within it the peers in the order they were added."""
    by_key: dict[tuple[str, int, int], list[RuleView]] = {}
    for rule in rules:
        s = rule.spec
        by_key.setdefault((s.protocol, s.from_port, s.to_port), []).append(rule)
    return [
        PermissionView(protocol, low, high, has_ports(protocol), tuple(members))
        for (protocol, low, high), members in by_key.items()
    ]


def firewall_rules(group_id: str, rules: Sequence[RuleSpec]) -> GroupRules:
    """What the node enforces of a group: IPv4 CIDRs and groups as peers (IPv6 and prefix
    lists are kept by the cloud, not rendered); one ``Rule`` per protocol and port range."""

    def direction(egress: bool) -> tuple[Rule, ...]:
        merged: dict[tuple[str, int, int], tuple[list[str], list[str]]] = {}
        for spec in rules:
            if spec.egress != egress or not (spec.cidr_ipv4 or spec.peer_group_id):
                continue
            cidrs, groups = merged.setdefault(
                (spec.protocol, spec.from_port, spec.to_port), ([], [])
            )
            if spec.cidr_ipv4:
                cidrs.append(spec.cidr_ipv4)
            if spec.peer_group_id:
                groups.append(spec.peer_group_id)
        return tuple(
            Rule(protocol, low, high, tuple(cidrs), tuple(groups))
            for (protocol, low, high), (cidrs, groups) in merged.items()
        )

    return GroupRules(group_id, ingress=direction(False), egress=direction(True))


def with_description(spec: RuleSpec, description: str | None) -> RuleSpec:
    return replace(spec, description=check_description(description))
