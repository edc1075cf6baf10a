"""Groups and membership."""

from __future__ import annotations

from typing import Any

from karri.api.iam.actions.members import by_member, entity, listed
from karri.api.iam.dispatch import IAM, QueryContext

_by_name = by_member("GroupName")


@IAM("CreateGroup")
def create_group(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    view = context.cloud.iam.users.create_group(
        context.account_id, parsed["GroupName"], parsed.get("Path")
    )
    return {"Group": entity(view)}


@IAM("GetGroup")
def get_group(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    group, members = context.cloud.iam.users.get_group(context.account_id, parsed["GroupName"])
    return {
        "Group": entity(group),
        **listed(
            context,
            parsed,
            "Users",
            [entity(m, tags=False) for m in members],
            by_member("UserName"),
        ),
    }


@IAM("ListGroups")
def list_groups(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    views = context.cloud.iam.users.list_groups(context.account_id, parsed.get("PathPrefix", "/"))
    return listed(context, parsed, "Groups", [entity(v, tags=False) for v in views], _by_name)


@IAM("ListGroupsForUser")
def list_groups_for_user(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    views = context.cloud.iam.users.groups_for_user(context.account_id, parsed["UserName"])
    return listed(context, parsed, "Groups", [entity(v, tags=False) for v in views], _by_name)


@IAM("AddUserToGroup")
def add_user_to_group(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.users.add_user_to_group(
        context.account_id, parsed["GroupName"], parsed["UserName"]
    )
    return {}


@IAM("RemoveUserFromGroup")
def remove_user_from_group(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.users.remove_user_from_group(
        context.account_id, parsed["GroupName"], parsed["UserName"]
    )
    return {}


@IAM("UpdateGroup")
def update_group(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.users.update_group(
        context.account_id, parsed["GroupName"], parsed.get("NewGroupName"), parsed.get("NewPath")
    )
    return {}


@IAM("DeleteGroup")
def delete_group(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.users.delete_group(context.account_id, parsed["GroupName"])
    return {}
