"""Elastic IP addresses: an account's allocation of a public address of the cloud's
pool, and its association with an instance's network interface."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from karri.db.base import Base, UTCDateTime, utcnow
from karri.ids import new_id


class ElasticIp(Base):
    __tablename__ = "elastic_ips"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """The allocation id (``eipalloc-…``)."""
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    public_ip: Mapped[str] = mapped_column(String(15), unique=True)
    domain: Mapped[str] = mapped_column(String(16), default="vpc")
    network_border_group: Mapped[str] = mapped_column(String(64))
    association_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    instance_id: Mapped[str | None] = mapped_column(String(32), index=True)
    network_interface_id: Mapped[str | None] = mapped_column(String(32), index=True)
    private_ip: Mapped[str | None] = mapped_column(String(15))
    disassociated_id: Mapped[str | None] = mapped_column(String(32), index=True)
    """The association a DisassociateAddress ended, until the next association: repeating
    that DisassociateAddress succeeds (AWS calls it idempotent)."""
    allocated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def associate(session: Session, address: ElasticIp, interface_id: str, private_ip: str) -> str:
    """Associate ``address`` with that private address of an interface under a new
    association id (returned); a retry of an older disassociation is NotFound from now."""
    address.association_id = new_id(
        "eipassoc",
        lambda i: (
            session.scalar(select(ElasticIp.id).where(ElasticIp.association_id == i)) is not None
        ),
    )
    address.disassociated_id = None
    address.network_interface_id = interface_id
    address.private_ip = private_ip
    return address.association_id


def associated(session: Session, instance_ids: Sequence[str]) -> dict[str, ElasticIp]:
    """The elastic IP associated with each of these instances (those that have one)."""
    if not instance_ids:
        return {}
    rows = session.scalars(select(ElasticIp).where(ElasticIp.instance_id.in_(list(instance_ids))))
    return {row.instance_id: row for row in rows if row.instance_id}
