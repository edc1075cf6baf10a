"""CreateTags, DeleteTags, DescribeTags."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.tagging import tag_pairs, tag_removals


@action("CreateTags")
def create_tags(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    resources = params.get("Resources") or []
    ctx.cloud.tags.create(ctx.account_id, resources, tag_pairs(params.get("Tags")))
    return {}


@action("DeleteTags")
def delete_tags(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    removals = tag_removals(params.get("Tags"))
    ctx.cloud.tags.delete(ctx.account_id, params.get("Resources") or [], removals or None)
    return {}


@action("DescribeTags", read_only=True)
def describe_tags(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    page = ctx.cloud.tags.describe(
        ctx.account_id, params.get("Filters"), params.get("MaxResults"), params.get("NextToken")
    )
    return {
        "Tags": [
            {
                "ResourceId": t.resource_id,
                "ResourceType": t.resource_type,
                "Key": t.key,
                "Value": t.value,
            }
            for t in page.items
        ],
        "NextToken": page.next_token,
    }
