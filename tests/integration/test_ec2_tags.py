"""Tags: CreateTags, DeleteTags, DescribeTags, tags at creation, AWS's limits."""

from __future__ import annotations

import pytest

from tests.conftest import Karri
from tests.integration.ec2_wire import error_of, race, unique


@pytest.fixture
def key_id(karri: Karri) -> str:
    return karri.client("ec2").create_key_pair(KeyName=unique("tags"))["KeyPairId"]


def tags_of(ec2, resource_id: str) -> dict[str, str]:
    found = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])
    return {t["Key"]: t["Value"] for t in found["Tags"]}


def test_create_describe_overwrite(karri: Karri, key_id: str) -> None:
    ec2 = karri.client("ec2")
    ec2.create_tags(
        Resources=[key_id], Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}]
    )
    assert tags_of(ec2, key_id) == {"a": "1", "b": ""}
    ec2.create_tags(Resources=[key_id], Tags=[{"Key": "a", "Value": "2"}])
    assert tags_of(ec2, key_id) == {"a": "2", "b": ""}
    described = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [key_id]}])["Tags"]
    assert {(t["ResourceId"], t["ResourceType"]) for t in described} == {(key_id, "key-pair")}
    info = ec2.describe_key_pairs(KeyPairIds=[key_id])["KeyPairs"][0]
    assert {t["Key"]: t["Value"] for t in info["Tags"]} == {"a": "2", "b": ""}


def test_tag_several_resources_at_once_or_none(karri: Karri, key_id: str) -> None:
    ec2 = karri.client("ec2")
    other = ec2.create_key_pair(KeyName=unique("tags2"))["KeyPairId"]
    ec2.create_tags(Resources=[key_id, other], Tags=[{"Key": "both", "Value": "yes"}])
    assert tags_of(ec2, key_id) == tags_of(ec2, other) == {"both": "yes"}
    assert error_of(
        ec2.create_tags, Resources=[key_id, "key-0badc0de"], Tags=[{"Key": "x", "Value": "y"}]
    ) == ("InvalidKeyPair.NotFound", 400)
    assert "x" not in tags_of(ec2, key_id)  # nothing half-done
    assert error_of(ec2.create_tags, Resources=["nonsense"], Tags=[{"Key": "x", "Value": "y"}])[
        0
    ] == ("InvalidID")


def test_delete_tags_semantics(karri: Karri, key_id: str) -> None:
    """Key alone: any value; key and value: only that value; empty value: only empty."""
    ec2 = karri.client("ec2")
    tags = [{"Key": k, "Value": v} for k, v in (("a", "1"), ("b", "2"), ("c", ""), ("d", "4"))]
    ec2.create_tags(Resources=[key_id], Tags=tags)
    ec2.delete_tags(Resources=[key_id], Tags=[{"Key": "a"}])
    ec2.delete_tags(Resources=[key_id], Tags=[{"Key": "b", "Value": "not-2"}])
    ec2.delete_tags(Resources=[key_id], Tags=[{"Key": "d", "Value": ""}])
    assert tags_of(ec2, key_id) == {"b": "2", "c": "", "d": "4"}
    ec2.delete_tags(
        Resources=[key_id], Tags=[{"Key": "b", "Value": "2"}, {"Key": "c", "Value": ""}]
    )
    assert tags_of(ec2, key_id) == {"d": "4"}
    ec2.delete_tags(Resources=[key_id], Tags=[{"Key": "never-there"}])  # no error
    ec2.delete_tags(Resources=[key_id])  # every tag
    assert tags_of(ec2, key_id) == {}


def test_limits(karri: Karri, key_id: str) -> None:
    ec2 = karri.client("ec2")
    ec2.create_tags(
        Resources=[key_id], Tags=[{"Key": f"k{i:02d}", "Value": str(i)} for i in range(50)]
    )
    assert len(tags_of(ec2, key_id)) == 50
    ec2.create_tags(Resources=[key_id], Tags=[{"Key": "k00", "Value": "overwrite is fine"}])
    assert error_of(ec2.create_tags, Resources=[key_id], Tags=[{"Key": "k50", "Value": ""}]) == (
        "TagLimitExceeded",
        400,
    )
    ec2.delete_tags(Resources=[key_id])
    ok = [{"Key": "k" * 128, "Value": "v" * 256}]
    ec2.create_tags(Resources=[key_id], Tags=ok)
    for bad in (
        {"Key": "k" * 129, "Value": "v"},
        {"Key": "k", "Value": "v" * 257},
        {"Key": "aws:reserved", "Value": "v"},
        {"Key": "AWS:Reserved", "Value": "v"},
        {"Key": "", "Value": "v"},
    ):
        assert error_of(ec2.create_tags, Resources=[key_id], Tags=[bad]) == (
            "InvalidParameterValue",
            400,
        ), bad


