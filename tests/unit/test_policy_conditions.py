"""Condition operators, set qualifiers, IfExists and Null (karri.policy.conditions)."""

from __future__ import annotations

from typing import Any

import pytest

from karri.policy.conditions import parse_conditions, parse_date, parse_number
from karri.policy.context import ContextKeys, KeyValue
from karri.policy.variables import Unresolved


def holds(block: dict[str, Any], keys: dict[str, KeyValue], variables: bool = True) -> bool:
    context = ContextKeys(keys)
    return all(test.holds(context) for test in parse_conditions(block, variables))


def one(operator: str, value: Any, request: KeyValue | None, key: str = "aws:k") -> bool:
    return holds({operator: {key: value}}, {} if request is None else {key: request})


# ---- strings


@pytest.mark.parametrize(
    ("operator", "value", "request_value", "expected"),
    [
        ("StringEquals", "abc", "abc", True),
        ("StringEquals", "abc", "ABC", False),
        ("StringEquals", "a*", "abc", False),  # no wildcards
        ("StringEquals", ["x", "abc"], "abc", True),  # values are ORed
        ("StringNotEquals", "abc", "abc", False),
        ("StringNotEquals", "abc", "abd", True),
        ("StringNotEquals", ["x", "abc"], "abc", False),  # equal to neither
        ("StringEqualsIgnoreCase", "ABC", "abc", True),
        ("StringEqualsIgnoreCase", "ABC", "abd", False),
        ("StringNotEqualsIgnoreCase", "ABC", "abc", False),
        ("StringNotEqualsIgnoreCase", "ABC", "abd", True),
        ("StringLike", "home/*", "home/bob/x", True),
        ("StringLike", "home/?ob", "home/bob", True),
        ("StringLike", "home/*", "Home/bob", False),  # case-sensitive
        ("StringLike", ["", "home/"], "", True),
        ("StringNotLike", "home/*", "home/bob", False),
        ("StringNotLike", "home/*", "work/bob", True),
    ],
)
def test_string_operators(operator: str, value: Any, request_value: str, expected: bool) -> None:
    assert one(operator, value, request_value) is expected


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("StringEquals", False),
        ("StringLike", False),
        ("NumericLessThan", False),
        ("DateGreaterThan", False),
        ("Bool", False),
        ("IpAddress", False),
        ("ArnLike", False),
        ("BinaryEquals", False),
        # Negated operators hold when the key is missing.
        ("StringNotEquals", True),
        ("StringNotLike", True),
        ("StringNotEqualsIgnoreCase", True),
        ("NumericNotEquals", True),
        ("DateNotEquals", True),
        ("NotIpAddress", True),
        ("ArnNotLike", True),
        ("ArnNotEquals", True),
        # IfExists holds when the key is missing, whatever the operator.
        ("StringEqualsIfExists", True),
        ("StringNotEqualsIfExists", True),
        ("NumericLessThanIfExists", True),
        ("BoolIfExists", True),
        ("ArnLikeIfExists", True),
        # Set qualifiers: every one of no values matches; no value matches any.
        ("ForAllValues:StringEquals", True),
        ("ForAnyValue:StringEquals", False),
        ("ForAllValues:StringNotEquals", True),
        ("ForAnyValue:StringNotEquals", False),
        ("ForAnyValue:StringEqualsIfExists", True),
    ],
)
def test_a_missing_key(operator: str, expected: bool) -> None:
    values = {
        "Numeric": "1",
        "Date": "2020-01-01",
        "IpAddress": "10.0.0.0/8",
        "NotIpAddress": "10.0.0.0/8",
        "Binary": "YQ==",
    }
    base = operator.split(":")[-1]
    value = next((v for prefix, v in values.items() if base.startswith(prefix)), "x")
    assert one(operator, value, None) is expected
    assert one(operator, value, []) is expected  # no values: missing too


def test_condition_keys_are_case_insensitive() -> None:
    assert holds({"StringEquals": {"AWS:UserName": "bob"}}, {"aws:username": "bob"})
    assert holds({"StringEquals": {"aws:username": "bob"}}, {"AWS:USERNAME": "bob"})
    assert holds({"StringEquals": {"aws:ResourceTag/Owner": "x"}}, {"aws:resourcetag/owner": "x"})


def test_keys_and_operators_are_anded_values_ored() -> None:
    block = {
        "StringEquals": {"aws:a": ["1", "2"], "aws:b": "3"},
        "StringLike": {"aws:c": "x*"},
    }
    assert holds(block, {"aws:a": "2", "aws:b": "3", "aws:c": "xyz"})
    assert not holds(block, {"aws:a": "4", "aws:b": "3", "aws:c": "xyz"})
    assert not holds(block, {"aws:a": "1", "aws:b": "4", "aws:c": "xyz"})
    assert not holds(block, {"aws:a": "1", "aws:b": "3", "aws:c": "yz"})
    assert not holds(block, {"aws:a": "1", "aws:b": "3"})


