"""The Condition element: operators, set qualifiers, ``…IfExists`` and ``Null``.

A condition block is a list of tests, one per (operator, key): all must hold (AND). A test
holds when a value of the key in the request matches one of the policy's values (OR).
A key missing from the request makes a test false, except for a negated operator
(``StringNotEquals``…: true), ``…IfExists`` (true), ``ForAllValues:`` (true: every one of no
values matches) and ``ForAnyValue:`` (false). ``Null`` tests presence alone.

Negated operators are the negation of their positive twin: ``StringNotEquals`` with two
values holds when the request's value equals neither. With a set qualifier the negation is
per request value: ``ForAllValues:StringNotLike`` holds when no request value matches any
policy value.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from .arn import compile_arn_parts
from .context import ContextKeys
from .errors import LEGACY, SYNTAX, MalformedPolicy
from .variables import TemplateMatcher, parse_template, text_of
from .wildcard import Matcher, Parts, compile_parts

VENDOR = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
ALL_VALUES = "ForAllValues:"
ANY_VALUE = "ForAnyValue:"
IF_EXISTS = "IfExists"


class Qualifier(Enum):
    NONE = ""
    ANY = ANY_VALUE
    ALL = ALL_VALUES


# ---- the comparisons: a policy value (its parts, variables filled in) to a test of one
# request value


def _string(parts: Parts) -> Matcher:
    return text_of(parts).__eq__


def _string_ignore_case(parts: Parts) -> Matcher:
    expected = text_of(parts).lower()
    return lambda value: value.lower() == expected


def _string_like(parts: Parts) -> Matcher:
    return compile_parts(parts)


def _bool(parts: Parts) -> Matcher:
    return _string_ignore_case(parts)


def parse_number(text: str) -> float | None:
    """A finite decimal number in ASCII (``float`` alone takes "1_0", other scripts' digits,
    "nan" and "inf")."""
    if not text.isascii() or "_" in text:
        return None
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_date(text: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 date (``2020-01-01``,
    ``2020-01-01T00:00:01Z``, with an offset or fractions) or of epoch seconds."""
    text = text.strip()
    if not text or not text.isascii():
        return None
    if text.replace(".", "", 1).isdigit():
        return parse_number(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# Request values repeat (the time of a second, a client's address): parsed once each.
_parse_request_number = lru_cache(maxsize=1024)(parse_number)
_parse_request_date = lru_cache(maxsize=1024)(parse_date)
_REQUEST_PARSER = {parse_number: _parse_request_number, parse_date: _parse_request_date}


def _ordered(parse: Callable[[str], float | None], compare: Callable[[float, float], bool]):
    parse_request = _REQUEST_PARSER[parse]

    def compile(parts: Parts) -> Matcher:
        expected = parse(text_of(parts))
        if expected is None:
            raise MalformedPolicy(LEGACY)

        def match(value: str) -> bool:
            actual = parse_request(value)
            return actual is not None and compare(actual, expected)

        return match

    return compile


def _binary(parts: Parts) -> Matcher:
    expected = _base64(text_of(parts))
    if expected is None:
        raise MalformedPolicy(LEGACY)
    return lambda value: _base64(value) == expected


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _ip(parts: Parts) -> Matcher:
    try:
        network = ipaddress.ip_network(text_of(parts).strip(), strict=False)
    except ValueError:
        raise MalformedPolicy(LEGACY) from None

    def match(value: str) -> bool:
        address = _address(value)
        return address is not None and address.version == network.version and address in network

    return match


@lru_cache(maxsize=1024)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class Family:
    """How one operator compares: its comparison, whether it is a negation, whether its
    values may hold policy variables."""

    compile: Callable[[Parts], Matcher]
    negated: bool = False
    variables: bool = False


def _pair(compile: Callable[[Parts], Matcher], variables: bool = False) -> tuple[Family, Family]:
    return Family(compile, False, variables), Family(compile, True, variables)


_STRING, _NOT_STRING = _pair(_string, True)
_STRING_IC, _NOT_STRING_IC = _pair(_string_ignore_case, True)
_LIKE, _NOT_LIKE = _pair(_string_like, True)
_ARN, _NOT_ARN = _pair(compile_arn_parts, True)
_IP, _NOT_IP = _pair(_ip)


def _ordered_operators(prefix: str, parse: Callable[[str], float | None]) -> dict[str, Family]:
    """The six operators of numbers or dates: ``NumericEquals``, ``NumericNotEquals``,
    ``NumericLessThan``…"""
    equals, not_equals = _pair(_ordered(parse, operator.eq))
    operators = {f"{prefix}Equals": equals, f"{prefix}NotEquals": not_equals}
    for name, compare in (
        ("LessThan", operator.lt),
        ("LessThanEquals", operator.le),
        ("GreaterThan", operator.gt),
        ("GreaterThanEquals", operator.ge),
    ):
        operators[prefix + name] = Family(_ordered(parse, compare))
    return operators


OPERATORS: Mapping[str, Family] = {
    "StringEquals": _STRING,
    "StringNotEquals": _NOT_STRING,
    "StringEqualsIgnoreCase": _STRING_IC,
    "StringNotEqualsIgnoreCase": _NOT_STRING_IC,
    "StringLike": _LIKE,
    "StringNotLike": _NOT_LIKE,
    **_ordered_operators("Numeric", parse_number),
    **_ordered_operators("Date", parse_date),
    "Bool": Family(_bool, variables=True),
    "BinaryEquals": Family(_binary),
    "IpAddress": _IP,
    "NotIpAddress": _NOT_IP,
    "ArnEquals": _ARN,
    "ArnLike": _ARN,
    "ArnNotEquals": _NOT_ARN,
    "ArnNotLike": _NOT_ARN,
}


# ---- the tests


class Test:
    """One (operator, key) of a Condition block."""

    __slots__ = ()
    key: str  # lower case
    operator: str  # as the policy wrote it

    def holds(self, keys: ContextKeys) -> bool:
        raise NotImplementedError


class KeyTest(Test):
    __slots__ = ("fixed", "if_exists", "key", "negated", "operator", "qualifier", "values")

    def __init__(
        self,
        operator: str,
        key: str,
        family: Family,
        values: list[TemplateMatcher],
        qualifier: Qualifier,
        if_exists: bool,
    ) -> None:
        self.operator = operator
        self.key = key
        self.negated = family.negated
        self.values = values
        self.qualifier = qualifier
        self.if_exists = if_exists
        # The matchers, when no value holds a variable.
        self.fixed = [v.static for v in values] if all(v.static for v in values) else None

    def holds(self, keys: ContextKeys) -> bool:
        request = keys.get(self.key)
        if not request:
            if self.if_exists or self.qualifier is Qualifier.ALL:
                return True
            return self.negated and self.qualifier is Qualifier.NONE
        matchers = self.fixed or [value.matcher(keys.single) for value in self.values]

        def matches(value: str) -> bool:
            return any(m(value) for m in matchers)

        if self.qualifier is Qualifier.NONE:
            return any(map(matches, request)) != self.negated
        outcomes = (matches(value) != self.negated for value in request)
        return all(outcomes) if self.qualifier is Qualifier.ALL else any(outcomes)


class NullTest(Test):
    """``Null``: ``true`` holds when the key is absent, ``false`` when it is present."""

    __slots__ = ("absent", "key", "operator")

    def __init__(self, key: str, values: list[str]) -> None:
        self.operator = "Null"
        self.key = key
        self.absent = {value.lower() == "true" for value in values}

    def holds(self, keys: ContextKeys) -> bool:
        return (not keys.get(self.key)) in self.absent


def parse_conditions(block: Any, variables: bool) -> tuple[Test, ...]:
    """The tests of a statement's Condition element; ``variables`` when the policy's
    version has them (2012-10-17)."""
    if not isinstance(block, dict):
        raise MalformedPolicy(SYNTAX)
    tests: list[Test] = []
    for name, entries in block.items():
        if not isinstance(entries, dict):
            raise MalformedPolicy(SYNTAX)
        for key, raw in entries.items():
            tests.append(_test(name, key, condition_values(raw), variables))
    return tuple(tests)


def condition_values(raw: Any) -> list[str]:
    """A condition's value or values as strings (JSON booleans as ``true``/``false``)."""
    items = raw if isinstance(raw, list) else [raw]
    values = []
    for item in items:
        if isinstance(item, bool):
            values.append("true" if item else "false")
        elif isinstance(item, str):
            values.append(item)
        elif isinstance(item, int | float):
            values.append(str(item))
        else:
            raise MalformedPolicy(SYNTAX)
    return values


def _test(name: str, key: str, values: list[str], variables: bool) -> Test:
    if ":" not in key or not key.split(":", 1)[0]:
        raise MalformedPolicy(VENDOR)
    if name == "Null":
        return NullTest(key.lower(), values)
    qualifier = Qualifier.NONE
    base = name
    for candidate in (Qualifier.ANY, Qualifier.ALL):
        if base.startswith(candidate.value):
            qualifier, base = candidate, base[len(candidate.value) :]
    if_exists = base.endswith(IF_EXISTS)
    if if_exists:
        base = base[: -len(IF_EXISTS)]
    family = OPERATORS.get(base)
    if family is None:
        raise MalformedPolicy(SYNTAX)
    use_variables = variables and family.variables
    matchers = [
        TemplateMatcher(parse_template(value, use_variables), family.compile) for value in values
    ]
    return KeyTest(name, key.lower(), family, matchers, qualifier, if_exists)
