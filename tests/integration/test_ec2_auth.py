"""Authentication: SigV4 (header and presigned) and SigV2, signed by botocore's own signers."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
from botocore.config import Config

from tests.conftest import Karri
from tests.integration.ec2_wire import (
    VERSION,
    clock,
    error_of,
    form,
    presigned_url,
    send,
    sigv2_params,
    unique,
    v2_request,
    v4_get,
    v4_post,
)

# Every character class that quoting gets wrong somewhere: non-ASCII (2, 3 and 4 bytes in
# UTF-8), the URI reserved set, the ones botocore and SigV2 treat specially, and spaces.
AWKWARD = "é ü ☃ 𝄞 / + = & ? % * ~ ' \" < > # ; : , @ ! $ ( ) [ ] { } | \\ ^ `  two  spaces"


def key_with_tag(karri: Karri, value: str) -> str:
    name = unique("auth")
    karri.client("ec2").create_key_pair(
        KeyName=name,
        TagSpecifications=[
            {"ResourceType": "key-pair", "Tags": [{"Key": "odd key é/+", "Value": value}]}
        ],
    )
    return name


def describe_by_tag(ec2, value: str) -> list[str]:
    pattern = value.replace("\\", "\\\\")  # a backslash escapes in filter values
    pairs = ec2.describe_key_pairs(Filters=[{"Name": "tag:odd key é/+", "Values": [pattern]}])
    return [k["KeyName"] for k in pairs["KeyPairs"]]


def by_tag_query(value: str) -> dict[str, str]:
    """DescribeKeyPairs by the odd tag, as raw query parameters."""
    return {
        "Action": "DescribeKeyPairs",
        "Version": VERSION,
        "Filter.1.Name": "tag:odd key é/+",
        "Filter.1.Value.1": value,
    }


def test_sigv4_header_with_unicode_and_reserved_characters(karri: Karri) -> None:
    value = AWKWARD.replace("*", "").replace("?", "")  # no wildcards: match it exactly
    name = key_with_tag(karri, value)
    assert describe_by_tag(karri.client("ec2"), value) == [name]
    tags = karri.client("ec2").describe_tags(
        Filters=[
            {"Name": "resource-type", "Values": ["key-pair"]},
            {"Name": "value", "Values": [value.replace("\\", "\\\\")]},
        ]
    )["Tags"]
    assert [(t["Key"], t["Value"]) for t in tags] == [("odd key é/+", value)]


def test_sigv4_get_with_parameters_in_the_query(karri: Karri) -> None:
    value = "get é ☃ /+=&%"
    name = key_with_tag(karri, value)
    reply = v4_get(karri, by_tag_query(value))
    assert reply.status == 200, reply.text
    assert name in reply.text


def test_repeated_and_empty_parameters_are_signed_and_accepted(karri: Karri) -> None:
    name = key_with_tag(karri, "")
    pairs = [
        ("Action", "DescribeKeyPairs"),
        ("Version", VERSION),
        ("KeyName.1", name),
        ("KeyName.1", name),  # repeated: both are covered by the signature
        ("Filter.1.Name", "tag:odd key é/+"),
        ("Filter.1.Value.1", ""),  # empty: matches the empty tag value
    ]
    reply = v4_post(karri, pairs)
    assert reply.status == 200, reply.text
    assert reply.text.count("<keyName>") == 1 and name in reply.text


def test_presigned_get_by_sigv4_query_auth(karri: Karri) -> None:
    value = "presigned é /+&="
    name = key_with_tag(karri, value)
    url = presigned_url(karri, by_tag_query(value))
    reply = send(url)
    assert reply.status == 200, reply.text
    assert name in reply.text


def test_presigned_url_from_generate_presigned_url(karri: Karri) -> None:
    """botocore signs EC2's presigned URLs for POST, the operation's method; AWS checks it."""
    url = karri.client("ec2").generate_presigned_url("describe_regions", ExpiresIn=60)
    assert "X-Amz-Signature=" in url
    ok = send(url, "POST", b"")
    assert ok.status == 200, ok.text
    assert "<regionName>eucalyptus</regionName>" in ok.text
    wrong_method = send(url, "GET")
    assert (wrong_method.status, wrong_method.code) == (401, "AuthFailure")


def test_expired_presigned_url(karri: Karri) -> None:
    with clock(-timedelta(hours=2)):
        url = presigned_url(karri, {"Action": "DescribeRegions", "Version": VERSION}, expires=60)
    reply = send(url)
    assert (reply.status, reply.code) == (400, "RequestExpired")
    with clock(-timedelta(minutes=30)):  # old, but still within its hour
        url = presigned_url(karri, {"Action": "DescribeRegions", "Version": VERSION}, expires=3600)
    assert send(url).status == 200


def test_presigned_url_with_a_wrong_signature(karri: Karri) -> None:
    url = presigned_url(karri, {"Action": "DescribeRegions", "Version": VERSION})
    tampered = url.replace("DescribeRegions", "DescribeKeyPairs")
    reply = send(tampered)
    assert (reply.status, reply.code) == (401, "AuthFailure")


def test_wrong_secret_is_auth_failure(karri: Karri) -> None:
    ec2 = boto3.client(
        "ec2",
        endpoint_url=karri.ec2_url,
        region_name=karri.region,
        aws_access_key_id=karri.admin.access_key_id,
        aws_secret_access_key="x" * 40,
        config=Config(retries={"max_attempts": 1}),
    )
    assert error_of(ec2.describe_regions) == ("AuthFailure", 401)
    reply = v4_post(karri, {"Action": "DescribeRegions", "Version": VERSION}, secret="y" * 40)
    assert (reply.status, reply.code) == (401, "AuthFailure")


def test_unknown_access_key_is_auth_failure(karri: Karri) -> None:
    ec2 = boto3.client(
        "ec2",
        endpoint_url=karri.ec2_url,
        region_name=karri.region,
        aws_access_key_id="AKINOSUCHKEY00000000",
        aws_secret_access_key="x" * 40,
        config=Config(retries={"max_attempts": 1}),
    )
    assert error_of(ec2.describe_key_pairs) == ("AuthFailure", 401)


def test_skewed_clock_is_request_expired(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    for offset in (timedelta(minutes=20), -timedelta(minutes=20)):
        with clock(offset):
            assert error_of(ec2.describe_regions) == ("RequestExpired", 400)
    with clock(timedelta(minutes=10)):  # within AWS's 15 minutes
        assert ec2.describe_regions()["Regions"]


def test_unsigned_is_missing_authentication_token(karri: Karri) -> None:
    get = send(f"{karri.ec2_url}/?Action=DescribeRegions&Version={VERSION}")
    post = send(
        karri.ec2_url + "/",
        "POST",
        form({"Action": "DescribeRegions", "Version": VERSION}),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    bare = send(karri.ec2_url + "/")
    for reply in (get, post, bare):
        assert (reply.status, reply.code) == (401, "MissingAuthenticationToken")


def test_sigv2_with_botocore_signer(karri: Karri) -> None:
    value = "v2 é ☃ /+=&% ~"
    ec2 = karri.client("ec2", signature_version="v2")
    name = unique("v2")
    ec2.create_key_pair(
        KeyName=name,
        TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "v2", "Value": value}]}],
    )
    found = ec2.describe_key_pairs(Filters=[{"Name": "tag:v2", "Values": [value]}])
    assert [k["KeyName"] for k in found["KeyPairs"]] == [name]
    ec2.delete_key_pair(KeyName=name)


def test_sigv2_hmac_sha256_and_sha1_by_get_and_post(karri: Karri) -> None:
    params = {"Action": "DescribeRegions", "Version": VERSION, "RegionName.1": karri.region}
    for method in ("GET", "POST"):
        for algorithm in ("HmacSHA256", "HmacSHA1"):
            reply = v2_request(karri, params, method=method, signature_method=algorithm)
            assert reply.status == 200, (method, algorithm, reply.text)
            assert "<regionName>eucalyptus</regionName>" in reply.text


def test_sigv2_host_without_port_and_eucalyptus_path(karri: Karri) -> None:
    """libcloud and boto 2 sign the host without its port, at /services/Eucalyptus."""
    params = {"Action": "DescribeAvailabilityZones", "Version": VERSION}
    reply = v2_request(karri, params, host="127.0.0.1", path="/services/Eucalyptus")
    assert reply.status == 200, reply.text
    assert "<zoneName>eucalyptus-1a</zoneName>" in reply.text


def test_sigv2_failures(karri: Karri) -> None:
    params = {"Action": "DescribeRegions", "Version": VERSION}
    stale = v2_request(karri, params, when=datetime.now(UTC) - timedelta(minutes=20))
    assert (stale.status, stale.code) == (400, "RequestExpired")
    signed_for_get = v2_request(karri, params, method="GET")
    assert signed_for_get.status == 200
    wrong = v2_request(karri, params, creds=replace(karri.admin, secret_access_key="z" * 40))
    assert (wrong.status, wrong.code) == (401, "AuthFailure")
    signed_for_root = sigv2_params(karri, params, path="/")
    moved = send(f"{karri.ec2_url}/services/compute?{form(signed_for_root).decode()}")
    assert (moved.status, moved.code) == (401, "AuthFailure")


def test_one_log_line_per_request_and_no_secrets(karri: Karri) -> None:
    reply = v4_post(karri, {"Action": "DescribeAccountAttributes", "Version": VERSION})
    assert reply.status == 200
    request_id = reply.headers["x-amzn-requestid"]
    assert f"<requestId>{request_id}</requestId>" in reply.text
    deadline = time.monotonic() + 5  # the log file is written in batches (logs.FLUSH_SECONDS)
    while True:
        log = (karri.data_dir / "logs" / "karri.log").read_text()
        lines = [line for line in log.splitlines() if request_id in line]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(lines) == 1
    assert f"account={karri.admin.account_id}" in lines[0]
    assert "action=DescribeAccountAttributes" in lines[0] and "status=200" in lines[0]
    assert "duration_ms=" in lines[0]
    assert karri.admin.secret_access_key not in log