# ---- numbers, dates, booleans, binary, addresses, ARNs


@pytest.mark.parametrize(
    ("operator", "value", "request_value", "expected"),
    [
        ("NumericEquals", "10", "10", True),
        ("NumericEquals", "10", "10.0", True),
        ("NumericEquals", 10, "11", False),
        ("NumericNotEquals", "10", "11", True),
        ("NumericNotEquals", "10", "10", False),
        ("NumericLessThan", "10", "9", True),
        ("NumericLessThan", "10", "10", False),
        ("NumericLessThanEquals", "10", "10", True),
        ("NumericLessThanEquals", "10", "11", False),
        ("NumericGreaterThan", "10", "11", True),
        ("NumericGreaterThan", "10", "10", False),
        ("NumericGreaterThanEquals", "10", "10", True),
        ("NumericGreaterThanEquals", "1.5", "1.4", False),
        ("NumericLessThan", "10", "ten", False),  # a request value that is no number
        ("NumericNotEquals", "10", "ten", True),
    ],
)
def test_numeric_operators(operator: str, value: Any, request_value: str, expected: bool) -> None:
    assert one(operator, value, request_value, "s3:max-keys") is expected


@pytest.mark.parametrize(
    ("operator", "value", "request_value", "expected"),
    [
        ("DateEquals", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
        ("DateEquals", "2020-01-01T00:00:00Z", "1577836800", True),  # epoch seconds
        ("DateEquals", "1577836800", "2020-01-01T01:00:00+01:00", True),  # offsets
        ("DateEquals", "2020-01-01", "2020-01-01T00:00:00Z", True),  # a date is its midnight
        ("DateNotEquals", "2020-01-01", "2020-01-02", True),
        ("DateLessThan", "2020-01-01T00:00:00Z", "2019-12-31T23:59:59Z", True),
        ("DateLessThan", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", False),
        ("DateLessThanEquals", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
        ("DateGreaterThan", "2020-01-01T00:00:01Z", "2020-06-01T00:00:00.5Z", True),
        ("DateGreaterThan", "2020-01-01T00:00:01Z", "2020-01-01T00:00:01Z", False),
        ("DateGreaterThanEquals", "2020-01-01T00:00:01Z", "2020-01-01T00:00:01Z", True),
        ("DateGreaterThan", "2020-01-01", "garbage", False),
    ],
)
def test_date_operators(operator: str, value: str, request_value: str, expected: bool) -> None:
    assert one(operator, value, request_value, "aws:CurrentTime") is expected


def test_dates_parse_as_iso_8601_or_epoch_seconds() -> None:
    assert parse_date("1970-01-01T00:00:10Z") == 10
    assert parse_date("10") == 10
    assert parse_date("10.5") == 10.5
    assert parse_date("1970-01-01T00:00:10.250Z") == 10.25
    assert parse_date("") is None
    assert parse_date("tomorrow") is None


def test_a_time_window_from_the_iam_examples() -> None:
    window = {
        "DateGreaterThan": {"aws:CurrentTime": "2020-04-01T00:00:00Z"},
        "DateLessThan": {"aws:CurrentTime": "2020-06-30T23:59:59Z"},
    }
    assert holds(window, {"aws:CurrentTime": "2020-05-05T12:00:00Z"})
    assert not holds(window, {"aws:CurrentTime": "2020-07-01T00:00:00Z"})
    assert not holds(window, {"aws:CurrentTime": "2020-03-31T23:59:59Z"})


@pytest.mark.parametrize(
    ("value", "request_value", "expected"),
    [
        ("false", False, True),
        (False, "false", True),
        ("true", "TRUE", True),
        ("true", "false", False),
        (True, True, True),
    ],
)
def test_bool(value: Any, request_value: Any, expected: bool) -> None:
    assert one("Bool", value, request_value, "aws:SecureTransport") is expected


def test_binary_equals_compares_decoded_bytes() -> None:
    value = "QmluYXJ5VmFsdWVJbkJhc2U2NA=="
    assert one("BinaryEquals", value, value)
    assert not one("BinaryEquals", value, "YQ==")
    assert not one("BinaryEquals", value, "not base64!")


@pytest.mark.parametrize(
    ("operator", "value", "request_value", "expected"),
    [
        ("IpAddress", "203.0.113.0/24", "203.0.113.7", True),
        ("IpAddress", "203.0.113.0/24", "203.0.114.7", False),
        ("IpAddress", "203.0.113.7", "203.0.113.7", True),  # a bare address is a /32
        ("IpAddress", "203.0.113.7", "203.0.113.8", False),
        ("IpAddress", "203.0.113.5/24", "203.0.113.200", True),  # host bits are ignored
        ("IpAddress", "2001:DB8:1234:5678::/64", "2001:db8:1234:5678::1", True),
        ("IpAddress", "2001:DB8:1234:5678::/64", "2001:db8:1234:5679::1", False),
        ("IpAddress", ["203.0.113.0/24", "2001:DB8:1234:5678::/64"], "2001:db8:1234:5678::9", True),
        ("IpAddress", "203.0.113.0/24", "2001:db8::1", False),  # other family
        ("IpAddress", "0.0.0.0/0", "not an address", False),
        ("NotIpAddress", "203.0.113.0/24", "203.0.113.7", False),
        ("NotIpAddress", ["192.0.2.0/24", "203.0.113.0/24"], "198.51.100.1", True),
    ],
)
def test_ip_address_operators(
    operator: str, value: Any, request_value: str, expected: bool
) -> None:
    assert one(operator, value, request_value, "aws:SourceIp") is expected


@pytest.mark.parametrize(
    ("operator", "value", "request_value", "expected"),
    [
        ("ArnEquals", "arn:aws:sns:r:123456789012:topic", "arn:aws:sns:r:123456789012:topic", True),
        ("ArnLike", "arn:aws:iam::*:role/admin-*", "arn:aws:iam::123:role/admin-x", True),
        ("ArnEquals", "arn:aws:iam::*:role/admin-*", "arn:aws:iam::123:role/admin-x", True),
        ("ArnLike", "arn:aws:iam::*:role/admin-*", "arn:aws:iam::123:user/admin-x", False),
        ("ArnNotLike", "arn:aws:iam::*:role/admin-*", "arn:aws:iam::123:user/admin-x", True),
        ("ArnNotEquals", "arn:aws:iam::*:role/admin-*", "arn:aws:iam::123:role/admin-x", False),
        (
            "ArnLike",
            "arn:aws:someservice:*:111122223333:finance/*",
            "arn:aws:someservice:us-east-2:"
            "999999999999:store/abc:111122223333:finance/document.txt",
            False,
        ),
        (
            "StringLike",
            "arn:aws:someservice:*:111122223333:finance/*",
            "arn:aws:someservice:us-east-2:"
            "999999999999:store/abc:111122223333:finance/document.txt",
            True,
        ),
    ],
)
def test_arn_operators(operator: str, value: str, request_value: str, expected: bool) -> None:
    assert one(operator, value, request_value, "aws:SourceArn") is expected


def test_null_checks_presence() -> None:
    assert one("Null", "true", None, "aws:TokenIssueTime")
    assert not one("Null", "true", "2020-01-01T00:00:00Z", "aws:TokenIssueTime")
    assert one("Null", "false", "2020-01-01T00:00:00Z", "aws:TokenIssueTime")
    assert not one("Null", False, None, "aws:TokenIssueTime")
    assert one("Null", ["true", "false"], None, "aws:TokenIssueTime")


# ---- multi-valued keys and set qualifiers (the DynamoDB examples of the IAM guide)


ATTRIBUTES = ["PostDateTime", "Message", "Tags"]


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (["PostDateTime", "Message"], True),
        (["PostDateTime", "UserName"], False),  # UserName is not among the allowed
        (["ID"], False),
        ([], True),  # an empty set: ForAllValues holds
    ],
)
def test_for_all_values(requested: list[str], expected: bool) -> None:
    block = {"ForAllValues:StringLike": {"dynamodb:requestedAttributes": ATTRIBUTES}}
    assert holds(block, {"dynamodb:requestedAttributes": requested}) is expected


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (["UserName", "Message", "PostDateTime"], True),  # PostDateTime matches
        (["UserName"], False),
        ([], False),  # an empty set: ForAnyValue does not hold
    ],
)
def test_for_any_value(requested: list[str], expected: bool) -> None:
    block = {"ForAnyValue:StringLike": {"dynamodb:requestedAttributes": ["ID", "PostDateTime"]}}
    assert holds(block, {"dynamodb:requestedAttributes": requested}) is expected


