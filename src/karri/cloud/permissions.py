"""Who may use an image or a snapshot: ModifyImageAttribute's launchPermission and
ModifySnapshotAttribute's createVolumePermission, which AWS spells the same two ways.

A change names grantees: an account id, or the group ``all`` (everyone). It comes as
``<Attribute>.Add/Remove.N.UserId|Group``, or as ``UserId.N``/``UserGroup.N`` with an
``OperationType`` of ``add`` or ``remove``. The second spelling has nothing else that says
which of the two is meant, so there ``OperationType`` is required (AWS's examples and CLI
always send it; botocore's model marks it optional because the first spelling needs none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from karri.cloud.accounts import ACCOUNT_ID
from karri.errors import CloudError, invalid_value, missing_parameter

PUBLIC = "all"


@dataclass(frozen=True)
class GranteeErrors:
    """How a resource refuses a bad grantee: AWS's codes differ between images and snapshots."""

    group: Callable[[str], CloudError]
    user: Callable[[str | None], CloudError]  # None: the entry names no one


@dataclass(frozen=True)
class PermissionChanges:
    add: frozenset[str]
    remove: frozenset[str]


def permission_changes(
    parameter: str,
    modifications: Mapping[str, Any] | None,
    user_ids: Sequence[str] | None,
    groups: Sequence[str] | None,
    operation: str | None,
    errors: GranteeErrors,
) -> PermissionChanges:
    """The grantees to add and to remove; ``MissingParameter`` (``parameter``) when none."""
    if operation not in (None, "add", "remove"):
        raise invalid_value(f"Value ({operation}) for parameter operationType is invalid.")
    add: set[str] = set()
    remove: set[str] = set()
    for target, entries in ((add, "Add"), (remove, "Remove")):
        target.update(_grantee(e, errors) for e in (modifications or {}).get(entries) or ())
    flat = [{"UserId": u} for u in user_ids or ()] + [{"Group": g} for g in groups or ()]
    if flat:
        if operation is None:
            raise missing_parameter("OperationType")
        (add if operation == "add" else remove).update(_grantee(e, errors) for e in flat)
    if not add and not remove:
        raise missing_parameter(parameter)
    return PermissionChanges(frozenset(add), frozenset(remove))


def _grantee(entry: Mapping[str, Any], errors: GranteeErrors) -> str:
    group, user = entry.get("Group"), entry.get("UserId")
    if group is not None:
        if group != PUBLIC:
            raise errors.group(group)
        return PUBLIC
    if not user or not ACCOUNT_ID.match(user):
        raise errors.user(user)
    return user
