"""The VPCs of every account: the default VPC made with the account (and for accounts
from before VPCs at start-up), the subnet a launch lands in, and the Describe calls of
VPCs, subnets, internet gateways, route tables, network ACLs and DHCP options."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from karri.cloud.filters import FilterSet, Page, paginate
from karri.cloud.network import interface_routes
from karri.cloud.network.addressing import usable_addresses
from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.network.layout import ensure_default_vpc
from karri.cloud.network.models import (
    DhcpOptions,
    InternetGateway,
    NetworkAcl,
    NetworkAclAssociation,
    NetworkAclEntry,
    NetworkInterface,
    Route,
    RouteTable,
    RouteTableAssociation,
    Subnet,
    Vpc,
    VpcCidrBlock,
)
from karri.cloud.network.views import (
    DHCP_FILTERS,
    GATEWAY_FILTERS,
    NETWORK_ACL_FILTERS,
    ROUTE_TABLE_FILTERS,
    SUBNET_FILTERS,
    VPC_FILTERS,
    DhcpOptionsView,
    GatewayView,
    NetworkAclView,
    RouteTableView,
    SubnetView,
    VpcView,
)
from karri.cloud.regions import Geography
from karri.cloud.tags import Taggable, Tags, owned_ids
from karri.db.engine import Database
from karri.db.models import Account
from karri.errors import CloudError, invalid_value, missing_parameter
from karri.ids import is_valid_id

V = TypeVar("V")
Filters = Sequence[Mapping[str, Any]] | None


@dataclass(frozen=True)
class Kind:
    """One kind of VPC resource: its table, id prefix, names and error codes."""

    model: Any
    prefix: str
    resource_type: str  # DescribeTags' resource-type
    label: str  # how AWS's messages name it: ``The vpc ID '…' does not exist``
    malformed: str
    not_found: str
    parameter: str = ""  # the request member naming one: ``VpcId``


VPC = Kind(Vpc, "vpc", "vpc", "vpc", "InvalidVpcID.Malformed", "InvalidVpcID.NotFound", "VpcId")
SUBNET = Kind(
    Subnet,
    "subnet",
    "subnet",
    "subnet",
    "InvalidSubnetID.Malformed",
    "InvalidSubnetID.NotFound",
    "SubnetId",
)
GATEWAY = Kind(
    InternetGateway,
    "igw",
    "internet-gateway",
    "internetGateway",
    "InvalidInternetGatewayId.Malformed",
    "InvalidInternetGatewayID.NotFound",
    "InternetGatewayId",
)
ROUTE_TABLE = Kind(
    RouteTable,
    "rtb",
    "route-table",
    "routeTable",
    "InvalidRouteTableId.Malformed",
    "InvalidRouteTableID.NotFound",
    "RouteTableId",
)
NETWORK_ACL = Kind(
    NetworkAcl,
    "acl",
    "network-acl",
    "networkAcl",
    "InvalidNetworkAclId.Malformed",
    "InvalidNetworkAclID.NotFound",
    "NetworkAclId",
)
DHCP_OPTIONS = Kind(
    DhcpOptions,
    "dopt",
    "dhcp-options",
    "dhcpOption",
    "InvalidDhcpOptionsId.Malformed",
    "InvalidDhcpOptionID.NotFound",
    "DhcpOptionsId",
)
KINDS = (VPC, SUBNET, GATEWAY, ROUTE_TABLE, NETWORK_ACL, DHCP_OPTIONS)

VPC_ATTRIBUTES = ("enableDnsSupport", "enableDnsHostnames", "enableNetworkAddressUsageMetrics")


def not_found(kind: Kind, ids: Sequence[str]) -> CloudError:
    names = ", ".join(ids)
    verb = "do not exist" if len(ids) > 1 else "does not exist"
    return CloudError(kind.not_found, f"The {kind.label} ID '{names}' {verb}")


def checked_ids(kind: Kind, ids: Sequence[str] | None) -> list[str]:
    for value in ids or ():
        if not is_valid_id(value, kind.prefix):
            raise CloudError(kind.malformed, f'Invalid id: "{value}"')
    return list(ids or ())


def taggable(kind: Kind) -> Taggable:
    return Taggable(
        kind.prefix, kind.resource_type, kind.not_found, kind.label, owned_ids(kind.model)
    )


class Vpcs:
    def __init__(self, db: Database, tags: Tags, geography: Geography) -> None:
        self.db = db
        self.tags = tags
        self.geography = geography
        for kind in KINDS:
            tags.register(taggable(kind))

    def owns(self, account_id: str, vpc_id: str) -> bool:
        """Whether the account has this VPC (what the security groups ask)."""
        with self.db.session() as session:
            vpc = session.get(Vpc, vpc_id)
            return vpc is not None and vpc.account_id == account_id

    # -- the default VPC ---------------------------------------------------------------

    def ensure_default(self, account_id: str) -> bool:
        """Make (or complete) the account's default VPC; True when anything was added."""
        zones = [z.name for z in self.geography.zones]
        with self.db.write_session() as session:
            return ensure_default_vpc(session, account_id, zones, self.geography.region.name)

    def ensure_all_defaults(self) -> int:
        """The default VPC of every account (an upgrade from before VPCs makes them here);
        how many accounts got anything."""
        with self.db.session() as session:
            accounts = list(session.scalars(select(Account.id)))
        return sum(self.ensure_default(account_id) for account_id in accounts)

    def launch_subnet(
        self, session: Session, account_id: str, subnet_id: str | None, zone: str | None
    ) -> Subnet:
        """The subnet a launch lands in: the one named (the account's, in the zone asked
        for if one was), else the default subnet of the zone."""
        if subnet_id:  # RunInstances: a malformed id is one that does not exist
            subnet = session.get(Subnet, subnet_id)
            if subnet is None or subnet.account_id != account_id:
                raise not_found(SUBNET, [subnet_id])
            if zone and zone != subnet.zone:
                raise invalid_value(
                    f"Value ({zone}) for parameter availabilityZone is invalid. Subnet "
                    f"{subnet_id} is in availability zone {subnet.zone}"
                )
            return subnet
        wanted = zone or self.geography.zones[0].name
        subnet = session.scalar(
            select(Subnet).where(
                Subnet.vpc_id == default_vpc_id(account_id),
                Subnet.zone == wanted,
                Subnet.default_for_az.is_(True),
            )
        )
        if subnet is None:
            raise CloudError(
                "VPCIdNotSpecified",
                "No default VPC for this user. GroupName is only supported "
                "for EC2-Classic and default VPC.",
            )
        return subnet

    # -- Describe ------------------------------------------------------------------------

    def _describe(
        self,
        kind: Kind,
        account_id: str,
        ids: Sequence[str] | None,
        filters: Filters,
        max_results: int | None,
        next_token: str | None,
        filter_set: FilterSet[V],
        build: Callable[[Session, list[Any], dict[str, dict[str, str]]], list[V]],
        *,
        maximum: int = 1000,
    ) -> Page[V]:
        """The account's resources of a kind (those named, each of which must exist),
        built into views, filtered, one page of them in id order."""
        ids = checked_ids(kind, ids)
        filter_set.compile(filters)  # a bad filter is refused before anything is read
        with self.db.session() as session:
            query = select(kind.model).where(kind.model.account_id == account_id)
            if ids:
                query = query.where(kind.model.id.in_(ids))
            rows = list(session.scalars(query))
            missing = sorted(set(ids) - {r.id for r in rows})
            if missing:
                raise not_found(kind, missing)
            tags = self.tags.of(session, [r.id for r in rows], account_id)
            views = build(session, rows, tags)
        matched = filter_set.apply(views, filters, lambda v: v.tags)  # type: ignore[attr-defined]
        return paginate(
            matched,
            lambda v: _id_of(v),
            max_results,
            next_token,
            kind=kind.resource_type,
            maximum=maximum,
            ids_given=bool(ids),
        )

    def describe_vpcs(
        self,
        account_id: str,
        ids=None,
        filters: Filters = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[VpcView]:
        def build(session: Session, rows: list[Vpc], tags) -> list[VpcView]:
            keys = [r.id for r in rows]
            ranges = _grouped(
                session, VpcCidrBlock, VpcCidrBlock.vpc_id, keys, VpcCidrBlock.association_id
            )
            return [VpcView(r, tags[r.id], tuple(ranges[r.id])) for r in rows]

        return self._describe(
            VPC, account_id, ids, filters, max_results, next_token, VPC_FILTERS, build
        )

    def describe_subnets(
        self,
        account_id: str,
        ids=None,
        filters: Filters = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[SubnetView]:
        zone_ids = {z.name: z.zone_id for z in self.geography.zones}
        region = self.geography.region.name

        def build(session: Session, rows: list[Subnet], tags) -> list[SubnetView]:
            used = dict(
                session.execute(
                    select(NetworkInterface.subnet_id, func.count())
                    .where(NetworkInterface.subnet_id.in_([r.id for r in rows]))
                    .group_by(NetworkInterface.subnet_id)
                ).all()
            )
            return [
                SubnetView(
                    r,
                    zone_ids.get(r.zone, ""),
                    usable_addresses(r.cidr_block) - used.get(r.id, 0),
                    f"arn:aws:ec2:{region}:{r.account_id}:subnet/{r.id}",
                    tags[r.id],
                )
                for r in rows
            ]

        return self._describe(
            SUBNET, account_id, ids, filters, max_results, next_token, SUBNET_FILTERS, build
        )

    def describe_internet_gateways(
        self,
        account_id: str,
        ids=None,
        filters: Filters = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[GatewayView]:
        return self._describe(
            GATEWAY,
            account_id,
            ids,
            filters,
            max_results,
            next_token,
            GATEWAY_FILTERS,
            lambda _s, rows, tags: [GatewayView(r, tags[r.id]) for r in rows],
        )

    def describe_route_tables(
        self,
        account_id: str,
        ids=None,
        filters: Filters = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[RouteTableView]:
        def build(session: Session, rows: list[RouteTable], tags) -> list[RouteTableView]:
            keys = [r.id for r in rows]
            routes = _grouped(session, Route, Route.route_table_id, keys, Route.id)
            associations = _grouped(
                session,
                RouteTableAssociation,
                RouteTableAssociation.route_table_id,
                keys,
                RouteTableAssociation.id,
            )
            return [
                RouteTableView(
                    r,
                    routes[r.id],
                    associations[r.id],
                    tags[r.id],
                    interface_routes.route_states(session, routes[r.id]),
                )
                for r in rows
            ]

        return self._describe(
            ROUTE_TABLE,
            account_id,
            ids,
            filters,
            max_results,
            next_token,
            ROUTE_TABLE_FILTERS,
            build,
            maximum=100,
        )

    def describe_network_acls(
        self,
        account_id: str,
        ids=None,
        filters: Filters = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[NetworkAclView]:
        def build(session: Session, rows: list[NetworkAcl], tags) -> list[NetworkAclView]:
            keys = [r.id for r in rows]
            entries = _grouped(
                session,
                NetworkAclEntry,
                NetworkAclEntry.network_acl_id,
                keys,
                NetworkAclEntry.egress,
                NetworkAclEntry.rule_number,
            )
            associations = _grouped(
                session,
                NetworkAclAssociation,
                NetworkAclAssociation.network_acl_id,
                keys,
                NetworkAclAssociation.id,
            )
            return [NetworkAclView(r, entries[r.id], associations[r.id], tags[r.id]) for r in rows]

        return self._describe(
            NETWORK_ACL,
            account_id,
            ids,
            filters,
            max_results,
            next_token,
            NETWORK_ACL_FILTERS,
            build,
            maximum=100,
        )

    def describe_dhcp_options(
        self,
        account_id: str,
        ids=None,
        filters: Filters = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[DhcpOptionsView]:
        return self._describe(
            DHCP_OPTIONS,
            account_id,
            ids,
            filters,
            max_results,
            next_token,
            DHCP_FILTERS,
            lambda _s, rows, tags: [DhcpOptionsView(r, tags[r.id]) for r in rows],
        )

    def vpc_attribute(self, account_id: str, vpc_id: str | None, name: str | None) -> bool:
        """DescribeVpcAttribute: one of the VPC's DNS (or usage metrics) switches."""
        if not vpc_id:
            raise missing_parameter("VpcId")
        if not name:
            raise missing_parameter("Attribute")
        if name not in VPC_ATTRIBUTES:
            raise invalid_value(f"Value ({name}) for parameter attribute is invalid.")
        vpc = self.describe_vpcs(account_id, [vpc_id]).items[0].vpc
        return {
            "enableDnsSupport": vpc.enable_dns_support,
            "enableDnsHostnames": vpc.enable_dns_hostnames,
            "enableNetworkAddressUsageMetrics": vpc.enable_network_address_usage_metrics,
        }[name]


def _id_of(view: Any) -> str:
    for name in ("vpc", "subnet", "gateway", "table", "acl", "options"):
        row = getattr(view, name, None)
        if row is not None:
            return row.id
    raise TypeError(view)


def _grouped(session: Session, model: Any, column: Any, keys: list[str], *order: Any):
    """The rows of ``model`` whose ``column`` is one of ``keys``, by that key."""
    grouped: dict[str, list[Any]] = defaultdict(list)
    for row in session.scalars(select(model).where(column.in_(keys)).order_by(*order)):
        grouped[getattr(row, column.key)].append(row)
    return grouped
