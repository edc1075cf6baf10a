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
    """``local`` or the internet gateway's id."""
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


class NetworkAclAssociation(Base):
    """Which network ACL a subnet has (every subnet has exactly one)."""

    __tablename__ = "network_acl_associations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    network_acl_id: Mapped[str] = mapped_column(ForeignKey("network_acls.id"), index=True)
    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id"), unique=True)


class NetworkInterface(Base):
    """A network interface (today: an instance's primary one) and its attachment. Its
    private address is unique within its VPC, not across the cloud."""

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
