"""The policy engine's matching: wildcards, policy variables, ARNs (karri.policy)."""

from __future__ import annotations

import time

import pytest

from karri.policy.arn import (
    Arn,
    arn_matcher,
    assumed_role_arn,
    compile_arn_parts,
    ec2_arn,
    iam_arn,
    name_of,
    root_arn,
    s3_arn,
)
from karri.policy.variables import (
    Literal,
    Unresolved,
    Variable,
    parse_template,
    resolve,
    wildcard_matcher,
)
from karri.policy.wildcard import compile_parts, compile_wildcard

# ---- wildcards


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*", "", True),
        ("*", "anything at all", True),
        ("ec2:Describe*", "ec2:DescribeInstances", True),
        ("ec2:Describe*", "ec2:RunInstances", False),
        ("*Instances", "ec2:RunInstances", True),
        ("*Instances", "ec2:RunInstance", False),
        ("iam:*AccessKey*", "iam:CreateAccessKey", True),
        ("iam:*AccessKey*", "iam:AccessKey", True),
        ("iam:*AccessKey*", "iam:ListAccessKeys", True),
        ("iam:*AccessKey*", "iam:ListUsers", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("a?c", "abbc", False),
        ("a*b*c", "abc", True),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "acb", False),
        ("ab*ba", "aba", False),  # the two pieces would overlap
        ("ab*ba", "abba", True),
        ("*a?b*", "xxaZbyy", True),
        ("*a?b*", "xxaZZbyy", False),
        ("?*?", "a", False),
        ("?*?", "ab", True),
        ("exact", "exact", True),
        ("exact", "exactly", False),
        ("", "", True),
        ("", "x", False),
        ("a*?*?*b", "a12b", True),
        ("a*?*?*b", "a1b", False),
    ],
)
def test_wildcards_match_whole_values(pattern: str, value: str, expected: bool) -> None:
    assert compile_wildcard(pattern)(value) is expected


def test_wildcards_are_case_sensitive_unless_asked() -> None:
    assert not compile_wildcard("ec2:describe*")("ec2:DescribeInstances")
    assert compile_wildcard("ec2:describe*", ignore_case=True)("EC2:DescribeInstances")
    assert compile_wildcard("EC2:*INSTANCES", ignore_case=True)("ec2:runinstances")


def test_literal_parts_keep_their_wildcard_characters() -> None:
    match = compile_parts([("home/", True), ("a*b", False), ("/*", True)])
    assert match("home/a*b/file")
    assert not match("home/aXb/file")


def test_matching_takes_linear_time_on_a_hostile_pattern() -> None:
    """The pattern that made a regular expression backtrack for hours (see cloud.filters)."""
    pattern = "*?" * 40 + "*Z"
    value = "a" * 5000
    started = time.perf_counter()
    assert not compile_wildcard(pattern)(value)
    assert compile_wildcard(pattern)(value + "Z")
    assert time.perf_counter() - started < 1.0


# ---- policy variables


def test_a_template_holds_pattern_text_literals_and_variables() -> None:
    assert parse_template("arn:aws:s3:::b/${aws:username}/*") == (
        "arn:aws:s3:::b/",
        Variable("aws:username"),
        "/*",
    )
    assert parse_template("${*}${?}${$}") == (Literal("*"), Literal("?"), Literal("$"))
    assert parse_template("${aws:userid, 'anonymous'}") == (Variable("aws:userid", "anonymous"),)
    assert parse_template("${AWS:UserName}") == (Variable("aws:username"),)


def test_without_variables_the_text_is_all_pattern() -> None:
    """2008-10-17 policies treat ${aws:username} as literal text."""
    assert parse_template("b/${aws:username}", variables=False) == ("b/${aws:username}",)


@pytest.mark.parametrize("text", ["${", "a${b", "${}", "${a b}", "${x, default}", "a}b"])
def test_what_is_not_a_variable_stays_text(text: str) -> None:
    assert "".join(t for t in parse_template(text) if isinstance(t, str)) == text


def test_variables_are_filled_from_the_request_as_literal_text() -> None:
    tokens = parse_template("home/${aws:username}/*")
    assert resolve(tokens, {"aws:username": "b*b"}.get) == [
        ("home/", True),
        ("b*b", False),
        ("/*", True),
    ]
    matcher = wildcard_matcher(tokens)
    assert matcher.matcher({"aws:username": "b*b"}.get)("home/b*b/x")
    assert not matcher.matcher({"aws:username": "b*b"}.get)("home/bob/x")


def test_a_missing_variable_takes_its_default_or_is_unresolved() -> None:
    assert resolve(parse_template("${aws:userid, 'anonymous'}"), {}.get) == [("anonymous", False)]
    with pytest.raises(Unresolved):
        resolve(parse_template("${aws:username}"), {}.get)


# ---- ARNs


