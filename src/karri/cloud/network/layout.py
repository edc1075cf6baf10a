"""Every account's default VPC, laid out as AWS lays it out: 172.31.0.0/16, a default
subnet (/20) per zone that maps public addresses on launch, an attached internet gateway,
the main route table (the local route and 0.0.0.0/0 to the gateway), the default network
ACL (rule 100 allows all, ``*`` denies, both ways) associated with every default subnet,
and a DHCP options set with the region's internal domain and AmazonProvidedDNS.

Every id is derived from the account (``defaults.default_part_id``), so making it again
only adds what is missing (a zone added since, an account from before VPCs), except the
parts the account deleted. A VPC of the account's own gets the same main route table and
default network ACL (``add_main_route_table``, ``add_default_acl``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from karri.cloud.network.defaults import (
    DEFAULT_VPC_CIDR,
    default_part_id,
    default_subnet_cidr,
    default_vpc_id,
    internal_domain,
)
from karri.cloud.network.models import (
    DefaultPartDeletion,
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
)

ALL = "0.0.0.0/0"
DENY_ALL_RULE = 32767  # the ``*`` rule as the API numbers it


def dhcp_configurations(region: str) -> dict[str, list[str]]:
    return {"domain-name": [internal_domain(region)], "domain-name-servers": ["AmazonProvidedDNS"]}


def add_main_route_table(
    session: Session, account_id: str, vpc_id: str, cidr: str, table_id: str, association_id: str
) -> None:
    """A VPC's main route table: the local route of its range, associated as main."""
    session.add(RouteTable(id=table_id, account_id=account_id, vpc_id=vpc_id))
    session.flush()
    session.add(
        Route(
            route_table_id=table_id,
            destination_cidr=cidr,
            gateway_id="local",
            origin="CreateRouteTable",
        )
    )
    session.add(RouteTableAssociation(id=association_id, route_table_id=table_id, main=True))


def add_default_acl(session: Session, account_id: str, vpc_id: str, acl_id: str) -> None:
    """A VPC's default network ACL: rule 100 allows all, ``*`` denies, both ways."""
    session.add(NetworkAcl(id=acl_id, account_id=account_id, vpc_id=vpc_id, is_default=True))
    session.flush()
    for egress in (False, True):
        for number, action in ((100, "allow"), (DENY_ALL_RULE, "deny")):
            session.add(
                NetworkAclEntry(
                    network_acl_id=acl_id,
                    rule_number=number,
                    egress=egress,
                    protocol="-1",
                    rule_action=action,
                    cidr_block=ALL,
                )
            )


def ensure_default_dhcp_options(session: Session, account_id: str, region: str) -> str:
    """The account's DHCP options set every VPC starts with (made once, never deleted
    with a VPC)."""
    dopt = default_part_id("dopt", account_id, "dhcp")
    if session.get(DhcpOptions, dopt) is None:
        session.add(
            DhcpOptions(id=dopt, account_id=account_id, configurations=dhcp_configurations(region))
        )
        session.flush()
    return dopt


def ensure_default_vpc(
    session: Session, account_id: str, zones: Sequence[str], region: str
) -> bool:
    """Add whatever the account's default VPC lacks, except what the account deleted
    (``DefaultPartDeletion``); True when anything was added."""
    vpc_id = default_vpc_id(account_id)
    deleted = set(
        session.scalars(
            select(DefaultPartDeletion.resource_id).where(
                DefaultPartDeletion.account_id == account_id
            )
        )
    )
    if vpc_id in deleted:
        return False

    def part(prefix: str, name: str) -> str:
        return default_part_id(prefix, account_id, name)

    added: list[Any] = []

    def add(model: type, key: str, **values: Any) -> None:
        if session.get(model, key) is None:
            row = model(id=key, **values)
            session.add(row)
            added.append(row)

    dopt = ensure_default_dhcp_options(session, account_id, region)
    made_now = session.get(Vpc, vpc_id) is None
    add(
        Vpc,
        vpc_id,
        account_id=account_id,
        cidr_block=DEFAULT_VPC_CIDR,
        cidr_association_id=part("vpc-cidr-assoc", "cidr"),
        is_default=True,
        dhcp_options_id=dopt,
        enable_dns_support=True,
        enable_dns_hostnames=True,
    )
    session.flush()
    igw = part("igw", "igw")
    add(InternetGateway, igw, account_id=account_id, vpc_id=vpc_id, attachment_state="available")
    gateway = session.get(InternetGateway, igw)
    if made_now and gateway is not None and gateway.vpc_id is None:  # left detached before
        gateway.vpc_id, gateway.attachment_state = vpc_id, "available"
    rtb = part("rtb", "main")
    if session.get(RouteTable, rtb) is None:
        add_main_route_table(
            session, account_id, vpc_id, DEFAULT_VPC_CIDR, rtb, part("rtbassoc", "main")
        )
        attached = gateway is None or gateway.vpc_id == vpc_id
        session.add(
            Route(
                route_table_id=rtb,
                destination_cidr=ALL,
                gateway_id=igw,
                origin="CreateRoute",
                state="active" if attached else "blackhole",
            )
        )
        added.append(rtb)
    acl = part("acl", "default")
    if session.get(NetworkAcl, acl) is None:
        add_default_acl(session, account_id, vpc_id, acl)
        added.append(acl)
    session.flush()
    for index, zone in enumerate(zones):
        subnet = default_subnet_id(account_id, index)
        if subnet in deleted:
            continue
        existing = session.get(Subnet, subnet)
        if existing is not None and existing.zone != zone:  # the cloud's region was renamed
            existing.zone = zone
        add(
            Subnet,
            subnet,
            account_id=account_id,
            vpc_id=vpc_id,
            cidr_block=default_subnet_cidr(index),
            zone=zone,
            default_for_az=True,
            map_public_ip_on_launch=True,
        )
        session.flush()
        add(
            NetworkAclAssociation,
            part("aclassoc", f"subnet-{index}"),
            network_acl_id=acl,
            subnet_id=subnet,
        )
    session.flush()
    return bool(added) or bool(session.dirty)


def default_subnet_id(account_id: str, zone_index: int) -> str:
    return default_part_id("subnet", account_id, f"subnet-{zone_index}")
