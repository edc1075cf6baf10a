"""The network model's tables: VPCs and their parts, and network interfaces.

Ids are AWS-shaped (``vpc-``, ``subnet-``, ``igw-``, ``rtb-``, ``acl-``, ``dopt-``,
``eni-``); a default VPC's are derived from its account (``defaults.py``), so that
creating it again finds the same rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from karri.db.base import Base, UTCDateTime, utcnow


class DhcpOptions(Base):
    __tablename__ = "dhcp_options"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    configurations: Mapped[dict] = mapped_column(JSON, default=dict)
    """Option name (``domain-name``) to its values, in AWS's order."""


class Vpc(Base):
    __tablename__ = "vpcs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    cidr_block: Mapped[str] = mapped_column(String(18))
    cidr_association_id: Mapped[str] = mapped_column(String(64))
    is_default: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16), default="available")
    dhcp_options_id: Mapped[str | None] = mapped_column(ForeignKey("dhcp_options.id"))
    instance_tenancy: Mapped[str] = mapped_column(String(16), default="default")
    enable_dns_support: Mapped[bool] = mapped_column(default=True)
    enable_dns_hostnames: Mapped[bool] = mapped_column(default=False)
    enable_network_address_usage_metrics: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    masquerade_ip: Mapped[str | None] = mapped_column(String(15), unique=True)
    """The pool address the VPC's instances without a public IP go out as (only with a
    ``--public-interface``; ``Addresses.masquerade``); given back with the VPC."""


class Subnet(Base):
    __tablename__ = "subnets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    vpc_id: Mapped[str] = mapped_column(ForeignKey("vpcs.id"), index=True)
    cidr_block: Mapped[str] = mapped_column(String(18))
    zone: Mapped[str] = mapped_column(String(64))
    default_for_az: Mapped[bool] = mapped_column(default=False)
    map_public_ip_on_launch: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16), default="available")


class InternetGateway(Base):
    """An internet gateway and its attachment (AWS's has at most one VPC)."""

    __tablename__ = "internet_gateways"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    vpc_id: Mapped[str | None] = mapped_column(ForeignKey("vpcs.id"), index=True)
    attachment_state: Mapped[str | None] = mapped_column(String(16))


class RouteTable(Base):
    __tablename__ = "route_tables"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    vpc_id: Mapped[str] = mapped_column(ForeignKey("vpcs.id"), index=True)


class Route(Base):
    __tablename__ = "routes"
    __table_args__ = (UniqueConstraint("route_table_id", "destination_cidr"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    route_table_id: Mapped[str] = mapped_column(ForeignKey("route_tables.id"), index=True)
    destination_cidr: Mapped[str] = mapped_column(String(18))
    gateway_id: Mapped[str] = mapped_column(String(32))
    """``local``, the internet gateway's id, or empty (a route to an interface or a NAT
    gateway)."""
    network_interface_id: Mapped[str | None] = mapped_column(String(32), index=True)
    instance_id: Mapped[str | None] = mapped_column(String(32))
    """Given when the route was made to an instance (its primary interface is the target)."""
    nat_gateway_id: Mapped[str | None] = mapped_column(String(32), index=True)
    origin: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="active")


class RouteTableAssociation(Base):
    """A route table's association: the VPC's main one (no subnet) or a subnet's."""

    __tablename__ = "route_table_associations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    route_table_id: Mapped[str] = mapped_column(ForeignKey("route_tables.id"), index=True)
    subnet_id: Mapped[str | None] = mapped_column(ForeignKey("subnets.id"), unique=True)
    main: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16), default="associated")


class NetworkAcl(Base):
    __tablename__ = "network_acls"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    vpc_id: Mapped[str] = mapped_column(ForeignKey("vpcs.id"), index=True)
    is_default: Mapped[bool] = mapped_column(default=False)


