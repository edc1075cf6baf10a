"""The AWS ``Filter.N`` and ``MaxResults``/``NextToken`` mechanism every Describe call shares.

A resource type declares its filters as a table from filter name to a function that
returns the resource's value(s) for it; tags (``tag:Key``, ``tag-key``, ``tag-value``)
come for free. Matching follows AWS: values within one filter are ORed, filters are
ANDed, ``*`` and ``?`` are wildcards (``\\`` escapes them), an unknown filter name is
an error.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from karri.errors import CloudError, invalid_combination, invalid_value
from karri.timestamps import iso8601

T = TypeVar("T")
Getter = Callable[[T], Any]


class Wildcard:
    """One filter value: ``*`` is any run of characters, ``?`` any one, ``\\`` escapes.

    Matched piece by piece: the text between stars has a fixed length, so the first piece
    must match at the start, the last at the end and each other one at its leftmost place
    in between. One regular expression of ``.*`` and ``.`` would backtrack without bound
    (``*?*?*?*?*Z`` against 250 characters took seconds, one more ``?*`` hours)."""

    def __init__(self, value: str) -> None:
        pieces: list[list[str]] = [[]]
        escaped = False
        for char in value:
            if escaped:
                pieces[-1].append(re.escape(char))
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "*":
                pieces.append([])
            else:
                pieces[-1].append("." if char == "?" else re.escape(char))
        if escaped:
            pieces[-1].append(re.escape("\\"))
        self._pieces = [(re.compile("".join(p), re.DOTALL), len(p)) for p in pieces]

    def fullmatch(self, text: str) -> bool:
        if len(self._pieces) == 1:  # no star
            return self._pieces[0][0].fullmatch(text) is not None
        (first, first_length), *middle, (last, last_length) = self._pieces
        end = len(text) - last_length  # where the last piece must start
        if end < first_length or not first.match(text) or not last.fullmatch(text, end):
            return False
        position = first_length
        for piece, length in middle:
            found = piece.search(text, position, end)
            if found is None:
                return False
            position = found.start() + length
        return True


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso8601(value)
    return str(value)


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        return [as_text(v) for v in value if v is not None]
    return [as_text(value)]


@dataclass(frozen=True)
class _Clause(Generic[T]):
    get: Callable[[T, Mapping[str, str]], list[str]]
    patterns: tuple[Wildcard, ...]

    def matches(self, item: T, tags: Mapping[str, str]) -> bool:
        return any(p.fullmatch(v) for v in self.get(item, tags) for p in self.patterns)


class FilterSet(Generic[T]):
    """The filters one resource type understands."""

    def __init__(self, getters: Mapping[str, Getter[T]], *, tags: bool = True) -> None:
        self.getters = dict(getters)
        self.tags = tags

    def compile(self, filters: Sequence[Mapping[str, Any]] | None) -> list[_Clause[T]]:
        clauses: list[_Clause[T]] = []
        for spec in filters or ():
            name = spec.get("Name")
            if not name:
                raise invalid_value("The filter name must be given")
            values = spec.get("Values") or []
            if not values:
                raise invalid_value(f"The filter '{name}' must have at least one value")
            clauses.append(_Clause(self._getter(name), tuple(Wildcard(v) for v in values)))
        return clauses

    def _getter(self, name: str) -> Callable[[T, Mapping[str, str]], list[str]]:
        getter = self.getters.get(name)
        if getter is not None:
            return lambda item, _tags: _values(getter(item))
        if self.tags and name.startswith("tag:") and len(name) > 4:
            key = name[4:]
            return lambda _item, tags: [tags[key]] if key in tags else []
        if self.tags and name == "tag-key":
            return lambda _item, tags: list(tags)
        if self.tags and name == "tag-value":
            return lambda _item, tags: list(tags.values())
        raise invalid_value(f"The filter '{name}' is invalid")

    def apply(
        self,
        items: Iterable[T],
        filters: Sequence[Mapping[str, Any]] | None,
        tags_of: Callable[[T], Mapping[str, str]] = lambda _item: {},
    ) -> list[T]:
        clauses = self.compile(filters)
        if not clauses:
            return list(items)
        out = []
        for item in items:
            tags = tags_of(item)
            if all(clause.matches(item, tags) for clause in clauses):
                out.append(item)
        return out


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None


def paginate(
    items: Sequence[T],
    key: Callable[[T], str],
    max_results: int | None,
    next_token: str | None,
    *,
    kind: str,
    minimum: int = 5,
    maximum: int = 1000,
    ids_given: bool = False,
    bad_token: Callable[[str], CloudError] | None = None,
) -> Page[T]:
    """One page of ``items`` ordered by ``key``; the token names the last key returned and
    the ``kind`` of listing it continues (a token of another listing is refused: EC2's
    ``InvalidPaginationToken`` unless ``bad_token`` makes the service's own error). IAM's
    ``MaxItems``/``Marker`` are the same mechanism under other names."""
    if max_results is not None:
        if ids_given:
            raise invalid_combination("The parameter MaxResults cannot be used with explicit ids")
        if not minimum <= max_results <= maximum:
            raise invalid_value(
                f"Value ( {max_results} ) for parameter maxResults is invalid. "
                f"Expecting a value between {minimum} and {maximum}."
            )
    ordered = sorted(items, key=key)
    if next_token:
        after = decode_token(next_token, kind, bad_token)
        ordered = [item for item in ordered if key(item) > after]
    if max_results is None or len(ordered) <= max_results:
        return Page(ordered, None)
    page = ordered[:max_results]
    return Page(page, encode_token(kind, key(page[-1])))


def encode_token(kind: str, last_key: str) -> str:
    return base64.urlsafe_b64encode(f"v2:{kind}:{last_key}".encode()).decode()


def decode_token(
    token: str, kind: str, bad_token: Callable[[str], CloudError] | None = None
) -> str:
    """The last key of the page before; InvalidPaginationToken for a token that is not
    base64 of one of ours, or continues another kind of listing."""
    try:
        text = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        text = ""
    prefix = f"v2:{kind}:"
    if not text.startswith(prefix):
        if bad_token is not None:
            raise bad_token(token)
        raise CloudError("InvalidPaginationToken", f"The token '{token}' is invalid.")
    return text[len(prefix) :]
