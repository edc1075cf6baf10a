"""Who may use an image or a snapshot: ModifyImageAttribute's launchPermission and
ModifySnapshotAttribute's createVolumePermission, which AWS spells the same two ways.

A change names grantees: an account id, or the group ``all`` (everyone). It comes as
``<Attribute>.Add/Remove.N.UserId|Group``, or as ``UserId.N``/``UserGroup.N`` with an
``OperationType`` of ``add`` or ``remove``; the API layer hands both over as one
``PermissionModification``. The second spelling has nothing else that says which of the
two is meant, so there ``OperationType`` is required (AWS's examples and CLI always send
it; botocore's model marks it optional because the first spelling needs none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from karri.cloud.accounts import ACCOUNT_ID
from karri.errors import CloudError, invalid_value, missing_parameter

PUBLIC = "all"


@dataclass(frozen=True)
class GranteeErrors:
    """How a resource refuses a bad grantee: AWS's codes differ between images and snapshots."""

    group: Callable[[str], CloudError]
    user: Callable[[str | None], CloudError]  # None: the entry names no one


@dataclass(frozen=True)
class Grantee:
    """One entry of a change: an account id or a group (neither: the entry names no one)."""

    user_id: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class PermissionModification:
    """A change as asked for, in both spellings: ``add``/``remove`` entries, and the flat
    ``user_ids``/``groups`` that ``operation`` (add or remove) applies to."""

    add: tuple[Grantee, ...] = ()
    remove: tuple[Grantee, ...] = ()
    user_ids: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    operation: str | None = None


@dataclass(frozen=True)
class PermissionChanges:
    add: frozenset[str]
    remove: frozenset[str]


def permission_changes(
    parameter: str, modification: PermissionModification, errors: GranteeErrors
) -> PermissionChanges:
    """The grantees to add and to remove; ``MissingParameter`` (``parameter``) when none."""
    operation = modification.operation
    if operation not in (None, "add", "remove"):
        raise invalid_value(f"Value ({operation}) for parameter operationType is invalid.")
    add = {_grantee(e, errors) for e in modification.add}
    remove = {_grantee(e, errors) for e in modification.remove}
    flat = [Grantee(user_id=u) for u in modification.user_ids]
    flat += [Grantee(group=g) for g in modification.groups]
    if flat:
        if operation is None:
            raise missing_parameter("OperationType")
        (add if operation == "add" else remove).update(_grantee(e, errors) for e in flat)
    if not add and not remove:
        raise missing_parameter(parameter)
    return PermissionChanges(frozenset(add), frozenset(remove))


def _grantee(entry: Grantee, errors: GranteeErrors) -> str:
    group, user = entry.group, entry.user_id
    if group is not None:
        if group != PUBLIC:
            raise errors.group(group)
        return PUBLIC
    if not user or not ACCOUNT_ID.match(user):
        raise errors.user(user)
    return user
