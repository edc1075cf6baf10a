"""The VPCs an account makes and deletes: CreateVpc, DeleteVpc, ModifyVpcAttribute,
CreateDefaultVpc. A new VPC gets, in the same transaction, its main route table (the
local route only), its default network ACL, its ``default`` security group and the
account's default DHCP options; DeleteVpc removes those with it and refuses
(``DependencyViolation``) while anything else is in the VPC."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from karri.cloud.network.cidrs import vpc_cidr
from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.network.layout import (
    add_default_acl,
    add_main_route_table,
    ensure_default_dhcp_options,
    ensure_default_vpc,
)
from karri.cloud.network.models import (
    DefaultPartDeletion,
    InternetGateway,
    NetworkAcl,
    NetworkAclEntry,
    NetworkInterface,
    Route,
    RouteTable,
    RouteTableAssociation,
    Subnet,
    Vpc,
    VpcCidrBlock,
)
from karri.cloud.network.views import VpcView
from karri.cloud.network.vpcs import VPC, Kind, Vpcs, checked_ids, not_found
from karri.cloud.regions import Geography
from karri.cloud.tags import Tags
from karri.db.engine import Database
from karri.errors import CloudError, invalid_combination, invalid_value, missing_parameter
from karri.ids import new_id

MAX_VPCS = 5  # per account and region, the default VPC included (AWS's quota)
TENANCIES = ("default", "dedicated")
ATTRIBUTES = {
    "EnableDnsSupport": "enable_dns_support",
    "EnableDnsHostnames": "enable_dns_hostnames",
    "EnableNetworkAddressUsageMetrics": "enable_network_address_usage_metrics",
}


class VpcGroups(Protocol):
    """The security groups as a VPC's life sees them (``groups.SecurityGroups``)."""

    def add_default(
        self, session: Session, account_id: str, vpc_id: str, group_id: str | None = None
    ) -> str: ...
    def has_own_groups(self, session: Session, vpc_id: str) -> bool: ...
    def drop_default(self, session: Session, vpc_id: str) -> None: ...


def dependency(label: str, resource_id: str) -> CloudError:
    return CloudError(
        "DependencyViolation",
        f"The {label} '{resource_id}' has dependencies and cannot be deleted.",
    )


def owned(session: Session, kind: Kind, account_id: str, resource_id: str | None) -> Any:
    """The account's resource of that kind and id (another account's does not exist);
    its parameter (``VpcId``, ``SubnetId``) is required."""
    if not resource_id:
        raise missing_parameter(kind.parameter)
    checked_ids(kind, [resource_id])
    row = session.get(kind.model, resource_id)
    if row is None or row.account_id != account_id:
        raise not_found(kind, [resource_id])
    return row


def owned_vpc(session: Session, account_id: str, vpc_id: str | None) -> Vpc:
    return owned(session, VPC, account_id, vpc_id)


