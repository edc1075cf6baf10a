"""IAM instance profiles associated with instances (migration ``p001``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from karri.db.base import Base, UTCDateTime, utcnow


class ProfileAssociation(Base):
    """One association (``iip-assoc-…``) of an instance profile with an instance: at most
    one per instance is ``associated``; ended ones are ``disassociated``, kept a while.
    The profile's ARN and id are kept as they were, as EC2 shows them."""

    __tablename__ = "instance_profile_associations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    instance_id: Mapped[str] = mapped_column(String(32), index=True)
    profile_id: Mapped[str] = mapped_column(String(32))
    profile_name: Mapped[str] = mapped_column(String(128))
    profile_arn: Mapped[str] = mapped_column(String(2048))
    state: Mapped[str] = mapped_column(String(16), default="associated")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
