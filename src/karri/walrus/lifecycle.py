"""Lifecycle rules (a bucket's ``lifecycle`` configuration): what they say, which objects
they match, and when an object, a noncurrent version or an upload is due.

The S3 API parses and checks the document and hands over ``LifecycleRule`` values; they
are kept as JSON (``to_json``/``rules_from_json``) by ``Buckets.configure``. Times follow
S3: an object is due ``Days`` after it was written (or became noncurrent, or its upload
began), rounded up to the next midnight UTC; a ``Date`` is a midnight UTC itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

CONFIG = "lifecycle"  # the bucket configuration's name


@dataclass(frozen=True)
class RuleFilter:
    """Every predicate must hold (a legacy top-level ``Prefix`` is a filter of one)."""

    prefix: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    size_greater_than: int | None = None
    size_less_than: int | None = None

    def matches(self, key: str, size: int, tags: Mapping[str, str]) -> bool:
        if not key.startswith(self.prefix):
            return False
        if self.size_greater_than is not None and not size > self.size_greater_than:
            return False
        if self.size_less_than is not None and not size < self.size_less_than:
            return False
        return all(tags.get(name) == value for name, value in self.tags)


@dataclass(frozen=True)
class Transition:
    """Kept and shown back; karri's classes all read like STANDARD, so nothing moves."""

    storage_class: str
    days: int | None = None
    date: str | None = None  # ISO 8601, midnight UTC
    newer_versions: int | None = None  # NoncurrentVersionTransitions only


@dataclass(frozen=True)
class LifecycleRule:
    id: str
    enabled: bool
    filter: RuleFilter
    # How the filter was written, to show it back as it came: "filter" (a Filter
    # element; ``filter_form`` says which of its members), or "prefix" (legacy).
    written_as: str = "filter"
    filter_form: str = "prefix"  # "", "prefix", "tag", "gt", "lt" or "and"
    expiration_days: int | None = None
    expiration_date: str | None = None
    expired_delete_marker: bool | None = None
    noncurrent_days: int | None = None
    newer_noncurrent_versions: int | None = None
    abort_days: int | None = None
    transitions: tuple[Transition, ...] = ()
    noncurrent_transitions: tuple[Transition, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def expires(self, last_modified: datetime) -> datetime | None:
        """When a current version written at ``last_modified`` expires, if it does."""
        if self.expiration_days is not None:
            return after_days(last_modified, self.expiration_days)
        if self.expiration_date is not None:
            return parse_date(self.expiration_date)
        return None


@dataclass(frozen=True)
class Lifecycle:
    """A bucket's rules, and the default transition minimum size it asked for."""

    rules: tuple[LifecycleRule, ...]
    transition_minimum: str = "all_storage_classes_128K"
    enabled: tuple[LifecycleRule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "enabled", tuple(r for r in self.rules if r.enabled))

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": [rule.to_json() for rule in self.rules],
            "transition_minimum": self.transition_minimum,
        }

    def expiration(
        self, key: str, size: int, tags: Mapping[str, str], last_modified: datetime
    ) -> tuple[datetime, str] | None:
        """(expiry date, rule id) of the earliest expiration of a current version."""
        found: tuple[datetime, str] | None = None
        for rule in self.enabled:
            when = rule.expires(last_modified)
            if when is None or when == NEVER or (found is not None and when >= found[0]):
                continue
            if rule.filter.matches(key, size, tags):
                found = (when, rule.id)
        return found

    def abort(self, key: str, initiated: datetime) -> tuple[datetime, str] | None:
        """(abort date, rule id) of an upload of ``key`` begun at ``initiated``: the rules
        that abort uploads filter by prefix alone (uploads have no tags or size yet)."""
        found: tuple[datetime, str] | None = None
        for rule in self.enabled:
            if rule.abort_days is None or not key.startswith(rule.filter.prefix):
                continue
            when = after_days(initiated, rule.abort_days)
            if when != NEVER and (found is None or when < found[0]):
                found = (when, rule.id)
        return found


def lifecycle_from_json(value: Mapping[str, Any] | None) -> Lifecycle | None:
    """The rules a bucket keeps (``BucketInfo.config(CONFIG)``), or None."""
    if not value:
        return None
    rules = []
    for raw in value.get("rules", ()):
        fields = dict(raw)
        flt = dict(fields.pop("filter"))
        flt["tags"] = tuple(tuple(pair) for pair in flt.get("tags", ()))
        fields["transitions"] = tuple(Transition(**t) for t in fields.get("transitions", ()))
        fields["noncurrent_transitions"] = tuple(
            Transition(**t) for t in fields.get("noncurrent_transitions", ())
        )
        rules.append(LifecycleRule(filter=RuleFilter(**flt), **fields))
    return Lifecycle(tuple(rules), value.get("transition_minimum", "all_storage_classes_128K"))


def midnight_after(moment: datetime) -> datetime:
    """The next midnight UTC at or after ``moment`` (S3 rounds lifecycle times up)."""
    moment = aware(moment)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if day == moment else day + timedelta(days=1)


NEVER = datetime.max.replace(tzinfo=UTC)  # past the calendar: no clock reaches it


def after_days(moment: datetime, days: int) -> datetime:
    """``days`` after ``moment``, rounded up to midnight UTC; NEVER past year 9999."""
    try:
        return midnight_after(aware(moment) + timedelta(days=days))
    except OverflowError:
        return NEVER


def parse_date(text: str) -> datetime:
    """A stored rule date (ISO 8601) as an aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return aware(value)


def aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def prefixes(rules: Iterable[LifecycleRule]) -> list[str]:
    """The fewest key prefixes covering every rule's (a scan reads only those keys)."""
    kept: list[str] = []
    for prefix in sorted({rule.filter.prefix for rule in rules}):
        if not any(prefix.startswith(shorter) for shorter in kept):
            kept.append(prefix)
    return kept
