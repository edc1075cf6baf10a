"""Users: Create/Get/List/Update/Delete, tags."""

from __future__ import annotations

from typing import Any

from karri import policy
from karri.api.iam.actions.members import by_member, entity, listed, tags_in
from karri.api.iam.dispatch import IAM, QueryContext
from karri.cloud.iam.errors import validation_error


def caller_user(context: QueryContext, parsed: dict[str, Any]) -> str:
    """The user a call names, or the calling user when it names none."""
    name = parsed.get("UserName")
    if name is not None:
        return name
    caller = context.principal.caller
    if caller.type is policy.PrincipalType.USER and caller.username:
        return caller.username
    raise validation_error("Must specify userName when calling with non-User credentials")


@IAM("CreateUser")
def create_user(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    view = context.cloud.iam.users.create_user(
        context.account_id, parsed["UserName"], parsed.get("Path"), tags_in(parsed)
    )
    return {"User": entity(view)}


@IAM("GetUser")
def get_user(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    caller = context.principal.caller
    if parsed.get("UserName") is None and caller.type is policy.PrincipalType.ACCOUNT:
        # the account's root user, as IAM shows it
        created = context.cloud.accounts.get(context.principal.account_name).created_at
        return {"User": {"UserId": caller.account, "Arn": caller.arn, "CreateDate": created}}
    view = context.cloud.iam.users.get_user(context.account_id, caller_user(context, parsed))
    return {"User": entity(view)}


@IAM("ListUsers")
def list_users(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    views = context.cloud.iam.users.list_users(context.account_id, parsed.get("PathPrefix", "/"))
    return listed(
        context, parsed, "Users", [entity(v, tags=False) for v in views], by_member("UserName")
    )


@IAM("UpdateUser")
def update_user(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.users.update_user(
        context.account_id, parsed["UserName"], parsed.get("NewUserName"), parsed.get("NewPath")
    )
    return {}


@IAM("DeleteUser")
def delete_user(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.users.delete_user(context.account_id, parsed["UserName"])
    return {}


# ---- login profiles (console passwords)


@IAM("CreateLoginProfile")
def create_login(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    user = caller_user(context, parsed)
    reset = bool(parsed.get("PasswordResetRequired"))
    created = context.cloud.iam.logins.create(context.account_id, user, parsed["Password"], reset)
    return {
        "LoginProfile": {"UserName": user, "CreateDate": created, "PasswordResetRequired": reset}
    }


@IAM("GetLoginProfile")
def get_login(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    user = caller_user(context, parsed)
    created, reset = context.cloud.iam.logins.get(context.account_id, user)
    return {
        "LoginProfile": {"UserName": user, "CreateDate": created, "PasswordResetRequired": reset}
    }


@IAM("UpdateLoginProfile")
def update_login(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.logins.update(
        context.account_id,
        parsed["UserName"],
        parsed.get("Password"),
        parsed.get("PasswordResetRequired"),
    )
    return {}


@IAM("DeleteLoginProfile")
def delete_login(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.logins.delete(context.account_id, caller_user(context, parsed))
    return {}