def test_negated_operators_under_set_qualifiers_negate_per_value() -> None:
    allowed_keys = ["environment", "cost-center"]
    none_of = {"ForAllValues:StringNotEquals": {"aws:TagKeys": allowed_keys}}
    assert holds(none_of, {"aws:TagKeys": ["owner", "team"]})
    assert not holds(none_of, {"aws:TagKeys": ["owner", "environment"]})
    some_other = {"ForAnyValue:StringNotEquals": {"aws:TagKeys": allowed_keys}}
    assert holds(some_other, {"aws:TagKeys": ["owner", "environment"]})
    assert not holds(some_other, {"aws:TagKeys": ["environment", "cost-center"]})


def test_an_unqualified_operator_on_a_multi_valued_key_matches_any_value() -> None:
    assert holds({"StringEquals": {"aws:TagKeys": "a"}}, {"aws:TagKeys": ["b", "a"]})
    assert not holds({"StringNotEquals": {"aws:TagKeys": "a"}}, {"aws:TagKeys": ["b", "a"]})
    assert holds({"StringNotEquals": {"aws:TagKeys": "a"}}, {"aws:TagKeys": ["b", "c"]})


def test_tag_keys_limited_to_a_list() -> None:
    """The IAM guide's "aws:TagKeys" example: only these tag keys may be sent."""
    block = {"ForAllValues:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}}
    assert holds(block, {"aws:TagKeys": ["environment"]})
    assert not holds(block, {"aws:TagKeys": ["environment", "owner"]})


# ---- policy variables in conditions


def test_string_conditions_take_policy_variables() -> None:
    block = {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/"]}}
    assert holds(block, {"s3:prefix": "home/bob/", "aws:username": "bob"})
    assert holds(block, {"s3:prefix": "", "aws:username": "bob"})
    assert not holds(block, {"s3:prefix": "home/alice/", "aws:username": "bob"})


def test_a_variable_stands_for_literal_text() -> None:
    block = {"StringLike": {"aws:ResourceTag/owner": "${aws:PrincipalTag/owner}"}}
    assert not holds(block, {"aws:ResourceTag/owner": "bob", "aws:PrincipalTag/owner": "*"})
    assert holds(block, {"aws:ResourceTag/owner": "*", "aws:PrincipalTag/owner": "*"})


def test_special_characters_and_defaults() -> None:
    assert holds({"StringEquals": {"aws:k": "a${*}b${?}${$}"}}, {"aws:k": "a*b?$"})
    assert holds({"StringLike": {"aws:k": "a${*}"}}, {"aws:k": "a*"})
    assert not holds({"StringLike": {"aws:k": "a${*}"}}, {"aws:k": "ab"})
    default = {"StringEquals": {"aws:k": "${aws:userid, 'anonymous'}"}}
    assert holds(default, {"aws:k": "anonymous"})
    assert holds(default, {"aws:k": "AIDA1", "aws:userid": "AIDA1"})


def test_an_unfillable_variable_is_unresolved() -> None:
    with pytest.raises(Unresolved):
        holds({"StringEquals": {"aws:k": "${aws:username}"}}, {"aws:k": "x"})


def test_a_multi_valued_key_fills_no_variable() -> None:
    with pytest.raises(Unresolved):
        holds(
            {"StringEquals": {"aws:k": "${aws:TagKeys}"}}, {"aws:k": "x", "aws:TagKeys": ["a", "b"]}
        )


def test_variables_in_bool_and_arn_conditions() -> None:
    assert holds({"Bool": {"aws:k": "${aws:flag}"}}, {"aws:k": "true", "aws:flag": "TRUE"})
    block = {"ArnLike": {"aws:SourceArn": "arn:aws:iam::*:user/${aws:username}"}}
    assert holds(block, {"aws:SourceArn": "arn:aws:iam::1:user/bob", "aws:username": "bob"})


def test_no_variables_in_version_2008_or_in_typed_operators() -> None:
    block = {"StringEquals": {"aws:k": "${aws:username}"}}
    assert holds(block, {"aws:k": "${aws:username}", "aws:username": "bob"}, variables=False)
    assert not holds(block, {"aws:k": "bob", "aws:username": "bob"}, variables=False)


# ---- hostile values: refused or never matching, never a server error


@pytest.mark.parametrize(
    "text", ["²", "\u0661\u0660", "1_0", "nan", "inf", "-inf", "1e999", "", " ", "0x10"]
)
def test_numbers_are_finite_ascii_decimals(text: str) -> None:
    assert parse_number(text) is None


@pytest.mark.parametrize(
    "text", ["²", "\u0661\u0660", "9" * 400, "2020-13-01", "2020-01-01T25:00", "\x00"]
)
def test_dates_refuse_what_is_no_date(text: str) -> None:
    assert parse_date(text) is None


@pytest.mark.parametrize(
    "value", ["²", "\u0661\u0660", "1e999", "nan", "\udcff", "fe80::1%eth0", "x" * 10000]
)
def test_hostile_request_values_do_not_match_typed_operators(value: str) -> None:
    for operator, policy_value in (
        ("NumericLessThan", "10"),
        ("DateLessThan", "2030-01-01"),
        ("IpAddress", "0.0.0.0/0"),
        ("BinaryEquals", "YQ=="),
    ):
        assert not one(operator, policy_value, value)