class VpcChanges:
    def __init__(
        self,
        db: Database,
        tags: Tags,
        geography: Geography,
        vpcs: Vpcs,
        groups: VpcGroups,
        default_group_id: Any = None,
        dns_changed: Callable[[str], None] = lambda _vpc_id: None,
    ) -> None:
        """``default_group_id(account_id)`` is the stable id of the default VPC's
        ``default`` group (``instances.groups.default_group``); ``dns_changed`` is told
        the VPC id after a change of its DNS attributes (committed)."""
        self.db = db
        self.tags = tags
        self.geography = geography
        self.vpcs = vpcs
        self.groups = groups
        self.default_group_id = default_group_id or (lambda _account: None)
        self.dns_changed = dns_changed

    def create_vpc(
        self,
        account_id: str,
        cidr_block: str | None,
        *,
        tenancy: str | None = None,
        ipv6: bool = False,
        tags: Mapping[str, str] | None = None,
    ) -> VpcView:
        if not cidr_block:
            raise missing_parameter("CidrBlock")
        network = vpc_cidr(cidr_block)
        if ipv6:  # karri's guests have no IPv6 (networking.md): no pool to give from
            raise CloudError(
                "InvalidParameterValue",
                "Amazon-provided IPv6 CIDR blocks are not available in this region.",
            )
        tenancy = tenancy or "default"
        if tenancy not in TENANCIES:
            raise invalid_value(f"Value ({tenancy}) for parameter instanceTenancy is invalid.")
        region = self.geography.region.name
        with self.db.write_session() as session:
            self._check_room(session, account_id)
            vpc_id = new_id("vpc", lambda i: session.get(Vpc, i) is not None)
            session.add(
                Vpc(
                    id=vpc_id,
                    account_id=account_id,
                    cidr_block=str(network),
                    cidr_association_id=new_id("vpc-cidr-assoc"),
                    dhcp_options_id=ensure_default_dhcp_options(session, account_id, region),
                    instance_tenancy=tenancy,
                    enable_dns_support=True,
                    enable_dns_hostnames=False,
                )
            )
            session.flush()
            add_main_route_table(
                session,
                account_id,
                vpc_id,
                str(network),
                new_id("rtb", lambda i: session.get(RouteTable, i) is not None),
                new_id("rtbassoc"),
            )
            add_default_acl(
                session,
                account_id,
                vpc_id,
                new_id("acl", lambda i: session.get(NetworkAcl, i) is not None),
            )
            self.groups.add_default(session, account_id, vpc_id)
            if tags:
                self.tags.put(session, account_id, [vpc_id], dict(tags))
        return self.vpcs.describe_vpcs(account_id, [vpc_id]).items[0]

    def create_default_vpc(self, account_id: str) -> VpcView:
        """The default VPC again, after the account deleted it (as AWS lays it out)."""
        vpc_id = default_vpc_id(account_id)
        zones = [z.name for z in self.geography.zones]
        with self.db.write_session() as session:
            if session.get(Vpc, vpc_id) is not None:
                raise CloudError(
                    "DefaultVpcAlreadyExists",
                    "A Default VPC already exists for this account in this region.",
                )
            self._check_room(session, account_id)
            session.execute(
                delete(DefaultPartDeletion).where(DefaultPartDeletion.account_id == account_id)
            )
            session.flush()
            ensure_default_vpc(session, account_id, zones, self.geography.region.name)
            self.groups.add_default(session, account_id, vpc_id, self.default_group_id(account_id))
        return self.vpcs.describe_vpcs(account_id, [vpc_id]).items[0]

    def delete_vpc(self, account_id: str, vpc_id: str | None) -> None:
        with self.db.write_session() as session:
            vpc = owned_vpc(session, account_id, vpc_id)
            self._check_empty(session, vpc)
            tables = list(session.scalars(select(RouteTable.id).where(RouteTable.vpc_id == vpc.id)))
            acls = list(session.scalars(select(NetworkAcl.id).where(NetworkAcl.vpc_id == vpc.id)))
            session.execute(delete(Route).where(Route.route_table_id.in_(tables)))
            session.execute(
                delete(RouteTableAssociation).where(
                    RouteTableAssociation.route_table_id.in_(tables)
                )
            )
            session.execute(delete(RouteTable).where(RouteTable.id.in_(tables)))
            session.execute(delete(NetworkAclEntry).where(NetworkAclEntry.network_acl_id.in_(acls)))
            session.execute(delete(NetworkAcl).where(NetworkAcl.id.in_(acls)))
            self.groups.drop_default(session, vpc.id)
            session.execute(delete(VpcCidrBlock).where(VpcCidrBlock.vpc_id == vpc.id))
            self.tags.forget(session, [vpc.id, *tables, *acls])
            if vpc.is_default:  # not made again at the next start
                session.add(DefaultPartDeletion(resource_id=vpc.id, account_id=account_id))
            session.delete(vpc)

    def modify_vpc_attribute(
        self, account_id: str, vpc_id: str | None, values: Mapping[str, Any]
    ) -> None:
        """One attribute per call (``{"EnableDnsSupport": True}``), as AWS has it."""
        given = {k: v for k, v in values.items() if v is not None}
        if len(given) > 1:
            raise invalid_combination(
                "Fields for multiple attribute types specified: " + ", ".join(sorted(given))
            )
        if not given:
            raise missing_parameter("EnableDnsSupport")
        ((name, value),) = given.items()
        if not isinstance(value, bool):
            raise invalid_value(f"Value ({value}) for parameter {name} is invalid.")
        with self.db.write_session() as session:
            vpc = owned_vpc(session, account_id, vpc_id)
            setattr(vpc, ATTRIBUTES[name], value)
            changed_vpc = vpc.id
        if name in ("EnableDnsSupport", "EnableDnsHostnames"):
            self.dns_changed(changed_vpc)

    @staticmethod
    def _check_room(session: Session, account_id: str) -> None:
        count = session.scalar(select(func.count()).where(Vpc.account_id == account_id))
        if (count or 0) >= MAX_VPCS:
            raise CloudError("VpcLimitExceeded", "The maximum number of VPCs has been reached.")

    def _check_empty(self, session: Session, vpc: Vpc) -> None:
        """AWS's dependencies of a VPC, in the order it names them: subnets, an attached
        internet gateway, security groups other than ``default``, route tables other than
        the main one, network ACLs other than the default one, network interfaces."""

        def any_of(model: Any, *where: Any) -> bool:
            found = session.scalar(select(model.id).where(model.vpc_id == vpc.id, *where))
            return found is not None

        main = select(RouteTableAssociation.route_table_id).where(
            RouteTableAssociation.main.is_(True)
        )
        if (
            any_of(Subnet)
            or any_of(InternetGateway)
            or self.groups.has_own_groups(session, vpc.id)
            or any_of(RouteTable, RouteTable.id.not_in(main))
            or any_of(NetworkAcl, NetworkAcl.is_default.is_(False))
            or any_of(NetworkInterface)
        ):
            raise dependency("vpc", vpc.id)