def test_describe_tags_filters(karri: Karri, key_id: str) -> None:
    ec2 = karri.client("ec2")
    marker = unique("mark")
    ec2.create_tags(
        Resources=[key_id],
        Tags=[{"Key": marker, "Value": "alpha"}, {"Key": marker + "-2", "Value": "beta"}],
    )

    def keys(*filters: dict) -> list[str]:
        return sorted(t["Key"] for t in ec2.describe_tags(Filters=list(filters))["Tags"])

    assert keys({"Name": "key", "Values": [marker]}) == [marker]
    assert keys({"Name": "key", "Values": [marker + "*"]}) == [marker, marker + "-2"]
    assert keys({"Name": "key", "Values": [marker + "*"]}, {"Name": "value", "Values": ["b*"]}) == [
        marker + "-2"
    ]
    assert keys(
        {"Name": "resource-type", "Values": ["key-pair"]}, {"Name": "value", "Values": ["alph?"]}
    ) >= [marker]
    assert (
        keys({"Name": "resource-type", "Values": ["instance"]}, {"Name": "key", "Values": [marker]})
        == []
    )
    assert keys({"Name": f"tag:{marker}", "Values": ["alpha"]}) == [marker]
    assert error_of(ec2.describe_tags, Filters=[{"Name": "colour", "Values": ["x"]}]) == (
        "InvalidParameterValue",
        400,
    )


def test_describe_tags_pages(karri: Karri, key_id: str) -> None:
    ec2 = karri.client("ec2")
    ec2.create_tags(Resources=[key_id], Tags=[{"Key": f"p{i:02d}", "Value": ""} for i in range(12)])
    only_mine = [{"Name": "resource-id", "Values": [key_id]}]
    first = ec2.describe_tags(Filters=only_mine, MaxResults=5)
    assert len(first["Tags"]) == 5 and first["NextToken"]
    # A tag already returned goes away between pages: the next page is still right.
    ec2.delete_tags(Resources=[key_id], Tags=[{"Key": first["Tags"][0]["Key"]}])
    second = ec2.describe_tags(Filters=only_mine, MaxResults=5, NextToken=first["NextToken"])
    third = ec2.describe_tags(Filters=only_mine, MaxResults=5, NextToken=second["NextToken"])
    assert "NextToken" not in third
    keys = [t["Key"] for page in (first, second, third) for t in page["Tags"]]
    assert keys == [f"p{i:02d}" for i in range(12)]
    paginated = ec2.get_paginator("describe_tags").paginate(
        Filters=only_mine, PaginationConfig={"PageSize": 5}
    )
    assert [t["Key"] for page in paginated for t in page["Tags"]] == keys[1:]
    assert error_of(ec2.describe_tags, MaxResults=5, NextToken="bm90IGEgdG9rZW4=") == (
        "InvalidPaginationToken",
        400,
    )
    for bad in (4, 1001):
        assert error_of(ec2.describe_tags, MaxResults=bad) == ("InvalidParameterValue", 400)


def test_deleting_a_resource_drops_its_tags(karri: Karri, key_id: str) -> None:
    ec2 = karri.client("ec2")
    ec2.create_tags(Resources=[key_id], Tags=[{"Key": "doomed", "Value": "1"}])
    ec2.delete_key_pair(KeyPairId=key_id)
    assert tags_of(ec2, key_id) == {}
    assert error_of(ec2.create_tags, Resources=[key_id], Tags=[{"Key": "a", "Value": "b"}]) == (
        "InvalidKeyPair.NotFound",
        400,
    )


def test_tags_with_the_aws_cli(karri: Karri, key_id: str) -> None:
    karri.aws(
        "ec2",
        "create-tags",
        "--resources",
        key_id,
        "--tags",
        "Key=env,Value=dev é",
        "Key=team,Value=",
    )
    found = karri.aws(
        "ec2", "describe-tags", "--filters", f"Name=resource-id,Values={key_id}", "--page-size", "5"
    )["Tags"]
    assert {t["Key"]: t["Value"] for t in found} == {"env": "dev é", "team": ""}
    assert {t["ResourceType"] for t in found} == {"key-pair"}


def test_concurrent_tagging_keeps_the_limit(karri: Karri, key_id: str) -> None:
    """Checks and writes are one step: racing CreateTags once failed on the unique
    constraint (a 500) and together went past 50 tags."""
    ec2 = karri.client("ec2")
    same = [lambda: ec2.create_tags(Resources=[key_id], Tags=[{"Key": "race", "Value": "v"}])] * 10
    assert race(same) == ["ok"] * 10
    batches = [[{"Key": f"k{batch}-{i}", "Value": "v"} for i in range(5)] for batch in range(12)]
    outcomes = race(
        [lambda tags=tags: ec2.create_tags(Resources=[key_id], Tags=tags) for tags in batches]
    )
    assert set(outcomes) == {"ok", "TagLimitExceeded"}, outcomes
    assert len(tags_of(ec2, key_id)) == 1 + 5 * outcomes.count("ok") <= 50
