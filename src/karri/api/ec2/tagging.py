"""Tags between the wire and the cloud: ``Tag.N`` lists and ``TagSpecification.N`` become
key-to-value dicts (the cloud checks AWS's rules on them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from karri.cloud.tags import validate_tags
from karri.errors import invalid_value, missing_parameter


def tag_pairs(tags: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    """CreateTags' ``Tag.N``: each Key and its Value (empty when none is given)."""
    return {tag.get("Key") or "": tag.get("Value") or "" for tag in tags or ()}


def tag_removals(tags: Sequence[Mapping[str, Any]] | None) -> list[tuple[str, str | None]]:
    """DeleteTags' ``Tag.N``: each Key, with the Value it must have (None: any)."""
    removals = []
    for tag in tags or ():
        if not tag.get("Key"):
            raise missing_parameter("Tag.N.Key")
        removals.append((tag["Key"], tag.get("Value")))
    return removals


def specified_tags(
    specifications: Sequence[Mapping[str, Any]] | None, resource_type: str
) -> dict[str, str]:
    """The tags a ``TagSpecification.N`` asks to put on a new resource of this type."""
    pairs: dict[str, str] = {}
    for spec in specifications or ():
        kind = spec.get("ResourceType")
        if kind != resource_type:
            raise invalid_value(
                f"'{kind}' is not a valid taggable resource type for this operation."
            )
        pairs.update(validate_tags(tag_pairs(spec.get("Tags"))))
    return pairs
