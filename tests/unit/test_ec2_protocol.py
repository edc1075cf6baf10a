"""The EC2 Query protocol layer against botocore's model, serializer and parser.

Requests made by botocore's own EC2 serializer must parse back to what the client was given;
answers rendered by karri must read back through botocore's own EC2 parser.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore import parsers, serialize
from botocore.loaders import Loader
from botocore.model import ServiceModel

from karri.api.ec2.model import API_VERSION, ec2_model
from karri.api.ec2.query import parse_input
from karri.api.ec2.render import namespace, render_error, render_response
from karri.errors import CloudError

MODEL = ec2_model()
SERVICE = ServiceModel(Loader().load_service_model("ec2", "service-2", api_version=API_VERSION))


def serialized(operation: str, params: dict[str, Any]) -> dict[str, str]:
    """The query parameters botocore sends for ``params``."""
    request = serialize.create_serializer("ec2").serialize_to_request(
        params, SERVICE.operation_model(operation)
    )
    return {k: str(v) for k, v in request["body"].items()}


def parsed_back(operation: str, xml: bytes) -> dict[str, Any]:
    output = SERVICE.operation_model(operation).output_shape
    response = {"body": xml, "headers": {}, "status_code": 200}
    result = parsers.create_parser("ec2").parse(response, output)
    result.pop("ResponseMetadata", None)
    return result


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        (
            "DescribeKeyPairs",
            {
                "KeyNames": ["a", "b é"],
                "IncludePublicKey": True,
                "Filters": [
                    {"Name": "tag:Owner", "Values": ["x", "y*"]},
                    {"Name": "key-type", "Values": ["rsa"]},
                ],
            },
        ),
        ("CreateTags", {"Resources": ["key-1", "key-2"], "Tags": [{"Key": "k", "Value": ""}]}),
        ("DeleteTags", {"Resources": ["key-1"], "Tags": [{"Key": "k"}]}),
        ("DescribeTags", {"MaxResults": 5, "NextToken": "abc", "DryRun": False}),
        (
            "CreateKeyPair",
            {
                "KeyName": "k",
                "KeyType": "ed25519",
                "TagSpecifications": [
                    {"ResourceType": "key-pair", "Tags": [{"Key": "a", "Value": "b"}]}
                ],
            },
        ),
        (
            "RunInstances",
            {
                "ImageId": "emi-12345678",
                "MinCount": 1,
                "MaxCount": 2,
                "BlockDeviceMappings": [
                    {
                        "DeviceName": "/dev/sda1",
                        "Ebs": {"VolumeSize": 8, "DeleteOnTermination": True},
                    }
                ],
                "Placement": {"AvailabilityZone": "eucalyptus-1a"},
                "SecurityGroupIds": ["sg-1"],
            },
        ),
        (
            "DescribeSpotPriceHistory",
            {"StartTime": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "InstanceTypes": ["m1.small"]},
        ),
        ("DescribeInstanceTypes", {"InstanceTypes": ["m1.small"], "MaxResults": 5}),
    ],
)
def test_botocore_requests_parse_back(operation: str, params: dict[str, Any]) -> None:
    assert parse_input(MODEL, operation, serialized(operation, params)) == params


def test_blob_parameters_are_base64_decoded() -> None:
    params = serialized("ImportKeyPair", {"KeyName": "k", "PublicKeyMaterial": b"ssh-ed25519 AAAA"})
    assert params["PublicKeyMaterial"] != "ssh-ed25519 AAAA"  # botocore base64-encodes it
    assert parse_input(MODEL, "ImportKeyPair", params)["PublicKeyMaterial"] == b"ssh-ed25519 AAAA"


def test_lists_by_index_order_unnumbered_and_from_zero() -> None:
    parsed = parse_input(
        MODEL, "DescribeKeyPairs", {"KeyName.10": "c", "KeyName.2": "b", "KeyName.1": "a"}
    )
    assert parsed["KeyNames"] == ["a", "b", "c"]
    assert parse_input(MODEL, "DescribeKeyPairs", {"KeyName": "only"})["KeyNames"] == ["only"]
    tags = parse_input(
        MODEL, "CreateTags", {"ResourceId.0": "key-1", "Tag.0.Key": "k", "Tag.0.Value": "v"}
    )
    assert tags == {"Resources": ["key-1"], "Tags": [{"Key": "k", "Value": "v"}]}


def test_scalars() -> None:
    assert parse_input(MODEL, "DescribeKeyPairs", {"IncludePublicKey": "TRUE"}) == {
        "IncludePublicKey": True
    }
    assert parse_input(MODEL, "DescribeTags", {"MaxResults": "7"}) == {"MaxResults": 7}
    epoch = parse_input(MODEL, "DescribeSpotPriceHistory", {"StartTime": "1700000000"})
    assert epoch["StartTime"] == datetime.fromtimestamp(1700000000, UTC)
    naive = parse_input(MODEL, "DescribeSpotPriceHistory", {"StartTime": "2024-01-02T03:04:05"})
    assert naive["StartTime"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_envelope_and_case() -> None:
    params = {
        "Action": "DescribeKeyPairs",
        "Version": API_VERSION,
        "AWSAccessKeyId": "x",
        "Signature": "y",
        "X-Amz-Date": "z",
        "keyname.1": "a",  # Eucalyptus-era clients are not always careful with case
    }
    assert parse_input(MODEL, "DescribeKeyPairs", params) == {"KeyNames": ["a"]}


@pytest.mark.parametrize(
    ("operation", "params", "code"),
    [
        ("DescribeKeyPairs", {"Bogus": "1"}, "UnknownParameter"),
        ("DescribeKeyPairs", {"Filter.1.Bogus": "1"}, "UnknownParameter"),
        ("DescribeKeyPairs", {"KeyName.x": "a"}, "UnknownParameter"),
        ("DescribeKeyPairs", {"KeyName.1.Sub": "a"}, "UnknownParameter"),
        ("DescribeKeyPairs", {"Filter.1": "scalar"}, "InvalidParameterValue"),
        ("DescribeKeyPairs", {"IncludePublicKey": "yes"}, "InvalidParameterValue"),
        ("DescribeKeyPairs", {"KeyName.1": "bell\x07"}, "InvalidParameterValue"),
        ("DescribeTags", {"MaxResults": "5.5"}, "InvalidParameterValue"),
        ("DescribeSpotPriceHistory", {"StartTime": "noon"}, "InvalidParameterValue"),
        ("ImportKeyPair", {"KeyName": "k", "PublicKeyMaterial": "***"}, "InvalidParameterValue"),
        ("ImportKeyPair", {"KeyName": "k"}, "MissingParameter"),
        ("CreateKeyPair", {}, "MissingParameter"),
        ("DescribeAccountAttributes", {"AttributeName.1..x": "y"}, "UnknownParameter"),
    ],
)
def test_bad_parameters(operation: str, params: dict[str, str], code: str) -> None:
    with pytest.raises(CloudError) as info:
        parse_input(MODEL, operation, params)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("operation", "output"),
    [
        (
            "DescribeKeyPairs",
            {
                "KeyPairs": [
                    {
                        "KeyPairId": "key-1a2b3c4d",
                        "KeyName": "a & <b> \"c\" 'é' ☃",
                        "KeyFingerprint": "aa:bb",
                        "KeyType": "rsa",
                        "CreateTime": datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC),
                        "Tags": [{"Key": "k", "Value": ""}],
                    }
                ]
            },
        ),
        ("DescribeKeyPairs", {"KeyPairs": []}),
        ("DeleteKeyPair", {"Return": True, "KeyPairId": "key-1a2b3c4d"}),
        (
            "DescribeInstanceTypes",
            {
                "InstanceTypes": [
                    {
                        "InstanceType": "m1.small",
                        "CurrentGeneration": False,
                        "VCpuInfo": {"DefaultVCpus": 1},
                        "MemoryInfo": {"SizeInMiB": 256},
                        "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
                    }
                ],
                "NextToken": "tok",
            },
        ),
        (
            "DescribeAccountAttributes",
            {
                "AccountAttributes": [
                    {
                        "AttributeName": "default-vpc",
                        "AttributeValues": [{"AttributeValue": "none"}],
                    }
                ]
            },
        ),
    ],
)
def test_rendered_answers_parse_back_with_botocore(operation: str, output: dict) -> None:
    xml = render_response(MODEL, operation, output, "req-1", API_VERSION)
    assert parsed_back(operation, xml) == output


def test_rendering_namespace_and_request_id() -> None:
    xml = render_response(MODEL, "DescribeRegions", {"Regions": []}, "req-9", "2009-04-04")
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert f'<DescribeRegionsResponse xmlns="{namespace("2009-04-04")}">'.encode() in xml
    assert b"<requestId>req-9</requestId>" in xml


def test_actions_without_output_answer_return_true() -> None:
    xml = render_response(MODEL, "CreateTags", {}, "req-2", API_VERSION)
    assert b"<return>true</return>" in xml
    assert parsed_back("CreateTags", xml) == {}


def test_error_document_reads_with_botocore() -> None:
    xml = render_error("InvalidKeyPair.NotFound", "The key pair 'a<b>' does not exist", "req-3")
    response = {"body": xml, "headers": {}, "status_code": 400}
    parsed = parsers.create_parser("ec2").parse(response, None)
    assert parsed["Error"] == {
        "Code": "InvalidKeyPair.NotFound",
        "Message": "The key pair 'a<b>' does not exist",
    }
    assert parsed["ResponseMetadata"]["RequestId"] == "req-3"
