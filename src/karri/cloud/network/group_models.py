"""Security groups and their rules as the cloud controller records them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from karri.db.base import Base, UTCDateTime, utcnow


class SecurityGroupRow(Base):
    """A security group of one VPC; its name is unique within the VPC."""

    __tablename__ = "security_groups"
    __table_args__ = (UniqueConstraint("vpc_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    vpc_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SecurityGroupRuleRow(Base):
    """One rule (``sgr-``): a direction, a protocol and port range, and exactly one peer
    (an IPv4 or IPv6 CIDR, a group of the same VPC, or a prefix list). ``seq`` keeps the
    order rules were added in, which is the order AWS lists them in."""

    __tablename__ = "security_group_rules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, index=True)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    egress: Mapped[bool] = mapped_column(default=False)
    protocol: Mapped[str] = mapped_column(String(8))
    from_port: Mapped[int] = mapped_column(Integer, default=-1)
    to_port: Mapped[int] = mapped_column(Integer, default=-1)
    cidr_ipv4: Mapped[str | None] = mapped_column(String(18))
    cidr_ipv6: Mapped[str | None] = mapped_column(String(43))
    peer_group_id: Mapped[str | None] = mapped_column(String(32), index=True)
    peer_owner_id: Mapped[str | None] = mapped_column(String(12))
    prefix_list_id: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(String(255))
