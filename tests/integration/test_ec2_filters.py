"""The shared Filter.N and MaxResults/NextToken mechanism, seen through several Describe calls."""

from __future__ import annotations

import pytest

from tests.conftest import Karri
from tests.integration.ec2_wire import VERSION, error_of, unique, v4_post


@pytest.fixture(scope="module")
def prefix(karri: Karri) -> str:
    """Four key pairs: ``P-web-1`` (rsa), ``P-web-2`` (ed25519), ``P-db*1`` and ``P-db-10``."""
    ec2 = karri.client("ec2")
    prefix = unique("fl")

    def tagged(name: str, key_type: str, tags: dict[str, str]) -> None:
        spec = [
            {
                "ResourceType": "key-pair",
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            }
        ]
        ec2.create_key_pair(KeyName=f"{prefix}-{name}", KeyType=key_type, TagSpecifications=spec)

    tagged("web-1", "rsa", {"role": "web", "Env": "prod"})
    tagged("web-2", "ed25519", {"role": "web", "env": "dev"})
    tagged("db*1", "ed25519", {"role": "db"})
    tagged("db-10", "ed25519", {"owner": "ann"})
    return prefix


def names(karri: Karri, prefix: str, *filters: dict) -> list[str]:
    found = karri.client("ec2").describe_key_pairs(
        Filters=[{"Name": "key-name", "Values": [f"{prefix}-*"]}, *filters]
    )
    return sorted(k["KeyName"].removeprefix(prefix + "-") for k in found["KeyPairs"])


def test_wildcards(karri: Karri, prefix: str) -> None:
    assert names(karri, prefix) == ["db*1", "db-10", "web-1", "web-2"]
    assert names(karri, prefix, {"Name": "key-name", "Values": [f"{prefix}-web-?"]}) == [
        "web-1",
        "web-2",
    ]
    assert names(karri, prefix, {"Name": "key-name", "Values": [f"{prefix}-db?1*"]}) == [
        "db*1",
        "db-10",
    ]
    # A backslash makes * and ? literal.
    assert names(karri, prefix, {"Name": "key-name", "Values": [f"{prefix}-db\\*1"]}) == ["db*1"]
    assert names(karri, prefix, {"Name": "key-name", "Values": [f"{prefix}-web-\\?"]}) == []
    # No wildcard: the whole value must match, case-sensitively.
    assert names(karri, prefix, {"Name": "key-name", "Values": [f"{prefix}-web"]}) == []
    assert names(karri, prefix, {"Name": "key-name", "Values": [f"{prefix}-WEB-1"]}) == []


def test_values_are_ored_and_filters_anded(karri: Karri, prefix: str) -> None:
    assert names(karri, prefix, {"Name": "key-type", "Values": ["rsa", "ed25519"]}) == [
        "db*1",
        "db-10",
        "web-1",
        "web-2",
    ]
    assert names(
        karri,
        prefix,
        {"Name": "key-type", "Values": ["ed25519"]},
        {"Name": "tag:role", "Values": ["web", "db"]},
    ) == ["db*1", "web-2"]


