"""The shared filter and pagination mechanism (karri.cloud.filters)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from karri.cloud.filters import FilterSet, Wildcard, decode_token, encode_token, paginate
from karri.errors import CloudError


@dataclass(frozen=True)
class Thing:
    name: str
    size: int
    flags: tuple[str, ...] = ()
    on: bool = True
    born: datetime | None = None


THINGS = [
    Thing("web-1", 1, ("a", "b"), born=datetime(2024, 1, 2, tzinfo=UTC)),
    Thing("web-2", 2, ("b",), on=False),
    Thing("db*1", 10),
    Thing("db-10", 10, ("c",)),
]
TAGS = {"web-1": {"role": "web", "Env": "prod"}, "web-2": {"role": "web"}, "db*1": {"role": ""}}
FILTERS: FilterSet[Thing] = FilterSet(
    {
        "name": lambda t: t.name,
        "size": lambda t: t.size,
        "flag": lambda t: t.flags,
        "on": lambda t: t.on,
        "born": lambda t: t.born,
    }
)


def names(*filters: dict) -> list[str]:
    found = FILTERS.apply(THINGS, list(filters), lambda t: TAGS.get(t.name, {}))
    return [t.name for t in found]


def f(name: str, *values: str) -> dict:
    return {"Name": name, "Values": list(values)}


def test_no_filters_keeps_everything() -> None:
    assert names() == ["web-1", "web-2", "db*1", "db-10"]
    assert FILTERS.apply(THINGS, None) == THINGS


def test_wildcards_and_escapes() -> None:
    assert names(f("name", "web-*")) == ["web-1", "web-2"]
    assert names(f("name", "web-?")) == ["web-1", "web-2"]
    assert names(f("name", "db?1*")) == ["db*1", "db-10"]
    assert names(f("name", "db\\*1")) == ["db*1"]
    assert names(f("name", "db\\?1")) == []
    assert names(f("name", "*")) == names()
    assert names(f("name", "web")) == []  # whole value
    assert names(f("name", "WEB-1")) == []  # case-sensitive
    assert names(f("name", "we.-1")) == []  # regex characters are literal
    assert names(f("name", "db*1\\")) == []  # a trailing backslash is a literal backslash


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("abc", "abc", True),
        ("abc", "abcd", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("*", "", True),
        ("a*", "a", True),
        ("*a", "ba", True),
        ("*a", "ab", False),
        ("a*b*c", "aXbYbc", True),
        ("a*b*c", "acb", False),
        ("*?b?*", "ab", False),
        ("*?b?*", "abc", True),
        ("ab*ba", "aba", False),  # the first and last pieces may not overlap
        ("ab*ba", "abba", True),
        ("*ab*ab*", "abab", True),
        ("*ab*ab*", "aba", False),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("a\\", "a\\", True),
        ("x\ny", "x\ny", True),
    ],
)
def test_wildcard_matching(pattern: str, text: str, matches: bool) -> None:
    assert Wildcard(pattern).fullmatch(text) is matches


def test_wildcards_do_not_backtrack_without_bound() -> None:
    """A regular expression of ``.*`` and ``.`` took hours on this (a whole server stalled)."""
    assert not Wildcard("*" + "?*" * 50 + "Z").fullmatch("a" * 10_000)
    assert Wildcard("*" + "?*" * 50 + "Z").fullmatch("a" * 10_000 + "Z")


def test_values_or_filters_and() -> None:
    assert names(f("size", "1", "2")) == ["web-1", "web-2"]
    assert names(f("size", "10"), f("flag", "c")) == ["db-10"]
    assert names(f("flag", "b")) == ["web-1", "web-2"]  # any of a list matches


def test_value_kinds() -> None:
    assert names(f("on", "false")) == ["web-2"]
    assert names(f("born", "2024-01-02T00:00:00.000Z")) == ["web-1"]
    assert names(f("born", "2024-*")) == ["web-1"]


def test_tags() -> None:
    assert names(f("tag:role", "web")) == ["web-1", "web-2"]
    assert names(f("tag:role", "")) == ["db*1"]
    assert names(f("tag:Env", "*")) == ["web-1"]
    assert names(f("tag:env", "*")) == []
    assert names(f("tag-key", "Env", "nothing")) == ["web-1"]
    assert names(f("tag-value", "prod")) == ["web-1"]


@pytest.mark.parametrize(
    "spec",
    [
        {"Name": "colour", "Values": ["x"]},
        {"Name": "tag:", "Values": ["x"]},
        {"Name": "", "Values": ["x"]},
        {"Values": ["x"]},
        {"Name": "name", "Values": []},
        {"Name": "name"},
    ],
)
def test_invalid_filters(spec: dict) -> None:
    with pytest.raises(CloudError) as info:
        FILTERS.apply(THINGS, [spec])
    assert info.value.code == "InvalidParameterValue"


def test_tag_filters_only_where_tags_exist() -> None:
    untagged: FilterSet[Thing] = FilterSet({"name": lambda t: t.name}, tags=False)
    with pytest.raises(CloudError):
        untagged.apply(THINGS, [f("tag:role", "web")])


ITEMS = [f"item-{i:02d}" for i in range(12)]


def test_pages_in_key_order() -> None:
    first = paginate(list(reversed(ITEMS)), str, 5, None, kind="items")
    assert first.items == ITEMS[:5] and first.next_token
    second = paginate(ITEMS, str, 5, first.next_token, kind="items")
    third = paginate(ITEMS, str, 5, second.next_token, kind="items")
    assert second.items == ITEMS[5:10]
    assert third.items == ITEMS[10:] and third.next_token is None
    assert (
        paginate(ITEMS, str, None, None, kind="items").items == ITEMS
    )  # no MaxResults: everything


def test_pages_stay_right_while_items_come_and_go() -> None:
    first = paginate(ITEMS, str, 5, None, kind="items")
    changed = [i for i in ITEMS if i != "item-02" and i != "item-05"] + ["item-00a"]
    assert paginate(changed, str, 5, first.next_token, kind="items").items == [
        "item-06",
        "item-07",
        "item-08",
        "item-09",
        "item-10",
    ]


def test_page_size_limits_and_combinations() -> None:
    for bad in (4, 1001):
        with pytest.raises(CloudError) as info:
            paginate(ITEMS, str, bad, None, kind="items")
        assert info.value.code == "InvalidParameterValue"
    assert len(paginate(ITEMS, str, 1, None, kind="items", minimum=1).items) == 1
    with pytest.raises(CloudError) as info:
        paginate(ITEMS, str, 5, None, kind="items", ids_given=True)
    assert info.value.code == "InvalidParameterCombination"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "%%%",
        encode_token("items", "x")[:-2] + "!!",
        "djI6eA==",
        encode_token("volumes", "item-03"),  # another listing's
        "djI6aXRlbXM6é",  # base64 of "v2:items:" with a character base64 has not
    ],
)
def test_bad_tokens(token: str) -> None:
    with pytest.raises(CloudError) as info:
        paginate(ITEMS, str, 5, token, kind="items")
    assert info.value.code == "InvalidPaginationToken"


def test_tokens_round_trip() -> None:
    for key in ("a", "key-1a2b3c4d\0name", "é ☃"):
        assert decode_token(encode_token("tags", key), "tags") == key
