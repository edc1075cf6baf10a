"""Security groups as instances carry them (a name and an id), and the id of each
account's ``default`` group."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class SecurityGroup:
    name: str
    group_id: str


class WithGroups(Protocol):
    """An instance row, ORM object or plain row: ``security_groups`` as stored."""

    @property
    def security_groups(self) -> Sequence[Any]: ...


def default_group(account_id: str) -> SecurityGroup:
    """Every account's ``default`` security group, with a stable id."""
    digest = hashlib.sha256(f"default-sg:{account_id}".encode()).hexdigest()[:8]
    return SecurityGroup("default", f"sg-{digest}")


# The JSON column keeps each group under the names EC2 shows (rows written before the
# groups were typed read the same).
_NAME, _ID = "GroupName", "GroupId"


def stored(groups: Iterable[SecurityGroup]) -> list[dict[str, str]]:
    """The groups as the ``security_groups`` column holds them."""
    return [{_NAME: g.name, _ID: g.group_id} for g in groups]


def groups_of(instance: WithGroups) -> list[SecurityGroup]:
    return parsed(instance.security_groups)


def parsed(column: Sequence[Any] | None) -> list[SecurityGroup]:
    """The groups of a ``security_groups`` column as ``stored`` wrote them (None: none)."""
    return [SecurityGroup(g[_NAME], g[_ID]) for g in column or ()]
