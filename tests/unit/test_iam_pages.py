"""IAM's MaxItems/Marker paging (``api/iam/actions/members.page_of``) in process."""

from __future__ import annotations

from typing import Any

import pytest

from karri.api.iam.actions.members import page_of
from karri.api.iam.dispatch import QueryContext
from karri.errors import CloudError


def context(action: str) -> QueryContext:
    return QueryContext(cloud=None, principal=None, request_id="r", action=action)  # type: ignore[arg-type]


def walk(action: str, items: list[str], size: int) -> list[list[str]]:
    pages, parsed = [], {"MaxItems": size}
    while True:
        page, more = page_of(context(action), dict(parsed), items, str)
        pages.append(page)
        if not more["IsTruncated"]:
            assert "Marker" not in more
            return pages
        parsed["Marker"] = more["Marker"]


def test_pages_cover_every_item_once_in_order() -> None:
    items = [f"n{i:02}" for i in range(7)]
    assert walk("ListUsers", items[::-1], 3) == [items[:3], items[3:6], items[6:]]
    assert walk("ListUsers", items, 100) == [items]
    assert page_of(context("ListUsers"), {}, items * 20, str)[1]["IsTruncated"]  # default 100


@pytest.mark.parametrize(
    "parsed",
    [
        {"Marker": "not ours"},
        {"Marker": "djI6TGlzdFJvbGVzOm4wMQ=="},  # ListRoles' marker
        {"MaxItems": 0},
        {"MaxItems": 1001},
    ],
)
def test_bad_markers_and_sizes_are_validation_errors(parsed: dict[str, Any]) -> None:
    with pytest.raises(CloudError) as refused:
        page_of(context("ListUsers"), parsed, ["a", "b"], str)
    assert refused.value.code in ("ValidationError", "InvalidParameterValue")
