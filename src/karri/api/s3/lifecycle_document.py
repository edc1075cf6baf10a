"""The lifecycle configuration document: read and checked as S3 checks it (schema slips
are MalformedXML, values out of range InvalidArgument, contradictions InvalidRequest, in
S3's order), and written back as it came."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from xml.etree.ElementTree import Element

from karri.api.s3 import xml
from karri.numbers import integer
from karri.timestamps import iso8601
from karri.walrus import LifecycleRule, RuleFilter, S3Error, Transition, invalid_argument

MAX_RULES = 1000
MAX_ID = 255
MAX_PREFIX = 1024
MAX_FILTER_TAGS = 10
MAX_SIZE = 1099511627776000
# Classes a transition may name (botocore's TransitionStorageClass). Karri keeps every
# object as STANDARD; the instant-access classes read the same, so a transition to one
# changes nothing a client sees. The archive classes need a restore karri does not have.
INSTANT_CLASSES = {"STANDARD_IA": 30, "ONEZONE_IA": 30, "INTELLIGENT_TIERING": 0, "GLACIER_IR": 0}
ARCHIVE_CLASSES = {"GLACIER", "DEEP_ARCHIVE"}


def invalid_request(message: str) -> S3Error:
    return S3Error("InvalidRequest", message, 400)


# -- reading the document ----------------------------------------------------------------


def parse_rules(body: bytes) -> tuple[LifecycleRule, ...]:
    """The rules of a document, checked in S3's order: their number and IDs first, then
    each rule. A configuration whose first rule has a ``Filter`` is "Lifecycle V2": its
    rules may not use the legacy top-level ``Prefix``; one that starts with a ``Prefix``
    may not use ``Filter`` or ``NewerNoncurrentVersions`` nor overlap its prefixes."""
    root = xml.parse(body, "LifecycleConfiguration")
    if any(xml.local(item.tag) != "Rule" for item in root):
        raise xml.malformed()
    elements = xml.children(root, "Rule")
    if not elements:
        raise invalid_request("At least one lifecycle rule must be specified.")
    if len(elements) > MAX_RULES:
        raise invalid_request(
            "The number of lifecycle rules must not exceed the allowed limit of 1000 rules."
        )
    seen: set[str] = set()
    for element in elements:
        rule_id = _text(element, "ID")
        if not rule_id:
            continue
        if len(rule_id) > MAX_ID:
            raise invalid_argument("ID length should not exceed allowed limit of 255")
        if rule_id in seen:
            raise invalid_argument("Rule ID must be unique. Found same ID for more than one rule")
        seen.add(rule_id)
    v2 = _one(elements[0], "Filter") is not None
    rules = tuple(_rule(element, v2) for element in elements)
    if not v2:
        _no_overlaps(rules)
    return rules


ACTIONS: dict[str, Callable[[LifecycleRule], bool]] = {
    "Expiration": lambda r: (
        (r.expiration_days, r.expiration_date, r.expired_delete_marker) != (None, None, None)
    ),
    "Transition": lambda r: bool(r.transitions),
    "NoncurrentVersionTransition": lambda r: bool(r.noncurrent_transitions),
    "NoncurrentVersionExpiration": lambda r: r.noncurrent_days is not None,
    "AbortIncompleteMultipartUpload": lambda r: r.abort_days is not None,
}


def _no_overlaps(rules: tuple[LifecycleRule, ...]) -> None:
    """Before Lifecycle V2, two rules whose prefixes overlap may not take one kind of action."""
    for kind, takes in ACTIONS.items():
        found = sorted(rule.filter.prefix for rule in rules if takes(rule))
        for shorter, longer in itertools.pairwise(found):
            if longer.startswith(shorter):
                raise invalid_request(
                    f"Found overlapping prefixes '{shorter}' and '{longer}' for same action "
                    f"type '{kind}'"
                )


def _one(element: Element, name: str) -> Element | None:
    found = xml.children(element, name)
    if len(found) > 1:
        raise xml.malformed()
    return found[0] if found else None


def _text(element: Element, name: str) -> str | None:
    found = _one(element, name)
    return None if found is None else (found.text or "")


def _number(element: Element, name: str, bits: int = 32) -> int | None:
    """A whole number of the schema: an Integer (32 bits; day and version counts) or a
    Long (64 bits; sizes). Anything else does not validate: MalformedXML."""
    text = _text(element, name)
    if text is None:
        return None
    value = integer(text.strip())
    if value is None or not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise xml.malformed()
    return value


def _positive(element: Element, name: str, action: str) -> int | None:
    value = _number(element, name)
    if value is not None and value < 1:
        raise invalid_argument(f"'{name}' for {action} action must be a positive integer")
    return value


def _date(element: Element, action: str) -> str | None:
    text = _text(element, "Date")
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise invalid_argument(f"Invalid 'Date' in {action} action: {text!r}") from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if (value.hour, value.minute, value.second, value.microsecond) != (0, 0, 0, 0):
        raise invalid_argument("'Date' must be at midnight GMT")
    return iso8601(value)


def _rule(element: Element, v2: bool) -> LifecycleRule:
    rule_id = _text(element, "ID")
    status = _text(element, "Status")
    if status not in ("Enabled", "Disabled"):
        raise xml.malformed()
    legacy = _text(element, "Prefix")
    filter_element = _one(element, "Filter")
    if legacy is None and filter_element is None:
        raise xml.malformed()
    if legacy is not None and v2:
        raise invalid_request(
            "Base level prefix cannot be used in Lifecycle V2, prefixes are only supported "
            "in the Filter."
        )
    if filter_element is not None and not v2:
        raise invalid_request("Filter element can only be used in Lifecycle V2.")
    if legacy is not None:
        _check_prefix(legacy)
        flt, written_as, form = RuleFilter(prefix=legacy), "prefix", "prefix"
    else:
        assert filter_element is not None
        flt, form = _filter(filter_element)
        written_as = "filter"
    expiration = _expiration(element, flt)
    noncurrent = _one(element, "NoncurrentVersionExpiration")
    noncurrent_days = newer = None
    if noncurrent is not None:
        action = "NoncurrentVersionExpiration"
        noncurrent_days = _positive(noncurrent, "NoncurrentDays", action)
        if noncurrent_days is None:
            raise xml.malformed()
        newer = _newer_versions(noncurrent, v2)
    abort = _one(element, "AbortIncompleteMultipartUpload")
    abort_days = None
    if abort is not None:
        abort_days = _positive(abort, "DaysAfterInitiation", "AbortIncompleteMultipartUpload")
        if abort_days is None:
            raise xml.malformed()
        _no_tags_or_sizes(flt, "AbortIncompleteMultipartUpload")
    transitions = _transitions(element, "Transition", "Days", v2)
    noncurrent_transitions = _transitions(
        element, "NoncurrentVersionTransition", "NoncurrentDays", v2
    )
    has_action = (
        expiration != (None, None, None)
        or noncurrent_days is not None
        or abort_days is not None
        or transitions
        or noncurrent_transitions
    )
    if not has_action:
        raise invalid_request("At least one action needs to be specified in a rule")
    days, date, marker = expiration
    _check_order(days, date, transitions)
    return LifecycleRule(
        id=rule_id or secrets.token_urlsafe(36)[:48],
        enabled=status == "Enabled",
        filter=flt,
        written_as=written_as,
        filter_form=form,
        expiration_days=days,
        expiration_date=date,
        expired_delete_marker=marker,
        noncurrent_days=noncurrent_days,
        newer_noncurrent_versions=newer,
        abort_days=abort_days,
        transitions=transitions,
        noncurrent_transitions=noncurrent_transitions,
    )


def _check_prefix(prefix: str) -> None:
    if len(prefix) > MAX_PREFIX:
        raise invalid_argument("The maximum size of a prefix is 1024.")


def _tag(element: Element) -> tuple[str, str]:
    key, value = _text(element, "Key"), _text(element, "Value")
    if not key or value is None:
        raise xml.malformed()
    if len(key) > 128:
        raise S3Error("InvalidTag", "The TagKey you have provided is invalid", 400)
    if len(value) > 256:
        raise S3Error("InvalidTag", "The TagValue you have provided is invalid", 400)
    return key, value


def _sizes(element: Element) -> tuple[int | None, int | None]:
    greater = _number(element, "ObjectSizeGreaterThan", 64)
    less = _number(element, "ObjectSizeLessThan", 64)
    if greater is not None and not 0 <= greater <= MAX_SIZE:
        raise invalid_request(f"'ObjectSizeGreaterThan' should be between 0 and {MAX_SIZE}.")
    if less is not None and not 1 <= less <= MAX_SIZE:
        raise invalid_request(f"'ObjectSizeLessThan' should be between 1 and {MAX_SIZE}.")
    if greater is not None and less is not None and greater >= less:
        raise invalid_request(
            "'ObjectSizeLessThan' has to be a value greater than 'ObjectSizeGreaterThan'."
        )
    return greater, less


def _filter(element: Element) -> tuple[RuleFilter, str]:
    """The Filter's predicate (exactly one member, or none: every object)."""
    members = [xml.local(item.tag) for item in element]
    allowed = {"Prefix", "Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan", "And"}
    if len(members) > 1 or not set(members) <= allowed:
        raise xml.malformed()
    if not members:
        return RuleFilter(), ""
    member = members[0]
    if member == "Prefix":
        prefix = _text(element, "Prefix") or ""
        _check_prefix(prefix)
        return RuleFilter(prefix=prefix), "prefix"
    if member == "Tag":
        tag = _one(element, "Tag")
        assert tag is not None
        return RuleFilter(tags=(_tag(tag),)), "tag"
    if member != "And":
        greater, less = _sizes(element)
        return RuleFilter(size_greater_than=greater, size_less_than=less), (
            "gt" if greater is not None else "lt"
        )
    both = _one(element, "And")
    assert both is not None
    inner = {xml.local(item.tag) for item in both}
    if not inner <= {"Prefix", "Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan"}:
        raise xml.malformed()
    prefix = _text(both, "Prefix")
    _check_prefix(prefix or "")
    tags = [_tag(item) for item in xml.children(both, "Tag")]
    if len(tags) > MAX_FILTER_TAGS:
        raise invalid_argument("Object tags cannot be greater than 10")
    if len({key for key, _value in tags}) != len(tags):
        raise invalid_request("Duplicate Tag Keys are not allowed.")
    greater, less = _sizes(both)
    predicates = (prefix is not None) + len(tags) + (greater is not None) + (less is not None)
    if predicates < 2:
        raise xml.malformed()
    flt = RuleFilter(prefix or "", tuple(tags), greater, less)
    return flt, "and"


