"""The nodes' tables: each joined node, and the one-time tokens a node joins with."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from karri.db.base import Base, UTCDateTime, utcnow


class NodeRow(Base):
    """A node that joined: its certificate's serial is what it is known by from then on."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    zone: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(40), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What its last heartbeat said, observed on its host (None: it never sent one)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    interval: Mapped[float] = mapped_column(Float, default=10.0)
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mib: Mapped[int] = mapped_column(Integer, default=0)
    # Where its agent answers the cloud (https://host:port), from its heartbeats
    agent_url: Mapped[str | None] = mapped_column(String(255), nullable=True)


class JoinToken(Base):
    """A one-time join token: its secret is kept as a SHA-256 only."""

    __tablename__ = "node_join_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_by: Mapped[str | None] = mapped_column(String(63), nullable=True)


class GatewayRow(Base):
    """A front end's node gateway, as nodes reach it, while it announces itself."""

    __tablename__ = "node_gateways"

    url: Mapped[str] = mapped_column(String(255), primary_key=True)  # https://host:port
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
