"""Policy documents: what IAM accepts, and its words for what it refuses (karri.policy)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from karri.errors import CloudError
from karri.policy import (
    GROUP_POLICY_SIZE,
    IDENTITY,
    MANAGED,
    MANAGED_POLICY_SIZE,
    RESOURCE,
    ROLE_POLICY_SIZE,
    TRUST,
    TRUST_POLICY_SIZE,
    USER_POLICY_SIZE,
    Effect,
    MalformedPolicy,
    PolicyTooLarge,
    parse,
    policy_size,
)
from karri.policy.document import Kind

ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}


def document(*statements: dict[str, Any], version: str | None = "2012-10-17") -> str:
    body: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        body = {"Version": version, **body}
    return json.dumps(body)


def refusal(text: str, kind: Kind = IDENTITY) -> str:
    with pytest.raises(MalformedPolicy) as caught:
        parse(text, kind)
    assert caught.value.code == "MalformedPolicyDocument"
    assert caught.value.status == 400
    return caught.value.message


# ---- what is accepted


def test_a_statement_object_or_list_and_both_versions_are_accepted() -> None:
    single = parse(json.dumps({"Version": "2012-10-17", "Statement": ALLOW_ALL}))
    assert len(single.statements) == 1
    assert single.version == "2012-10-17"
    old = parse(document(ALLOW_ALL, version="2008-10-17"))
    assert old.version == "2008-10-17"
    assert parse(document(ALLOW_ALL, version=None)).version == "2008-10-17"


def test_a_statement_keeps_what_it_was_written_with() -> None:
    statement = {
        "Sid": "AllowDescribe1",
        "Effect": "Deny",
        "NotAction": ["iam:*", "sts:*"],
        "NotResource": "arn:aws:s3:::b/*",
        "Condition": {"Bool": {"aws:SecureTransport": False}},
    }
    (parsed,) = parse(document(statement), name="arn:aws:iam::1:policy/p").statements
    assert parsed.sid == "AllowDescribe1"
    assert parsed.effect is Effect.DENY
    assert parsed.actions.negated and parsed.actions.patterns == ("iam:*", "sts:*")
    assert parsed.resources is not None and parsed.resources.negated
    assert parsed.resources.patterns == ("arn:aws:s3:::b/*",)
    assert [t.operator for t in parsed.conditions] == ["Bool"]
    assert parsed.source == statement


def test_a_policy_carries_its_name_id_and_text() -> None:
    text = json.dumps({"Version": "2012-10-17", "Id": "x y", "Statement": [ALLOW_ALL]})
    policy = parse(text, name="inline")
    assert (policy.name, policy.id, policy.text) == ("inline", "x y", text)


def test_a_decoded_document_is_accepted_too() -> None:
    policy = parse({"Version": "2012-10-17", "Statement": [ALLOW_ALL]})
    assert len(policy.statements) == 1


def test_resource_and_trust_policies_name_principals() -> None:
    bucket = parse(
        document(
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["123456789012", "arn:aws:iam::210987654321:user/a/bob"]},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::b/*",
            },
            {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "NotPrincipal": {"AWS": "*"}, "Action": "s3:*", "Resource": "*"},
        ),
        RESOURCE,
    )
    first = bucket.statements[0].principals
    assert first is not None and first.accounts == {"123456789012"}
    assert first.arns == {"arn:aws:iam::210987654321:user/a/bob"}
    trust = parse(
        document(
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ),
        TRUST,
    )
    assert trust.statements[0].resources is None


# ---- what is refused, in IAM's words


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{",
        "[]",
        '"text"',
        json.dumps({"Version": "2012-10-17"}),
        json.dumps({"Version": "2012-10-17", "Statement": []}),
        json.dumps({"Version": "2012-10-17", "Statement": "x"}),
        json.dumps({"Version": "2012-10-17", "Statement": [ALLOW_ALL], "Extra": 1}),
        json.dumps({"Version": "2012-10-18", "Statement": [ALLOW_ALL]}),
        json.dumps({"Version": "2012-10-17", "Id": 5, "Statement": [ALLOW_ALL]}),
        '{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": []}',
        '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Effect": "Deny",'
        ' "Action": "*", "Resource": "*"}}',
        document({**ALLOW_ALL, "Unknown": "x"}),
        document({"Action": "*", "Resource": "*"}),
        document({**ALLOW_ALL, "Effect": "Maybe"}),
        document({**ALLOW_ALL, "NotAction": "s3:*"}),
        document({**ALLOW_ALL, "NotResource": "*"}),
        document({**ALLOW_ALL, "Action": 5}),
        document({**ALLOW_ALL, "Action": ["s3:*", None]}),
        document({**ALLOW_ALL, "Resource": {"a": 1}}),
        document({**ALLOW_ALL, "Sid": 7}),
        document({**ALLOW_ALL, "Condition": "x"}),
        document({**ALLOW_ALL, "Condition": {"StringEquals": "x"}}),
        document({**ALLOW_ALL, "Condition": {"StringEquals": {"aws:username": {"a": 1}}}}),
        document({**ALLOW_ALL, "Condition": {"StringEquals": {"aws:username": [None]}}}),
        document({**ALLOW_ALL, "Condition": {"StringSorta": {"aws:username": "x"}}}),
        document({**ALLOW_ALL, "Condition": {"NullIfExists": {"aws:username": "true"}}}),
        document({**ALLOW_ALL, "Condition": {"ForSomeValues:StringLike": {"aws:a": "x"}}}),
    ],
)
def test_syntax_errors(text: str) -> None:
    assert refusal(text) == "Syntax errors in policy."


def test_effect_is_case_sensitive() -> None:
    assert refusal(document({**ALLOW_ALL, "Effect": "allow"})) == (
        "The policy failed legacy parsing"
    )


@pytest.mark.parametrize(
    "condition",
    [
        {"DateGreaterThan": {"aws:CurrentTime": "yesterday"}},
        {"NumericLessThan": {"s3:max-keys": "ten"}},
        {"NumericLessThan": {"s3:max-keys": "nan"}},
        {"IpAddress": {"aws:SourceIp": "203.0.113.0/33"}},
        {"IpAddress": {"aws:SourceIp": "not-an-address"}},
        {"BinaryEquals": {"aws:x": "not base64!"}},
    ],
)
def test_typed_condition_values_must_parse(condition: dict[str, Any]) -> None:
    assert refusal(document({**ALLOW_ALL, "Condition": condition})) == (
        "The policy failed legacy parsing"
    )


def test_managed_policies_must_be_of_version_2012() -> None:
    expected = "Policy document must be version 2012-10-17 or greater."
    assert refusal(document(ALLOW_ALL, version="2008-10-17"), MANAGED) == expected
    assert refusal(document(ALLOW_ALL, version=None), MANAGED) == expected
    assert parse(document(ALLOW_ALL), MANAGED).version == "2012-10-17"


def test_statement_ids_are_unique_and_alphanumeric_in_iam() -> None:
    twice = document({**ALLOW_ALL, "Sid": "One"}, {**ALLOW_ALL, "Sid": "One"})
    assert refusal(twice) == "Statement IDs (SID) in a single policy must be unique."
    assert refusal(document({**ALLOW_ALL, "Sid": "has space"})).startswith(
        "Statement IDs (SID) must be alpha-numeric."
    )
    assert refusal(document({**ALLOW_ALL, "Sid": "é"})).startswith(
        "Statement IDs (SID) must be alpha-numeric."
    )
    # Empty Sids do not clash; bucket policies allow any Sid.
    assert parse(document({**ALLOW_ALL, "Sid": ""}, {**ALLOW_ALL, "Sid": ""}))
    bucket = {**ALLOW_ALL, "Principal": "*", "Sid": "Public read, 2024"}
    assert parse(document(bucket), RESOURCE).statements[0].sid == "Public read, 2024"


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ({"Effect": "Allow", "Resource": "*"}, "Policy statement must contain actions."),
        ({**ALLOW_ALL, "Action": []}, "Policy statement must contain actions."),
        ({"Effect": "Allow", "Action": "*"}, "Policy statement must contain resources."),
        ({**ALLOW_ALL, "Resource": []}, "Policy statement must contain resources."),
        (
            {**ALLOW_ALL, "Action": "DescribeInstances"},
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
        ),
        ({**ALLOW_ALL, "Action": "ec2:a:b"}, "Actions/Condition can contain only one colon."),
        ({**ALLOW_ALL, "Action": "e c2:Run"}, "Vendor e c2 is not valid"),
        ({**ALLOW_ALL, "Action": ":Run"}, "Vendor  is not valid"),
        (
            {**ALLOW_ALL, "Condition": {"StringEquals": {"username": "bob"}}},
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
        ),
        ({**ALLOW_ALL, "Resource": "bucket"}, 'Resource bucket must be in ARN format or "*".'),
        (
            {**ALLOW_ALL, "Resource": "arn:aws:s3"},
            'Resource arn:aws:s3 must be in ARN format or "*".',
        ),
        (
            {**ALLOW_ALL, "Resource": "arn:aws-xx:s3:::b"},
            'Partition "aws-xx" is not valid for resource "arn:aws-xx:s3:::b".',
        ),
        (
            {**ALLOW_ALL, "Resource": "arn:aws:s*:::b"},
            "Resource vendor must be fully qualified and cannot contain regexes.",
        ),
        (
            {**ALLOW_ALL, "Resource": "arn:aws:iam:us-east-1:123456789012:user/x"},
            "IAM resource arn:aws:iam:us-east-1:123456789012:user/x cannot contain region "
            "information.",
        ),
        (
            {**ALLOW_ALL, "Resource": "arn:aws:s3:us-east-1::b"},
            "Resource arn:aws:s3:us-east-1::b can not contain region information.",
        ),
        (
            {**ALLOW_ALL, "Principal": {"AWS": "123456789012"}},
            "Policy document should not specify a principal.",
        ),
        (
            {**ALLOW_ALL, "NotPrincipal": {"AWS": "123456789012"}},
            "Policy document should not specify a principal.",
        ),
    ],
)
def test_identity_policy_refusals(statement: dict[str, Any], message: str) -> None:
    assert refusal(document(statement)) == message


@pytest.mark.parametrize(
    ("principal", "message"),
    [
        ({"AWS": "bob"}, 'Invalid principal in policy: "AWS":"bob"'),
        ({"AWS": "12345"}, 'Invalid principal in policy: "AWS":"12345"'),
        (
            {"AWS": "arn:aws:iam::123456789012:user/*"},
            'Invalid principal in policy: "AWS":"arn:aws:iam::123456789012:user/*"',
        ),
        (
            {"AWS": "arn:aws:iam::123456789012:group/devs"},
            'Invalid principal in policy: "AWS":"arn:aws:iam::123456789012:group/devs"',
        ),
        (
            {"AWS": "arn:aws:iam::12:user/bob"},
            'Invalid principal in policy: "AWS":"arn:aws:iam::12:user/bob"',
        ),
        ({"Group": "devs"}, 'Invalid principal in policy: "Group":"devs"'),
        ({"Service": ""}, 'Invalid principal in policy: "Service":""'),
        ({}, "Syntax errors in policy."),
        ("someone", "Syntax errors in policy."),
        ({"AWS": 5}, "Syntax errors in policy."),
    ],
)
def test_invalid_principals(principal: Any, message: str) -> None:
    statement = {**ALLOW_ALL, "Principal": principal}
    assert refusal(document(statement), RESOURCE) == message


def test_resource_and_trust_policies_need_a_principal() -> None:
    assert refusal(document(ALLOW_ALL), RESOURCE) == "Missing required field Principal"
    trust = {"Effect": "Allow", "Action": "sts:AssumeRole"}
    assert refusal(document(trust), TRUST) == "Missing required field Principal"


def test_trust_policies_have_no_resource_and_only_sts_actions() -> None:
    principal = {"AWS": "123456789012"}
    with_resource = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    assert refusal(document({**with_resource, "Resource": "*"}), TRUST) == (
        "Has prohibited field Resource."
    )
    ec2 = {"Effect": "Allow", "Principal": principal, "Action": "ec2:RunInstances"}
    assert refusal(document(ec2), TRUST).startswith(
        "Trust Policy statement actions can only be sts:AssumeRole"
    )
    tagged = {**with_resource, "Action": ["sts:AssumeRole", "sts:TagSession"]}
    assert parse(document(tagged), TRUST)


# ---- sizes


def test_size_counts_every_character_but_white_space() -> None:
    assert policy_size('{ "a" :\n\t"b c" }') == 10


@pytest.mark.parametrize(
    ("limit", "chars", "message"),
    [
        (MANAGED_POLICY_SIZE, 6144, "Cannot exceed quota for PolicySize: 6144"),
        (USER_POLICY_SIZE, 2048, "Maximum policy size of 2048 bytes exceeded for user bob"),
        (GROUP_POLICY_SIZE, 5120, "Maximum policy size of 5120 bytes exceeded for group bob"),
        (ROLE_POLICY_SIZE, 10240, "Maximum policy size of 10240 bytes exceeded for role bob"),
        (TRUST_POLICY_SIZE, 2048, "Cannot exceed quota for ACLSizePerRole: 2048"),
    ],
)
def test_size_limits_as_aws_documents_them(limit: Any, chars: int, message: str) -> None:
    assert limit.chars == chars

    def padded(size: int) -> str:
        base = document({**ALLOW_ALL, "Sid": ""})
        filler = size - policy_size(base)
        return base.replace('"Sid": ""', '"Sid": "' + "a" * filler + '"')

    kind = TRUST if limit is TRUST_POLICY_SIZE else IDENTITY
    exact = padded(chars)
    assert policy_size(exact) == chars
    if kind is IDENTITY:
        parse(exact, kind, limit=limit, entity="bob")
    # White space does not count.
    with pytest.raises(PolicyTooLarge) as caught:
        parse(padded(chars + 1) + "   ", kind, limit=limit, entity="bob")
    assert isinstance(caught.value, CloudError)
    assert (caught.value.code, caught.value.status) == ("LimitExceeded", 409)
    assert caught.value.message == message
    parse(padded(chars).replace(",", ",\n        "), IDENTITY, limit=limit)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"Version": "\udcff"}',
        "\x00",
        json.dumps({"Statement": [[]]}),
    ],
)
def test_hostile_documents_are_syntax_errors(text: str) -> None:
    assert refusal(text) == "Syntax errors in policy."
