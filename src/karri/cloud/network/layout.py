"""Every account's default VPC, laid out as AWS lays it out: 172.31.0.0/16, a default
subnet (/20) per zone that maps public addresses on launch, an attached internet gateway,
the main route table (the local route and 0.0.0.0/0 to the gateway), the default network
ACL (rule 100 allows all, ``*`` denies, both ways) associated with every default subnet,
and a DHCP options set with the region's internal domain and AmazonProvidedDNS.

Every id is derived from the account (``defaults.default_part_id``), so making it again
only adds what is missing (a zone added since, an account from before VPCs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from karri.cloud.network.defaults import (
    DEFAULT_VPC_CIDR,
    default_part_id,
    default_subnet_cidr,
    default_vpc_id,
    internal_domain,
)
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
)

ALL = "0.0.0.0/0"
DENY_ALL_RULE = 32767  # the ``*`` rule as the API numbers it


def dhcp_configurations(region: str) -> dict[str, list[str]]:
    return {"domain-name": [internal_domain(region)], "domain-name-servers": ["AmazonProvidedDNS"]}


def ensure_default_vpc(
    session: Session, account_id: str, zones: Sequence[str], region: str
) -> bool:
    """Add whatever the account's default VPC lacks; True when anything was added."""
    vpc_id = default_vpc_id(account_id)

    def part(prefix: str, name: str) -> str:
        return default_part_id(prefix, account_id, name)

    added: list[Any] = []

    def add(model: type, key: str, **values: Any) -> None:
        if session.get(model, key) is None:
            row = model(id=key, **values)
            session.add(row)
            added.append(row)

    dopt = part("dopt", "dhcp")
    add(DhcpOptions, dopt, account_id=account_id, configurations=dhcp_configurations(region))
    session.flush()
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
    rtb = part("rtb", "main")
    if session.get(RouteTable, rtb) is None:
        add(RouteTable, rtb, account_id=account_id, vpc_id=vpc_id)
        session.flush()
        session.add(
            Route(
                route_table_id=rtb,
                destination_cidr=DEFAULT_VPC_CIDR,
                gateway_id="local",
                origin="CreateRouteTable",
            )
        )
        session.add(
            Route(route_table_id=rtb, destination_cidr=ALL, gateway_id=igw, origin="CreateRoute")
        )
        add(RouteTableAssociation, part("rtbassoc", "main"), route_table_id=rtb, main=True)
    acl = part("acl", "default")
    if session.get(NetworkAcl, acl) is None:
        add(NetworkAcl, acl, account_id=account_id, vpc_id=vpc_id, is_default=True)
        session.flush()
        for egress in (False, True):
            for number, action in ((100, "allow"), (DENY_ALL_RULE, "deny")):
                session.add(
                    NetworkAclEntry(
                        network_acl_id=acl,
                        rule_number=number,
                        egress=egress,
                        protocol="-1",
                        rule_action=action,
                        cidr_block=ALL,
                    )
                )
    session.flush()
    for index, zone in enumerate(zones):
        subnet = part("subnet", f"subnet-{index}")
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
