"""What the IAM service answers: plain values, no AWS member names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class EntityView:
    """A user, group, role or instance profile."""

    kind: str
    id: str
    name: str
    path: str
    arn: str
    created: datetime
    tags: dict[str, str] = field(default_factory=dict)
    trust_policy: str | None = None  # roles
    description: str | None = None
    max_session_duration: int | None = None
    roles: tuple[EntityView, ...] = ()  # instance profiles


@dataclass(frozen=True)
class PolicyView:
    arn: str
    name: str
    id: str
    path: str
    default_version: str
    attachments: int
    created: datetime
    updated: datetime
    description: str = ""
    document: str | None = None  # the default version's, when asked
    tags: dict[str, str] = field(default_factory=dict)  # customer managed only


@dataclass(frozen=True)
class VersionView:
    version_id: str
    document: str
    is_default: bool
    created: datetime


@dataclass(frozen=True)
class KeyView:
    user_name: str
    access_key_id: str
    active: bool
    created: datetime
    secret: str | None = None  # CreateAccessKey only: shown once
    last_used: datetime | None = None
    last_service: str | None = None
    last_region: str | None = None


@dataclass(frozen=True)
class AttachedPolicy:
    name: str
    arn: str
