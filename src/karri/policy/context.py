"""The request context: who asks, for which action, on which resources, with which keys.

Condition keys are case-insensitive and may hold several values (``aws:TagKeys``); they are
kept lower-cased, each with a tuple of values. The principal's own keys (``aws:username``,
``aws:userid``, ``aws:PrincipalArn``, ``aws:PrincipalAccount``, ``aws:PrincipalType``,
``aws:PrincipalTag/…``) are derived from it, the way AWS fills them for each kind of caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from .arn import assumed_role_arn, iam_arn, root_arn

if TYPE_CHECKING:
    from .document import Policy

KeyValue = str | bool | int | float | Iterable[str]


class PrincipalType(StrEnum):
    """The values of ``aws:PrincipalType`` (and ``Service`` for an AWS service, which
    assumes roles through their trust policies)."""

    ACCOUNT = "Account"
    USER = "User"
    ASSUMED_ROLE = "AssumedRole"
    ANONYMOUS = "Anonymous"
    SERVICE = "Service"


@dataclass(frozen=True)
class Principal:
    """The caller. Build it with the class methods, which fill the ARNs as AWS does."""

    type: PrincipalType
    arn: str
    account: str
    userid: str = ""
    username: str | None = None
    role_arn: str | None = None  # a role session's role
    service: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    canonical_id: str | None = None  # S3's id of the caller's account, when it has one

    @classmethod
    def root(cls, account: str) -> Principal:
        return cls(PrincipalType.ACCOUNT, root_arn(account), account, userid=account)

    @classmethod
    def user(
        cls,
        account: str,
        name: str,
        userid: str,
        path: str = "/",
        tags: Mapping[str, str] | None = None,
    ) -> Principal:
        arn = iam_arn(account, "user", name, path)
        return cls(PrincipalType.USER, arn, account, userid, name, tags=dict(tags or {}))

    @classmethod
    def role_session(
        cls,
        account: str,
        role_name: str,
        session_name: str,
        role_id: str,
        path: str = "/",
        tags: Mapping[str, str] | None = None,
    ) -> Principal:
        """A caller with credentials from AssumeRole: its ARN names the session, its
        ``aws:PrincipalArn`` the role, its ``aws:userid`` is ``ROLEID:session``."""
        return cls(
            PrincipalType.ASSUMED_ROLE,
            assumed_role_arn(account, role_name, session_name),
            account,
            f"{role_id}:{session_name}",
            role_arn=iam_arn(account, "role", role_name, path),
            tags=dict(tags or {}),
        )

    @classmethod
    def anonymous(cls) -> Principal:
        return cls(PrincipalType.ANONYMOUS, "*", "")

    @classmethod
    def aws_service(cls, name: str) -> Principal:
        """An AWS service (``ec2.amazonaws.com``) acting for an account, as when EC2 gets an
        instance profile's role credentials."""
        return cls(PrincipalType.SERVICE, name, "", service=name)

    @property
    def principal_arn(self) -> str:
        """``aws:PrincipalArn``: the role's ARN for a role session, else the caller's."""
        return self.role_arn or self.arn

    @cached_property
    def normalised_keys(self) -> dict[str, tuple[str, ...]]:
        """`condition_keys` as `ContextKeys` keeps them, made once per principal."""
        return normalised(self.condition_keys())

    def condition_keys(self) -> dict[str, str]:
        """The global keys that describe the caller, as AWS fills them for its kind."""
        if self.type is PrincipalType.ANONYMOUS:
            return {"aws:PrincipalType": self.type.value}
        if self.type is PrincipalType.SERVICE:
            return {"aws:PrincipalServiceName": self.service or ""}
        keys = {
            "aws:PrincipalArn": self.principal_arn,
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalType": self.type.value,
            "aws:userid": self.userid,
        }
        if self.username is not None:
            keys["aws:username"] = self.username
        for key, value in self.tags.items():
            keys[f"aws:PrincipalTag/{key}"] = value
        return keys


