"""IAM's tables (migration branch ``e001``, Eucalyptus's Euare): everything keyed by
account, so one account's entities are never found from another.

Names are unique per account without regard to case, as IAM's are (``name_key`` is the
lower-cased name). Documents are stored as the text the client sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from karri.db.base import Base, UTCDateTime, utcnow


class _Named:
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    name_key: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(String(512), default="/")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IamUser(_Named, Base):
    __tablename__ = "iam_users"
    __table_args__ = (UniqueConstraint("account_id", "name_key"),)

    tags: Mapped[str] = mapped_column(Text, default="{}")  # JSON object


class IamGroup(_Named, Base):
    __tablename__ = "iam_groups"
    __table_args__ = (UniqueConstraint("account_id", "name_key"),)


class IamGroupMember(Base):
    __tablename__ = "iam_group_members"

    group_id: Mapped[str] = mapped_column(ForeignKey("iam_groups.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("iam_users.id"), primary_key=True, index=True)


class IamRole(_Named, Base):
    __tablename__ = "iam_roles"
    __table_args__ = (UniqueConstraint("account_id", "name_key"),)

    trust_policy: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(1000), default="")
    max_session_duration: Mapped[int] = mapped_column(Integer, default=3600)
    tags: Mapped[str] = mapped_column(Text, default="{}")


class IamManagedPolicy(_Named, Base):
    __tablename__ = "iam_policies"
    __table_args__ = (UniqueConstraint("account_id", "name_key"),)

    description: Mapped[str] = mapped_column(String(1000), default="")
    default_version: Mapped[str] = mapped_column(String(16), default="v1")
    next_version: Mapped[int] = mapped_column(Integer, default=2)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tags: Mapped[str] = mapped_column(Text, default="{}")  # migration e002


class IamPolicyVersion(Base):
    __tablename__ = "iam_policy_versions"

    policy_id: Mapped[str] = mapped_column(ForeignKey("iam_policies.id"), primary_key=True)
    version_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IamAttachment(Base):
    """A managed policy (by ARN: customer managed or one of AWS's built-ins) attached to a
    user, group or role (``entity_id``)."""

    __tablename__ = "iam_attachments"

    entity_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    policy_arn: Mapped[str] = mapped_column(String(2048), primary_key=True, index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    entity_kind: Mapped[str] = mapped_column(String(8))  # user, group, role


class IamInlinePolicy(Base):
    __tablename__ = "iam_inline_policies"

    entity_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    document: Mapped[str] = mapped_column(Text)


class IamAccessKey(Base):
    __tablename__ = "iam_access_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("iam_users.id"), index=True)
    secret: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_service: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_used_region: Mapped[str | None] = mapped_column(String(32), nullable=True)


class IamLoginProfile(Base):
    """A user's console password (scrypt), for the web console to come."""

    __tablename__ = "iam_login_profiles"

    user_id: Mapped[str] = mapped_column(ForeignKey("iam_users.id"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    reset_required: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IamInstanceProfile(_Named, Base):
    __tablename__ = "iam_instance_profiles"
    __table_args__ = (UniqueConstraint("account_id", "name_key"),)

    role_id: Mapped[str | None] = mapped_column(ForeignKey("iam_roles.id"), nullable=True)
    tags: Mapped[str] = mapped_column(Text, default="{}")  # migration e002


class IamAccountAlias(Base):
    __tablename__ = "iam_account_aliases"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(63), unique=True)


class IamSession(Base):
    """Temporary credentials (STS): the ``ASIA…`` key, its secret and token, whose they
    are (a role's session, or a user's or root's GetSessionToken) and until when."""

    __tablename__ = "iam_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    secret: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(Text)
    role_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    session_name: Mapped[str] = mapped_column(String(64), default="")
    session_policies: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of texts
    source_identity: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tags: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