def test_arns_are_built_as_aws_writes_them() -> None:
    account = "123456789012"
    assert ec2_arn("us-east-1", account, "instance", "i-1") == (
        "arn:aws:ec2:us-east-1:123456789012:instance/i-1"
    )
    assert ec2_arn("us-east-1", account, "image", "ami-1") == "arn:aws:ec2:us-east-1::image/ami-1"
    assert ec2_arn("r", account, "snapshot", "snap-1") == "arn:aws:ec2:r::snapshot/snap-1"
    for kind in ("volume", "key-pair", "security-group", "vpc", "subnet"):
        assert ec2_arn("r", account, kind, "x") == f"arn:aws:ec2:r:{account}:{kind}/x"
    assert ec2_arn("r", account, "network-interface", "eni-1").endswith(
        f"{account}:network-interface/eni-1"
    )
    assert ec2_arn("r", account, "elastic-ip", "eipalloc-1").endswith(":elastic-ip/eipalloc-1")
    assert s3_arn("bucket") == "arn:aws:s3:::bucket"
    assert s3_arn("bucket", "a/b:c") == "arn:aws:s3:::bucket/a/b:c"
    assert iam_arn(account, "user", "bob") == f"arn:aws:iam::{account}:user/bob"
    assert iam_arn(account, "role", "r", "/app/") == f"arn:aws:iam::{account}:role/app/r"
    for kind in ("group", "policy", "instance-profile"):
        assert iam_arn(account, kind, "n") == f"arn:aws:iam::{account}:{kind}/n"
    assert root_arn(account) == f"arn:aws:iam::{account}:root"
    assert assumed_role_arn(account, "r", "s") == f"arn:aws:sts::{account}:assumed-role/r/s"
    assert name_of(assumed_role_arn(account, "r", "s")) == "s"


def test_arn_builders_refuse_unknown_types_and_bad_paths() -> None:
    with pytest.raises(ValueError):
        ec2_arn("r", "1", "bucket", "x")
    with pytest.raises(ValueError):
        iam_arn("1", "computer", "x")
    with pytest.raises(ValueError):
        iam_arn("1", "user", "x", "nopath")


def test_arns_parse_into_their_six_parts() -> None:
    arn = Arn.parse("arn:aws:s3:::bucket/key:with:colons")
    assert (arn.service, arn.region, arn.account, arn.resource) == (
        "s3",
        "",
        "",
        "bucket/key:with:colons",
    )
    assert str(arn) == "arn:aws:s3:::bucket/key:with:colons"
    user = Arn.parse("arn:aws:iam::123456789012:user/division/bob")
    assert (user.resource_type, user.resource_id) == ("user", "division/bob")
    assert Arn.parse("arn:aws:s3:::bucket").resource_type == ""
    for bad in ("arn:aws:s3", "urn:aws:s3:::b", "arn::s3:::b", "bucket"):
        with pytest.raises(ValueError):
            Arn.parse(bad)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*", "arn:aws:ec2:us-east-1:1:instance/i-1", True),
        ("*", "*", True),
        ("arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:us-east-1:123:instance/i-1", True),
        ("arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:us-east-1:123:volume/vol-1", False),
        ("arn:aws:ec2:*:*:*", "arn:aws:ec2:r:1:instance/i-1", True),
        ("arn:aws:ec2:*:*:*", "*", False),
        ("arn:aws:s3:::*", "arn:aws:s3:::bucket/key", True),
        ("arn:aws:s3:::*", "arn:aws:ec2:r:1:instance/i", False),
        ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a:b/c", True),
        ("arn:aws:s3:::bucket", "arn:aws:s3:::bucket/a", False),
        ("arn:aws:s3:::*log*", "arn:aws:s3:::carlossalazar-logs", True),
        ("arn:aws:iam::*:user/*", "arn:aws:iam::123:user/bob", True),
        ("arn:aws:iam::*:user/*", "arn:aws:iam::123:role/bob", False),
        ("arn:aws:ec2:us-east-?:123:instance/*", "arn:aws:ec2:us-east-1:123:instance/i", True),
        # AWS's own example: ArnLike's wildcards stay within their segment.
        (
            "arn:aws:someservice:*:111122223333:finance/*",
            "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/d.txt",
            False,
        ),
        ("arn:aws:s3", "arn:aws:s3", False),  # not six segments: matches nothing
        ("arn:aws:ec2:*:*:Instance/*", "arn:aws:ec2:r:1:instance/i", False),  # case-sensitive
    ],
)
def test_arn_patterns_match_segment_by_segment(pattern: str, value: str, expected: bool) -> None:
    assert compile_arn_parts([(pattern, True)])(value) is expected


def test_the_colons_of_a_variable_do_not_cut_segments() -> None:
    matcher = arn_matcher(parse_template("arn:aws:s3:::b/${s3:key}"))
    assert matcher.matcher({"s3:key": "x:y"}.get)("arn:aws:s3:::b/x:y")
    assert not matcher.matcher({"s3:key": "x:y"}.get)("arn:aws:s3:::b/x:z")