class ContextKeys:
    """Condition keys, case-insensitive, each with one or more values."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, KeyValue] | None = None) -> None:
        self._values = normalised(values) if values else {}

    @classmethod
    def of(cls, values: dict[str, tuple[str, ...]]) -> ContextKeys:
        """Keys already lower-cased with tuples of strings (`normalised`), taken as they are."""
        keys = cls()
        keys._values = values
        return keys

    def get(self, key: str) -> tuple[str, ...] | None:
        """The values of ``key`` (lower case), None when the request does not have it."""
        return self._values.get(key)

    def single(self, key: str) -> str | None:
        """The value of a single-valued key, for a policy variable."""
        values = self._values.get(key)
        return values[0] if values is not None and len(values) == 1 else None

    def with_keys(self, more: Mapping[str, KeyValue]) -> ContextKeys:
        """These keys with ``more`` added (and winning)."""
        return ContextKeys.of({**self._values, **normalised(more)})


def normalised(values: Mapping[str, KeyValue]) -> dict[str, tuple[str, ...]]:
    """Keys lower-cased, values as tuples of strings."""
    return {
        key.lower(): (value,) if type(value) is str else _as_strings(value)
        for key, value in values.items()
    }


def _as_strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, str | int | float):
        return (str(value),)
    return tuple(_as_strings(v)[0] for v in value)


@dataclass(frozen=True)
class Resource:
    """One resource a request touches: its ARN (``*`` for actions without resource-level
    permissions), its own condition keys (``aws:ResourceTag/…``, ``ec2:InstanceType``), the
    account that owns it when that may not be the caller's (None: the caller's), and its
    resource-based policy (a bucket policy; a role's trust policy, which must name the
    caller: ``policy_must_grant``)."""

    arn: str = "*"
    keys: Mapping[str, KeyValue] = field(default_factory=dict)
    account: str | None = None
    policy: Policy | None = None
    policy_must_grant: bool = False


@dataclass(frozen=True)
class Request:
    """One call to authorize: every resource in it must be allowed."""

    principal: Principal
    action: str  # service:Action, as in policies (case-insensitive)
    resources: tuple[Resource, ...] = (Resource(),)
    keys: Mapping[str, KeyValue] = field(default_factory=dict)

    def context(self) -> ContextKeys:
        """The principal's keys and the request's (the request's win)."""
        return ContextKeys.of({**self.principal.normalised_keys, **normalised(self.keys)})


def environment_keys(
    *,
    now: datetime | None = None,
    source_ip: str | None = None,
    secure_transport: bool = False,
    region: str | None = None,
    token_issue_time: datetime | None = None,
) -> dict[str, KeyValue]:
    """The global keys that describe the call itself: ``aws:CurrentTime``,
    ``aws:EpochTime``, ``aws:SecureTransport``, ``aws:SourceIp``, ``aws:RequestedRegion``,
    ``aws:TokenIssueTime`` (temporary credentials only)."""
    now = now or datetime.now(UTC)
    keys: dict[str, KeyValue] = {
        "aws:CurrentTime": _iso(now),
        "aws:EpochTime": str(int(now.timestamp())),
        "aws:SecureTransport": secure_transport,
    }
    if source_ip is not None:
        keys["aws:SourceIp"] = source_ip
    if region is not None:
        keys["aws:RequestedRegion"] = region
    if token_issue_time is not None:
        keys["aws:TokenIssueTime"] = _iso(token_issue_time)
    return keys


def tag_keys(prefix: str, tags: Mapping[str, str]) -> dict[str, str]:
    """``{prefix/key: value}`` for each tag: ``tag_keys("aws:ResourceTag", tags)``."""
    return {f"{prefix}/{key}": value for key, value in tags.items()}


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _iso_of_second(int(moment.timestamp()))


@lru_cache(maxsize=4)
def _iso_of_second(second: int) -> str:
    """Most calls of a second share their time: its text is made once."""
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