def test_tag_filters(karri: Karri, prefix: str) -> None:
    assert names(karri, prefix, {"Name": "tag:role", "Values": ["web"]}) == ["web-1", "web-2"]
    assert names(karri, prefix, {"Name": "tag:role", "Values": ["w*"]}) == ["web-1", "web-2"]
    assert names(karri, prefix, {"Name": "tag:Env", "Values": ["*"]}) == ["web-1"]  # keys: case
    assert names(karri, prefix, {"Name": "tag-key", "Values": ["owner"]}) == ["db-10"]
    assert names(karri, prefix, {"Name": "tag-key", "Values": ["env", "Env"]}) == [
        "web-1",
        "web-2",
    ]
    assert names(karri, prefix, {"Name": "tag-value", "Values": ["ann", "prod"]}) == [
        "db-10",
        "web-1",
    ]


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("describe_key_pairs", {}),
        ("describe_tags", {}),
        ("describe_regions", {}),
        ("describe_availability_zones", {}),
        ("describe_instance_types", {}),
        ("describe_instance_type_offerings", {}),
    ],
)
def test_unknown_filter_is_invalid_parameter_value(karri: Karri, method: str, extra: dict) -> None:
    call = getattr(karri.client("ec2"), method)
    assert error_of(call, Filters=[{"Name": "no-such-filter", "Values": ["x"]}], **extra) == (
        "InvalidParameterValue",
        400,
    )


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("describe_instances", "instance-lifecycle"),
        ("describe_instances", "platform"),
        ("describe_instances", "product-code"),
        ("describe_instances", "private-dns-name"),
        ("describe_instances", "dns-name"),
        ("describe_images", "product-code"),
        ("describe_images", "block-device-mapping.snapshot-id"),
        ("describe_images", "creation-date"),
        ("describe_images", "block-device-mapping.volume-type"),
        ("describe_images", "block-device-mapping.delete-on-termination"),
        ("describe_images", "owner-alias"),
        ("describe_images", "product-code.type"),
    ],
)
def test_more_aws_filters_are_accepted(karri: Karri, method: str, name: str) -> None:
    """Filters AWS documents are accepted (lifecycle, platform and product codes match
    nothing here, as for AWS's on-demand Linux instances)."""
    ec2 = karri.client("ec2", karri.create_account(unique("filters")))
    answer = getattr(ec2, method)(Filters=[{"Name": name, "Values": ["no-such-value"]}])
    assert answer.get("Reservations", answer.get("Images")) == []


def test_filter_without_values(karri: Karri) -> None:
    reply = v4_post(
        karri, {"Action": "DescribeKeyPairs", "Version": VERSION, "Filter.1.Name": "key-name"}
    )
    assert (reply.code, reply.status) == ("InvalidParameterValue", 400)


def test_pages_of_instance_types(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    everything = [t["InstanceType"] for t in ec2.describe_instance_types()["InstanceTypes"]]
    assert len(everything) >= 7
    seen, token = [], None
    while True:
        page = ec2.describe_instance_types(MaxResults=5, **({"NextToken": token} if token else {}))
        assert len(page["InstanceTypes"]) <= 5
        seen += [t["InstanceType"] for t in page["InstanceTypes"]]
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted(everything) and len(set(seen)) == len(seen)
    paginated = ec2.get_paginator("describe_instance_types").paginate(
        PaginationConfig={"PageSize": 5}
    )
    assert sorted(t["InstanceType"] for p in paginated for t in p["InstanceTypes"]) == sorted(
        everything
    )
    for bad in ("4", "101"):  # botocore itself refuses 4: send it by hand
        reply = v4_post(
            karri, {"Action": "DescribeInstanceTypes", "Version": VERSION, "MaxResults": bad}
        )
        assert (reply.code, reply.status) == ("InvalidParameterValue", 400)
    assert error_of(ec2.describe_instance_types, MaxResults=5, NextToken="%%%") == (
        "InvalidPaginationToken",
        400,
    )


def test_pages_of_offerings(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    paginated = ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType="availability-zone", PaginationConfig={"PageSize": 5}
    )
    pages = list(paginated)
    assert len(pages) > 1
    offered = [o["InstanceType"] for p in pages for o in p["InstanceTypeOfferings"]]
    types = [t["InstanceType"] for t in ec2.describe_instance_types()["InstanceTypes"]]
    assert sorted(offered) == sorted(types)


def test_aws_cli_follows_next_token(karri: Karri) -> None:
    """The AWS CLI pages with --page-size and stitches the pages together."""
    out = karri.aws("ec2", "describe-instance-types", "--page-size", "5")
    types = [t["InstanceType"] for t in out["InstanceTypes"]]
    everything = karri.client("ec2").describe_instance_types()["InstanceTypes"]
    assert sorted(types) == sorted(t["InstanceType"] for t in everything)