def _expiration(element: Element, flt: RuleFilter) -> tuple[int | None, str | None, bool | None]:
    found = _one(element, "Expiration")
    if found is None:
        return None, None, None
    days = _positive(found, "Days", "Expiration")
    date = _date(found, "Expiration")
    marker_text = _text(found, "ExpiredObjectDeleteMarker")
    marker = None
    if marker_text is not None:
        if marker_text.strip() not in ("true", "false"):
            raise xml.malformed()
        marker = marker_text.strip() == "true"
    if sum(value is not None for value in (days, date, marker)) != 1:
        raise xml.malformed()
    if marker is not None:
        _no_tags_or_sizes(flt, "ExpiredObjectDeleteMarker")
    return days, date, marker


def _no_tags_or_sizes(flt: RuleFilter, action: str) -> None:
    """Delete markers and uploads have no tags or size to filter by."""
    if flt.tags:
        raise invalid_request(f"{action} cannot be specified with Tags.")
    if flt.size_greater_than is not None or flt.size_less_than is not None:
        raise invalid_request(f"{action} cannot be specified with Object Size.")


def _newer_versions(element: Element, v2: bool) -> int | None:
    """``NewerNoncurrentVersions``: at least 1 (S3 documents 100 at most, and takes more)."""
    newer = _number(element, "NewerNoncurrentVersions")
    if newer is not None and not v2:
        raise invalid_request("NewerNoncurrentVersions element can only be used in Lifecycle V2.")
    if newer is not None and newer < 1:
        raise invalid_argument("'NewerNoncurrentVersions' must be a positive integer")
    return newer


