"""Roles and instance profiles."""

from __future__ import annotations

from typing import Any

from karri.api.iam.actions.members import by_member, entity, listed, tags_in
from karri.api.iam.dispatch import IAM, QueryContext

_by_profile = by_member("InstanceProfileName")


@IAM("CreateRole")
def create_role(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    view = context.cloud.iam.roles.create_role(
        context.account_id,
        parsed["RoleName"],
        parsed["AssumeRolePolicyDocument"],
        path=parsed.get("Path"),
        description=parsed.get("Description", ""),
        max_session_duration=parsed.get("MaxSessionDuration"),
        tags=tags_in(parsed),
    )
    return {"Role": entity(view)}


@IAM("GetRole")
def get_role(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    return {
        "Role": entity(context.cloud.iam.roles.get_role(context.account_id, parsed["RoleName"]))
    }


@IAM("ListRoles")
def list_roles(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    views = context.cloud.iam.roles.list_roles(context.account_id, parsed.get("PathPrefix", "/"))
    return listed(
        context, parsed, "Roles", [entity(v, tags=False) for v in views], by_member("RoleName")
    )


@IAM("UpdateAssumeRolePolicy")
def update_trust(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.roles.update_trust_policy(
        context.account_id, parsed["RoleName"], parsed["PolicyDocument"]
    )
    return {}


@IAM("UpdateRole")
def update_role(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.roles.update_role(
        context.account_id,
        parsed["RoleName"],
        parsed.get("Description"),
        parsed.get("MaxSessionDuration"),
    )
    return {}


@IAM("UpdateRoleDescription")
def update_role_description(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    roles, name = context.cloud.iam.roles, parsed["RoleName"]
    roles.update_role(context.account_id, name, parsed["Description"], None)
    return {"Role": entity(roles.get_role(context.account_id, name))}


@IAM("DeleteRole")
def delete_role(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.roles.delete_role(context.account_id, parsed["RoleName"])
    return {}


@IAM("CreateInstanceProfile")
def create_profile(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    view = context.cloud.iam.roles.create_instance_profile(
        context.account_id, parsed["InstanceProfileName"], parsed.get("Path"), tags_in(parsed)
    )
    return {"InstanceProfile": entity(view)}


@IAM("GetInstanceProfile")
def get_profile(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    view = context.cloud.iam.roles.get_instance_profile(
        context.account_id, parsed["InstanceProfileName"]
    )
    return {"InstanceProfile": entity(view)}


@IAM("ListInstanceProfiles")
def list_profiles(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    views = context.cloud.iam.roles.list_instance_profiles(
        context.account_id, parsed.get("PathPrefix", "/")
    )
    return listed(
        context, parsed, "InstanceProfiles", [entity(v, tags=False) for v in views], _by_profile
    )


@IAM("ListInstanceProfilesForRole")
def list_profiles_for_role(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    views = context.cloud.iam.roles.list_instance_profiles(
        context.account_id, role=parsed["RoleName"]
    )
    return listed(
        context, parsed, "InstanceProfiles", [entity(v, tags=False) for v in views], _by_profile
    )


@IAM("AddRoleToInstanceProfile")
def add_role(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.roles.add_role_to_instance_profile(
        context.account_id, parsed["InstanceProfileName"], parsed["RoleName"]
    )
    return {}


@IAM("RemoveRoleFromInstanceProfile")
def remove_role(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.roles.remove_role_from_instance_profile(
        context.account_id, parsed["InstanceProfileName"], parsed["RoleName"]
    )
    return {}


@IAM("DeleteInstanceProfile")
def delete_profile(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.roles.delete_instance_profile(
        context.account_id, parsed["InstanceProfileName"]
    )
    return {}