class NetworkAclEntry(Base):
    __tablename__ = "network_acl_entries"
    __table_args__ = (UniqueConstraint("network_acl_id", "egress", "rule_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    network_acl_id: Mapped[str] = mapped_column(ForeignKey("network_acls.id"), index=True)
    rule_number: Mapped[int] = mapped_column(Integer)
    egress: Mapped[bool] = mapped_column()
    protocol: Mapped[str] = mapped_column(String(8))
    """``-1`` (all) or an IP protocol number."""
    rule_action: Mapped[str] = mapped_column(String(8))
    cidr_block: Mapped[str] = mapped_column(String(18))
    port_from: Mapped[int | None] = mapped_column(Integer)
    port_to: Mapped[int | None] = mapped_column(Integer)
    """The destination ports (TCP, UDP), both ways, as on AWS."""
    icmp_type: Mapped[int | None] = mapped_column(Integer)
    icmp_code: Mapped[int | None] = mapped_column(Integer)
    """ICMP's type and code; -1: any."""


class NetworkAclAssociation(Base):
    """Which network ACL a subnet has (every subnet has exactly one)."""

    __tablename__ = "network_acl_associations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    network_acl_id: Mapped[str] = mapped_column(ForeignKey("network_acls.id"), index=True)
    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id"), unique=True)


class NetworkInterface(Base):
    """A network interface and its attachment. Its private address is unique within its
    VPC, not across the cloud (its secondary ones too: ``InterfaceAddress``)."""

    __tablename__ = "network_interfaces"
    __table_args__ = (UniqueConstraint("vpc_id", "private_ip"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    vpc_id: Mapped[str] = mapped_column(ForeignKey("vpcs.id"), index=True)
    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id"), index=True)
    zone: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(17), unique=True)
    private_ip: Mapped[str] = mapped_column(String(15))
    description: Mapped[str] = mapped_column(String(255), default="")
    interface_type: Mapped[str] = mapped_column(String(32), default="interface")
    status: Mapped[str] = mapped_column(String(16), default="in-use")
    source_dest_check: Mapped[bool] = mapped_column(default=True)
    instance_id: Mapped[str | None] = mapped_column(String(32), index=True)
    attachment_id: Mapped[str | None] = mapped_column(String(32))
    device_index: Mapped[int | None] = mapped_column(Integer)
    attachment_status: Mapped[str | None] = mapped_column(String(16))
    attach_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delete_on_termination: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    security_groups: Mapped[list | None] = mapped_column(JSON)
    """Its own groups (``instances.groups.stored``'s shape); None on an instance's primary
    interface, whose groups are the instance's."""
    client_token: Mapped[str | None] = mapped_column(String(64))


class InterfaceAddress(Base):
    """A secondary private address of an interface (AssignPrivateIpAddresses), unique
    within its VPC as the interfaces' primary ones are."""

    __tablename__ = "network_interface_addresses"
    __table_args__ = (UniqueConstraint("vpc_id", "private_ip"),)

    network_interface_id: Mapped[str] = mapped_column(
        ForeignKey("network_interfaces.id", ondelete="CASCADE"), primary_key=True
    )
    private_ip: Mapped[str] = mapped_column(String(15), primary_key=True)
    vpc_id: Mapped[str] = mapped_column(ForeignKey("vpcs.id"), index=True)


class DefaultPartDeletion(Base):
    """A part of an account's default VPC the account deleted (the VPC itself, or one of
    its default subnets): the start-up's ``ensure_default_vpc`` must not make it again.
    CreateDefaultVpc / CreateDefaultSubnet remove the mark."""

    __tablename__ = "default_part_deletions"

    resource_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)


class VpcCidrBlock(Base):
    """A secondary IPv4 range of a VPC (AssociateVpcCidrBlock); the primary one is the
    VPC's own ``cidr_block``."""

    __tablename__ = "vpc_cidr_blocks"

    association_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vpc_id: Mapped[str] = mapped_column(ForeignKey("vpcs.id"), index=True)
    cidr_block: Mapped[str] = mapped_column(String(18))


class NatGateway(Base):
    """A NAT gateway (``nat-``): its subnet, its interface (``eni-``, its private
    address) and, when public, its elastic IP. ``state`` is AWS's: ``pending`` until the
    node has it in force, ``available``, ``failed`` (``failure_code``), ``deleting``
    until the node has let it go, ``deleted`` (kept an hour, as AWS shows them)."""

    __tablename__ = "nat_gateways"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    vpc_id: Mapped[str] = mapped_column(String(32), index=True)
    subnet_id: Mapped[str] = mapped_column(String(32), index=True)
    connectivity_type: Mapped[str] = mapped_column(String(16), default="public")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    allocation_id: Mapped[str | None] = mapped_column(String(32))
    public_ip: Mapped[str | None] = mapped_column(String(15))
    association_id: Mapped[str | None] = mapped_column(String(32))
    network_interface_id: Mapped[str | None] = mapped_column(String(32))
    private_ip: Mapped[str | None] = mapped_column(String(15))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(255))
    client_token: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