def _transitions(element: Element, name: str, days_name: str, v2: bool) -> tuple[Transition, ...]:
    found: list[Transition] = []
    for item in xml.children(element, name):
        storage_class = _text(item, "StorageClass")
        if storage_class is None:
            raise xml.malformed()
        if storage_class in ARCHIVE_CLASSES:
            raise S3Error(
                "InvalidStorageClass",
                "The storage class you specified is not valid (karri has no archive storage)",
                400,
            )
        if storage_class not in INSTANT_CLASSES:  # not one of the schema's classes
            raise xml.malformed()
        days = _number(item, days_name)
        date = _date(item, name) if days_name == "Days" else None
        if (days is None) == (date is None):
            raise xml.malformed()
        if days is not None and days < 0:
            raise invalid_argument(f"'{days_name}' in {name} action must not be negative")
        if days is not None and days < INSTANT_CLASSES[storage_class]:
            raise invalid_argument(
                f"'{days_name}' in {name} action must be greater than or equal to "
                f"{INSTANT_CLASSES[storage_class]} for storageClass '{storage_class}'"
            )
        newer = _newer_versions(item, v2) if days_name == "NoncurrentDays" else None
        if any(t.storage_class == storage_class for t in found):
            raise invalid_request(
                f"'StorageClass' must be different for '{name}' actions in same 'Rule'"
            )
        found.append(Transition(storage_class, days, date, newer))
    return tuple(found)


