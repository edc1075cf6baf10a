"""Tag, Untag and List…Tags for users, roles, managed policies and instance profiles: each
registered once per kind."""

from __future__ import annotations

from functools import partial
from typing import Any

from karri.api.iam.actions.members import by_member, listed, tags_in, tags_of
from karri.api.iam.dispatch import IAM, QueryContext

# kind -> (the action's word, the member naming the entity)
KINDS = {
    "user": ("User", "UserName"),
    "role": ("Role", "RoleName"),
    "policy": ("Policy", "PolicyArn"),
    "instance-profile": ("InstanceProfile", "InstanceProfileName"),
}


def _tag(kind: str, context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    name = parsed[KINDS[kind][1]]
    context.cloud.iam.tags.change(kind, context.account_id, name, add=tags_in(parsed))
    return {}


def _untag(kind: str, context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    name = parsed[KINDS[kind][1]]
    context.cloud.iam.tags.change(kind, context.account_id, name, remove=parsed["TagKeys"])
    return {}


def _list(kind: str, context: QueryContext, parsed: dict[str, Any]) -> dict[str, Any]:
    tags = context.cloud.iam.tags.tags(kind, context.account_id, parsed[KINDS[kind][1]])
    return listed(context, parsed, "Tags", tags_of(tags), by_member("Key"))


for _kind, (_word, _) in KINDS.items():
    IAM(f"Tag{_word}")(partial(_tag, _kind))
    IAM(f"Untag{_word}")(partial(_untag, _kind))
    IAM(f"List{_word}Tags")(partial(_list, _kind))
