"""Managed policies and their versions, attachments, inline policies. The same calls exist
for users, groups and roles (``AttachUserPolicy``, ``AttachGroupPolicy``…): each is
registered once per kind."""

from __future__ import annotations

from functools import partial
from typing import Any

from karri.api.iam.actions.members import (
    by_member,
    document,
    listed,
    managed_policy,
    page_of,
    tags_in,
    version,
)
from karri.api.iam.dispatch import IAM, QueryContext

KINDS = {"user": "User", "group": "Group", "role": "Role"}


def _version_order(item: dict[str, Any]) -> str:
    """``v2`` before ``v10``: the number, zero-padded."""
    return item["VersionId"][1:].rjust(12, "0")


@IAM("CreatePolicy")
def create_policy(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    view = context.cloud.iam.policies.create_policy(
        context.account_id,
        parsed["PolicyName"],
        parsed["PolicyDocument"],
        parsed.get("Path"),
        parsed.get("Description", ""),
        tags_in(parsed),
    )
    return {"Policy": managed_policy(view, tags=True)}


@IAM("GetPolicy")
def get_policy(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    view = context.cloud.iam.policies.get_policy(context.account_id, parsed["PolicyArn"])
    return {"Policy": managed_policy(view, tags=True)}


@IAM("ListPolicies")
def list_policies(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    views = context.cloud.iam.policies.list_policies(context.account_id, parsed.get("Scope", "All"))
    if parsed.get("OnlyAttached"):
        views = [v for v in views if v.attachments]
    return listed(context, parsed, "Policies", [managed_policy(v) for v in views], by_member("Arn"))


@IAM("DeletePolicy")
def delete_policy(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.policies.delete_policy(context.account_id, parsed["PolicyArn"])
    return {}


@IAM("CreatePolicyVersion")
def create_version(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    view = context.cloud.iam.policies.create_version(
        context.account_id,
        parsed["PolicyArn"],
        parsed["PolicyDocument"],
        bool(parsed.get("SetAsDefault")),
    )
    return {"PolicyVersion": version(view)}


@IAM("GetPolicyVersion")
def get_version(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    view = context.cloud.iam.policies.get_version(
        context.account_id, parsed["PolicyArn"], parsed["VersionId"]
    )
    return {"PolicyVersion": version(view)}


@IAM("ListPolicyVersions")
def list_versions(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    views = context.cloud.iam.policies.list_versions(context.account_id, parsed["PolicyArn"])
    return listed(context, parsed, "Versions", [version(v) for v in views], _version_order)


@IAM("SetDefaultPolicyVersion")
def set_default(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.policies.set_default_version(
        context.account_id, parsed["PolicyArn"], parsed["VersionId"]
    )
    return {}


@IAM("DeletePolicyVersion")
def delete_version(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.policies.delete_version(
        context.account_id, parsed["PolicyArn"], parsed["VersionId"]
    )
    return {}


@IAM("ListEntitiesForPolicy")
def entities_for_policy(context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    found = context.cloud.iam.policies.entities_for_policy(context.account_id, parsed["PolicyArn"])
    wanted = parsed.get("EntityFilter")
    words = [(kind, word) for kind, word in KINDS.items() if wanted in (None, word)]
    every = [(kind, name, entity_id) for kind, _ in words for name, entity_id in found[kind]]
    page, out = page_of(context, parsed, every, lambda e: f"{e[0]}:{e[1].lower()}")
    for kind, word in words:
        out[f"Policy{word}s"] = [
            {f"{word}Name": name, f"{word}Id": entity_id}
            for of_kind, name, entity_id in page
            if of_kind == kind
        ]
    return out


# ---- the same calls for users, groups and roles


def _attach(kind: str, context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    name = parsed[f"{KINDS[kind]}Name"]
    context.cloud.iam.policies.attach(context.account_id, kind, name, parsed["PolicyArn"])
    return {}


def _detach(kind: str, context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    name = parsed[f"{KINDS[kind]}Name"]
    context.cloud.iam.policies.detach(context.account_id, kind, name, parsed["PolicyArn"])
    return {}


def _attached(kind: str, context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    name = parsed[f"{KINDS[kind]}Name"]
    found = context.cloud.iam.policies.attached(context.account_id, kind, name)
    attached = [{"PolicyName": p.name, "PolicyArn": p.arn} for p in found]
    return listed(context, parsed, "AttachedPolicies", attached, by_member("PolicyArn"))


def _put(kind: str, context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.policies.put_inline(
        context.account_id,
        kind,
        parsed[f"{KINDS[kind]}Name"],
        parsed["PolicyName"],
        parsed["PolicyDocument"],
    )
    return {}


def _get(kind: str, context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    word = KINDS[kind]
    text = context.cloud.iam.policies.get_inline(
        context.account_id, kind, parsed[f"{word}Name"], parsed["PolicyName"]
    )
    return {
        f"{word}Name": parsed[f"{word}Name"],
        "PolicyName": parsed["PolicyName"],
        "PolicyDocument": document(text),
    }


def _list(kind: str, context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    names = context.cloud.iam.policies.list_inline(
        context.account_id, kind, parsed[f"{KINDS[kind]}Name"]
    )
    return listed(context, parsed, "PolicyNames", names, str.lower)


def _delete(kind: str, context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    context.cloud.iam.policies.delete_inline(
        context.account_id, kind, parsed[f"{KINDS[kind]}Name"], parsed["PolicyName"]
    )
    return {}


for _kind, _word in KINDS.items():
    IAM(f"Attach{_word}Policy")(partial(_attach, _kind))
    IAM(f"Detach{_word}Policy")(partial(_detach, _kind))
    IAM(f"ListAttached{_word}Policies")(partial(_attached, _kind))
    IAM(f"Put{_word}Policy")(partial(_put, _kind))
    IAM(f"Get{_word}Policy")(partial(_get, _kind))
    IAM(f"List{_word}Policies")(partial(_list, _kind))
    IAM(f"Delete{_word}Policy")(partial(_delete, _kind))
