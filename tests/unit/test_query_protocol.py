"""The Query protocol of IAM and STS through api/ec2's model, parser and renderer: lists
are ``Name.member.N``, answers are wrapped in ``<XResult>``, errors are ``ErrorResponse``."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree

import pytest

from karri.api.ec2.model import query_model
from karri.api.ec2.query import parse_input
from karri.api.ec2.render import render_query_error, render_query_response
from karri.errors import CloudError

IAM_NS = "{https://iam.amazonaws.com/doc/2010-05-08/}"


def test_lists_are_read_under_member() -> None:
    parsed = parse_input(
        query_model("iam"),
        "CreateUser",
        {
            "UserName": "alice",
            "Tags.member.2.Key": "b",
            "Tags.member.2.Value": "2",
            "Tags.member.1.Key": "a",
            "Tags.member.1.Value": "1",
        },
    )
    assert parsed == {
        "UserName": "alice",
        "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}],
    }
    with pytest.raises(CloudError) as refused:
        parse_input(query_model("iam"), "CreateUser", {"UserName": "a", "Tags.1.Key": "k"})
    assert refused.value.code == "UnknownParameter"


def test_an_answer_is_wrapped_in_its_result() -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    user = {"UserName": "a", "UserId": "AIDA1", "Arn": "arn", "Path": "/", "CreateDate": created}
    body = render_query_response(
        query_model("iam"), "ListUsers", {"Users": [user], "IsTruncated": False}, "rid"
    )
    root = ElementTree.fromstring(body)
    assert root.tag == f"{IAM_NS}ListUsersResponse"
    member = root.find(f"{IAM_NS}ListUsersResult/{IAM_NS}Users/{IAM_NS}member")
    assert member is not None and member.findtext(f"{IAM_NS}UserName") == "a"
    assert root.findtext(f"{IAM_NS}ResponseMetadata/{IAM_NS}RequestId") == "rid"


def test_an_error_is_an_error_response() -> None:
    root = ElementTree.fromstring(
        render_query_error(
            "NoSuchEntity", "gone <&>", "rid", "https://iam.amazonaws.com/doc/2010-05-08/"
        )
    )
    assert root.tag == f"{IAM_NS}ErrorResponse"
    assert root.findtext(f"{IAM_NS}Error/{IAM_NS}Type") == "Sender"
    assert root.findtext(f"{IAM_NS}Error/{IAM_NS}Code") == "NoSuchEntity"
    assert root.findtext(f"{IAM_NS}Error/{IAM_NS}Message") == "gone <&>"
    assert root.findtext(f"{IAM_NS}RequestId") == "rid"
