"""What the VPC Describe calls answer, as values (rows of ``models.py`` and what goes with
them), and the AWS filters of each. The API layer turns them into EC2's shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from karri.cloud.filters import FilterSet
from karri.cloud.network.models import (
    DhcpOptions,
    InternetGateway,
    NetworkAcl,
    NetworkAclAssociation,
    NetworkAclEntry,
    Route,
    RouteTable,
    RouteTableAssociation,
    Subnet,
    Vpc,
    VpcCidrBlock,
)

CIDR_ASSOCIATED = "associated"


@dataclass(frozen=True)
class VpcView:
    vpc: Vpc
    tags: dict[str, str] = field(default_factory=dict)
    secondary: tuple[VpcCidrBlock, ...] = ()

    @property
    def ranges(self) -> list[tuple[str, str]]:
        """Each IPv4 range's association id and CIDR, the primary first."""
        primary = (self.vpc.cidr_association_id, self.vpc.cidr_block)
        return [primary, *((b.association_id, b.cidr_block) for b in self.secondary)]


@dataclass(frozen=True)
class SubnetView:
    subnet: Subnet
    zone_id: str
    available_addresses: int
    arn: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GatewayView:
    gateway: InternetGateway
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RouteTableView:
    table: RouteTable
    routes: list[Route]
    associations: list[RouteTableAssociation]
    tags: dict[str, str] = field(default_factory=dict)
    states: dict[int, str] = field(default_factory=dict)
    """Route id -> its state now (``interface_routes.route_states``)."""

    def state_of(self, route: Route) -> str:
        return self.states.get(route.id, route.state)


@dataclass(frozen=True)
class NetworkAclView:
    acl: NetworkAcl
    entries: list[NetworkAclEntry]
    associations: list[NetworkAclAssociation]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DhcpOptionsView:
    options: DhcpOptions
    tags: dict[str, str] = field(default_factory=dict)


def _none(_view: Any) -> None:
    """A filter AWS documents for something karri's resources never have: it is known
    (no InvalidParameterValue) and matches nothing."""
    return None


def _false(_view: Any) -> bool:
    return False


VPC_FILTERS: FilterSet[VpcView] = FilterSet(
    {
        "cidr": lambda v: v.vpc.cidr_block,
        "cidr-block-association.cidr-block": lambda v: [c for _a, c in v.ranges],
        "cidr-block-association.association-id": lambda v: [a for a, _c in v.ranges],
        "cidr-block-association.state": lambda _v: CIDR_ASSOCIATED,
        "dhcp-options-id": lambda v: v.vpc.dhcp_options_id or "default",
        "ipv6-cidr-block-association.ipv6-cidr-block": _none,
        "ipv6-cidr-block-association.ipv6-pool": _none,
        "ipv6-cidr-block-association.association-id": _none,
        "ipv6-cidr-block-association.state": _none,
        "is-default": lambda v: v.vpc.is_default,
        "isDefault": lambda v: v.vpc.is_default,
        "owner-id": lambda v: v.vpc.account_id,
        "state": lambda v: v.vpc.state,
        "vpc-id": lambda v: v.vpc.id,
    }
)

SUBNET_FILTERS: FilterSet[SubnetView] = FilterSet(
    {
        "availability-zone": lambda s: s.subnet.zone,
        "availabilityZone": lambda s: s.subnet.zone,
        "availability-zone-id": lambda s: s.zone_id,
        "available-ip-address-count": lambda s: s.available_addresses,
        "cidr-block": lambda s: s.subnet.cidr_block,
        "cidr": lambda s: s.subnet.cidr_block,
        "cidrBlock": lambda s: s.subnet.cidr_block,
        "customer-owned-ipv4-pool": _none,
        "default-for-az": lambda s: s.subnet.default_for_az,
        "defaultForAz": lambda s: s.subnet.default_for_az,
        "enable-dns64": _false,
        "enable-lni-at-device-index": _none,
        "ipv6-cidr-block-association.ipv6-cidr-block": _none,
        "ipv6-cidr-block-association.association-id": _none,
        "ipv6-cidr-block-association.state": _none,
        "ipv6-native": _false,
        "map-customer-owned-ip-on-launch": _false,
        "map-public-ip-on-launch": lambda s: s.subnet.map_public_ip_on_launch,
        "outpost-arn": _none,
        "owner-id": lambda s: s.subnet.account_id,
        "private-dns-name-options-on-launch.hostname-type": lambda _s: "ip-name",
        "private-dns-name-options-on-launch.enable-resource-name-dns-a-record": _false,
        "private-dns-name-options-on-launch.enable-resource-name-dns-aaaa-record": _false,
        "state": lambda s: s.subnet.state,
        "subnet-arn": lambda s: s.arn,
        "subnet-id": lambda s: s.subnet.id,
        "vpc-id": lambda s: s.subnet.vpc_id,
    }
)

