"""Launch and create-volume permissions between the wire and the cloud: both attributes'
changes, in either of AWS's spellings, become one ``PermissionModification``; grantees
become ``{"Group": "all"}`` or ``{"UserId": ...}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from karri.cloud.permissions import PUBLIC, Grantee, PermissionModification


def permission_modification(
    params: Mapping[str, Any], structured: str, groups: str
) -> PermissionModification:
    """``structured``: the ``Add``/``Remove`` member (``LaunchPermission``,
    ``CreateVolumePermission``); ``groups``: the flat list of groups (``UserGroups``,
    ``GroupNames``) beside ``UserIds`` and ``OperationType``."""
    changes = params.get(structured) or {}
    return PermissionModification(
        add=_grantees(changes.get("Add")),
        remove=_grantees(changes.get("Remove")),
        user_ids=tuple(params.get("UserIds") or ()),
        groups=tuple(params.get(groups) or ()),
        operation=params.get("OperationType"),
    )


def _grantees(entries: Any) -> tuple[Grantee, ...]:
    return tuple(Grantee(user_id=e.get("UserId"), group=e.get("Group")) for e in entries or ())


def grantee_info(grantee: str) -> dict[str, str]:
    return {"Group": grantee} if grantee == PUBLIC else {"UserId": grantee}
