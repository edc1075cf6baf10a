"""GetAccountAuthorizationDetails: every user, group, role and policy of the account with
its policies, in one paginated listing (one marker across the four lists, as on AWS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from karri.api.iam.actions.members import document, entity, managed_policy, page_of, tags_of
from karri.api.iam.actions.members import version as version_of
from karri.api.iam.dispatch import IAM, QueryContext
from karri.cloud.iam.errors import validation_error

# Filter's words → the answer's list
LISTS = {
    "User": "UserDetailList",
    "Group": "GroupDetailList",
    "Role": "RoleDetailList",
    "LocalManagedPolicy": "Policies",
    "AWSManagedPolicy": "Policies",
}


def _policies_of(context: QueryContext, kind: str, name: str) -> dict[str, Any]:
    iam, account = context.cloud.iam, context.account_id
    word = kind.capitalize()

    def inline(policy_name: str) -> str:
        return document(iam.policies.get_inline(account, kind, name, policy_name))

    return {
        f"{word}PolicyList": [
            {"PolicyName": p, "PolicyDocument": inline(p)}
            for p in iam.policies.list_inline(account, kind, name)
        ],
        "AttachedManagedPolicies": [
            {"PolicyName": p.name, "PolicyArn": p.arn}
            for p in iam.policies.attached(account, kind, name)
        ],
    }


def _user(context: QueryContext, view: Any) -> dict[str, Any]:
    out = {**entity(view, tags=False), **_policies_of(context, "user", view.name)}
    groups = context.cloud.iam.users.groups_for_user(context.account_id, view.name)
    out["GroupList"] = [g.name for g in groups]
    if view.tags:
        out["Tags"] = tags_of(view.tags)
    return out


def _group(context: QueryContext, view: Any) -> dict[str, Any]:
    return {**entity(view, tags=False), **_policies_of(context, "group", view.name)}


def _role(context: QueryContext, view: Any) -> dict[str, Any]:
    out = {**entity(view), **_policies_of(context, "role", view.name)}
    out.pop("MaxSessionDuration", None)
    out.pop("Description", None)
    profiles = context.cloud.iam.roles.list_instance_profiles(context.account_id, role=view.name)
    out["InstanceProfileList"] = [entity(p, tags=False) for p in profiles]
    return out


def _policy(context: QueryContext, view: Any) -> dict[str, Any]:
    out = managed_policy(view)
    versions = context.cloud.iam.policies.list_versions(context.account_id, view.arn)
    out["PolicyVersionList"] = [version_of(v) for v in versions]
    return out


@IAM("GetAccountAuthorizationDetails")
def details(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    iam, account = context.cloud.iam, context.account_id
    wanted = set(parsed.get("Filter") or LISTS)
    if wanted - set(LISTS):
        raise validation_error(
            f"1 validation error detected: Value '{sorted(wanted - set(LISTS))}' at 'filter' "
            f"failed to satisfy constraint: Member must satisfy enum value set: {list(LISTS)}"
        )
    found: list[tuple[str, str, Callable[[QueryContext, Any], dict[str, Any]], Any]] = []
    if "User" in wanted:
        found += [("1", v.name.lower(), _user, v) for v in iam.users.list_users(account)]
    if "Group" in wanted:
        found += [("2", v.name.lower(), _group, v) for v in iam.users.list_groups(account)]
    if "Role" in wanted:
        found += [("3", v.name.lower(), _role, v) for v in iam.roles.list_roles(account)]
    for scope, word in (("Local", "LocalManagedPolicy"), ("AWS", "AWSManagedPolicy")):
        if word in wanted:  # AWS's own only where this account attached them
            views = iam.policies.list_policies(account, scope)
            found += [("4", v.arn, _policy, v) for v in views if scope == "Local" or v.attachments]
    page, out = page_of(context, parsed, found, lambda item: f"{item[0]}:{item[1]}")
    for key in {LISTS[word] for word in wanted if word in LISTS}:
        out[key] = []
    names = ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies")
    for category, _, build, view in page:
        out.setdefault(names[int(category) - 1], []).append(build(context, view))
    return out