GATEWAY_FILTERS: FilterSet[GatewayView] = FilterSet(
    {
        "attachment.state": lambda g: g.gateway.attachment_state,
        "attachment.vpc-id": lambda g: g.gateway.vpc_id,
        "internet-gateway-id": lambda g: g.gateway.id,
        "owner-id": lambda g: g.gateway.account_id,
    }
)

ROUTE_TABLE_FILTERS: FilterSet[RouteTableView] = FilterSet(
    {
        "association.gateway-id": _none,
        "association.route-table-association-id": lambda t: [a.id for a in t.associations],
        "association.route-table-id": lambda t: [a.route_table_id for a in t.associations],
        "association.subnet-id": lambda t: [a.subnet_id for a in t.associations],
        "association.main": lambda t: [a.main for a in t.associations],
        "owner-id": lambda t: t.table.account_id,
        "route-table-id": lambda t: t.table.id,
        "route.destination-cidr-block": lambda t: [r.destination_cidr for r in t.routes],
        "route.destination-ipv6-cidr-block": _none,
        "route.destination-prefix-list-id": _none,
        "route.egress-only-internet-gateway-id": _none,
        "route.gateway-id": lambda t: [r.gateway_id for r in t.routes],
        "route.instance-id": lambda t: [r.instance_id for r in t.routes],
        "route.network-interface-id": lambda t: [r.network_interface_id for r in t.routes],
        "route.nat-gateway-id": lambda t: [r.nat_gateway_id for r in t.routes],
        "route.transit-gateway-id": _none,
        "route.origin": lambda t: [r.origin for r in t.routes],
        "route.state": lambda t: [t.state_of(r) for r in t.routes],
        "route.vpc-peering-connection-id": _none,
        "vpc-id": lambda t: t.table.vpc_id,
    }
)

NETWORK_ACL_FILTERS: FilterSet[NetworkAclView] = FilterSet(
    {
        "association.association-id": lambda a: [x.id for x in a.associations],
        "association.network-acl-id": lambda a: [x.network_acl_id for x in a.associations],
        "association.subnet-id": lambda a: [x.subnet_id for x in a.associations],
        "default": lambda a: a.acl.is_default,
        "entry.cidr": lambda a: [e.cidr_block for e in a.entries],
        "entry.icmp.code": lambda a: [e.icmp_code for e in a.entries],
        "entry.icmp.type": lambda a: [e.icmp_type for e in a.entries],
        "entry.ipv6-cidr": _none,
        "entry.port-range.from": lambda a: [e.port_from for e in a.entries],
        "entry.port-range.to": lambda a: [e.port_to for e in a.entries],
        "entry.protocol": lambda a: [e.protocol for e in a.entries],
        "entry.rule-action": lambda a: [e.rule_action for e in a.entries],
        "entry.egress": lambda a: [e.egress for e in a.entries],
        "entry.rule-number": lambda a: [e.rule_number for e in a.entries],
        "network-acl-id": lambda a: a.acl.id,
        "owner-id": lambda a: a.acl.account_id,
        "vpc-id": lambda a: a.acl.vpc_id,
    }
)

DHCP_FILTERS: FilterSet[DhcpOptionsView] = FilterSet(
    {
        "dhcp-options-id": lambda d: d.options.id,
        "key": lambda d: list(d.options.configurations),
        "value": lambda d: [v for values in d.options.configurations.values() for v in values],
        "owner-id": lambda d: d.options.account_id,
    }
)
