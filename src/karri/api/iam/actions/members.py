"""Cloud values as IAM's member names. Policy documents travel URL-encoded, as IAM sends
them (boto3 and the AWS CLI decode them)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from karri.api.iam.dispatch import QueryContext
from karri.cloud.filters import paginate
from karri.cloud.iam.views import EntityView, PolicyView, VersionView
from karri.errors import CloudError

DEFAULT_MAX_ITEMS = 100  # AWS's, when MaxItems is not given


def document(text: str) -> str:
    return quote(text, safe="")


def tags_of(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tags_in(params: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in params.get("Tags", [])}


def entity(view: EntityView, *, tags: bool = True) -> dict[str, Any]:
    """``tags``: Get calls show an entity's tags, List calls do not (ListUserTags does)."""
    word = {
        "user": "User",
        "group": "Group",
        "role": "Role",
        "instance-profile": "InstanceProfile",
    }[view.kind]
    out: dict[str, Any] = {
        "Path": view.path,
        f"{word}Name": view.name,
        f"{word}Id": view.id,
        "Arn": view.arn,
        "CreateDate": view.created,
    }
    if tags and view.tags:
        out["Tags"] = tags_of(view.tags)
    if view.kind == "role":
        out["AssumeRolePolicyDocument"] = document(view.trust_policy or "")
        out["MaxSessionDuration"] = view.max_session_duration
        if view.description:
            out["Description"] = view.description
    if view.kind == "instance-profile":
        out["Roles"] = [entity(role, tags=False) for role in view.roles]
    return out


def managed_policy(view: PolicyView, *, tags: bool = False) -> dict[str, Any]:
    """``tags``: CreatePolicy and GetPolicy show them, ListPolicies does not."""
    out = {
        "PolicyName": view.name,
        "PolicyId": view.id,
        "Arn": view.arn,
        "Path": view.path,
        "DefaultVersionId": view.default_version,
        "AttachmentCount": view.attachments,
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": True,
        "Description": view.description or None,
        "CreateDate": view.created,
        "UpdateDate": view.updated,
    }
    if tags and view.tags:
        out["Tags"] = tags_of(view.tags)
    return out


def version(view: VersionView) -> dict[str, Any]:
    return {
        "Document": document(view.document),
        "VersionId": view.version_id,
        "IsDefaultVersion": view.is_default,
        "CreateDate": view.created,
    }


def _invalid_marker(_marker: str) -> CloudError:
    return CloudError("ValidationError", "Invalid Marker.", 400)


def page_of(
    context: QueryContext, parsed: dict[str, Any], items: Sequence[Any], order: Callable[[Any], str]
) -> tuple[list[Any], dict[str, Any]]:
    """One page of a listing by IAM's ``MaxItems`` (1 to 1000, default 100) and ``Marker``,
    and the ``IsTruncated``/``Marker`` members that go with it. ``order`` is a unique,
    stable key of an item, so a page survives entities made or deleted between calls; a
    marker of another action (``context.action``), or none of ours, is ``ValidationError``."""
    page = paginate(
        items,
        order,
        parsed.get("MaxItems", DEFAULT_MAX_ITEMS),
        parsed.get("Marker"),
        kind=context.action,
        minimum=1,
        maximum=1000,
        bad_token=_invalid_marker,
    )
    more: dict[str, Any] = {"IsTruncated": page.next_token is not None}
    if page.next_token is not None:
        more["Marker"] = page.next_token
    return page.items, more


def listed(
    context: QueryContext,
    parsed: dict[str, Any],
    key: str,
    items: Sequence[Any],
    order: Callable[[Any], str],
) -> dict[str, Any]:
    """A listing's page under its member ``key``."""
    page, more = page_of(context, parsed, items, order)
    return {key: page, **more}


def by_member(member: str) -> Callable[[dict[str, Any]], str]:
    """The order of IAM's listings: by name, case-insensitively (names are unique so)."""
    return lambda item: str(item[member]).lower()