def _check_order(days: int | None, date: str | None, transitions: tuple[Transition, ...]) -> None:
    """Dates and days are not mixed in one rule, and expiration comes after transitions."""
    kinds = {t.days is None for t in transitions}
    if days is not None or date is not None:
        kinds.add(days is None)
    if len(kinds) > 1:
        raise invalid_request(
            "Found mixed 'Date' and 'Days' based Expiration and Transition actions in "
            "lifecycle rule"
        )
    for transition in transitions:
        if days is not None and transition.days is not None and days <= transition.days:
            raise invalid_argument(
                "'Days' in the Expiration action must be greater than 'Days' in the "
                "Transition action"
            )
        if date is not None and transition.date is not None and date <= transition.date:
            raise invalid_argument(
                "'Date' in the Expiration action must be later than 'Date' in the Transition action"
            )


# -- writing the document ---------------------------------------------------------------


def _tag_xml(key: str, value: str) -> str:
    return f"<Tag>{xml.el('Key', key)}{xml.el('Value', value)}</Tag>"


def _filter_xml(rule: LifecycleRule) -> str:
    flt = rule.filter
    if rule.written_as == "prefix":
        return xml.el("Prefix", flt.prefix)
    form = rule.filter_form
    inner = ""
    if form == "prefix":
        inner = xml.el("Prefix", flt.prefix)
    elif form == "tag":
        inner = _tag_xml(*flt.tags[0])
    elif form == "gt":
        inner = xml.el("ObjectSizeGreaterThan", flt.size_greater_than)
    elif form == "lt":
        inner = xml.el("ObjectSizeLessThan", flt.size_less_than)
    elif form == "and":
        parts = [xml.el("Prefix", flt.prefix)] if flt.prefix else []
        parts += [_tag_xml(k, v) for k, v in flt.tags]
        if flt.size_greater_than is not None:
            parts.append(xml.el("ObjectSizeGreaterThan", flt.size_greater_than))
        if flt.size_less_than is not None:
            parts.append(xml.el("ObjectSizeLessThan", flt.size_less_than))
        inner = f"<And>{''.join(parts)}</And>"
    return f"<Filter>{inner}</Filter>"


def _transition_xml(name: str, days_name: str, transition: Transition) -> str:
    parts = []
    if transition.date is not None:
        parts.append(xml.el("Date", transition.date))
    if transition.days is not None:
        parts.append(xml.el(days_name, transition.days))
    if transition.newer_versions is not None:
        parts.append(xml.el("NewerNoncurrentVersions", transition.newer_versions))
    parts.append(xml.el("StorageClass", transition.storage_class))
    return f"<{name}>{''.join(parts)}</{name}>"


def rule_xml(rule: LifecycleRule) -> str:
    parts = []
    if rule.expiration_days is not None:
        parts.append(f"<Expiration>{xml.el('Days', rule.expiration_days)}</Expiration>")
    elif rule.expiration_date is not None:
        parts.append(f"<Expiration>{xml.el('Date', rule.expiration_date)}</Expiration>")
    elif rule.expired_delete_marker is not None:
        marker = xml.el("ExpiredObjectDeleteMarker", rule.expired_delete_marker)
        parts.append(f"<Expiration>{marker}</Expiration>")
    parts += [xml.el("ID", rule.id), _filter_xml(rule)]
    parts.append(xml.el("Status", "Enabled" if rule.enabled else "Disabled"))
    parts += [_transition_xml("Transition", "Days", t) for t in rule.transitions]
    parts += [
        _transition_xml("NoncurrentVersionTransition", "NoncurrentDays", t)
        for t in rule.noncurrent_transitions
    ]
    if rule.noncurrent_days is not None:
        inner = xml.el("NoncurrentDays", rule.noncurrent_days)
        if rule.newer_noncurrent_versions is not None:
            inner += xml.el("NewerNoncurrentVersions", rule.newer_noncurrent_versions)
        parts.append(f"<NoncurrentVersionExpiration>{inner}</NoncurrentVersionExpiration>")
    if rule.abort_days is not None:
        inner = xml.el("DaysAfterInitiation", rule.abort_days)
        parts.append(f"<AbortIncompleteMultipartUpload>{inner}</AbortIncompleteMultipartUpload>")
    return f"<Rule>{''.join(parts)}</Rule>"
