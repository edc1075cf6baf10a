"""A user's access keys; with root credentials and no ``UserName``, the account's root
keys (``cloud/iam/root_keys.py``)."""

from __future__ import annotations

from typing import Any

from karri.api.iam.actions.members import by_member, listed
from karri.api.iam.actions.users import caller_user
from karri.api.iam.dispatch import IAM, QueryContext
from karri.cloud.iam.errors import validation_error
from karri.cloud.iam.views import KeyView


def _of_root(context: QueryContext, parsed: dict[str, Any]) -> bool:
    """The call is about the account's root keys: made with them, naming no user."""
    return parsed.get("UserName") is None and context.principal.identity is None


def _user_name(view: KeyView) -> dict[str, str]:
    return {"UserName": view.user_name} if view.user_name else {}  # root's keys: none


def _status(view: KeyView) -> str:
    return "Active" if view.active else "Inactive"


@IAM("CreateAccessKey")
def create_access_key(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    if _of_root(context, parsed):
        view = context.cloud.iam.root_keys.create(context.account_id)
    else:
        user = caller_user(context, parsed)
        view = context.cloud.iam.access_keys.create(context.account_id, user)
    return {
        "AccessKey": {
            **_user_name(view),
            "AccessKeyId": view.access_key_id,
            "Status": _status(view),
            "SecretAccessKey": view.secret,
            "CreateDate": view.created,
        }
    }


@IAM("ListAccessKeys")
def list_access_keys(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    if _of_root(context, parsed):
        views = context.cloud.iam.root_keys.list(context.account_id)
    else:
        user = caller_user(context, parsed)
        views = context.cloud.iam.access_keys.list(context.account_id, user)
    return listed(
        context,
        parsed,
        "AccessKeyMetadata",
        [
            {
                **_user_name(v),
                "AccessKeyId": v.access_key_id,
                "Status": _status(v),
                "CreateDate": v.created,
            }
            for v in views
        ],
        by_member("AccessKeyId"),
    )


@IAM("UpdateAccessKey")
def update_access_key(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    if parsed["Status"] not in ("Active", "Inactive"):
        raise validation_error(
            f"1 validation error detected: Value '{parsed['Status']}' at 'status' failed to "
            "satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
        )
    if _of_root(context, parsed):
        context.cloud.iam.root_keys.set_active(
            context.account_id, parsed["AccessKeyId"], parsed["Status"] == "Active"
        )
        return {}
    context.cloud.iam.access_keys.set_active(
        context.account_id,
        caller_user(context, parsed),
        parsed["AccessKeyId"],
        parsed["Status"] == "Active",
    )
    return {}


@IAM("DeleteAccessKey")
def delete_access_key(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    if _of_root(context, parsed):
        context.cloud.iam.root_keys.delete(context.account_id, parsed["AccessKeyId"])
        return {}
    context.cloud.iam.access_keys.delete(
        context.account_id, caller_user(context, parsed), parsed["AccessKeyId"]
    )
    return {}


@IAM("GetAccessKeyLastUsed")
def last_used(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    view = context.cloud.iam.access_keys.last_used(context.account_id, parsed["AccessKeyId"])
    used: dict[str, Any] = {
        "ServiceName": view.last_service or "N/A",
        "Region": view.last_region or "N/A",
    }
    if view.last_used is not None:
        used["LastUsedDate"] = view.last_used
    return {"UserName": view.user_name, "AccessKeyLastUsed": used}
