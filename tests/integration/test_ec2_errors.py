"""Every failure is an EC2 XML error document with AWS's code and HTTP status, never a 500."""

from __future__ import annotations

import http.client
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.conftest import Karri
from tests.integration.ec2_wire import FORM, VERSION, Reply, error_of, send, unique, v4_get, v4_post

# An action AWS has and karri does not build in any planned issue.
NOT_BUILT = "CreateTransitGateway"


def is_error_document(reply: Reply) -> bool:
    root = reply.xml
    return (
        root.tag == "Response"
        and root.find("./Errors/Error/Code") is not None
        and root.find("./Errors/Error/Message") is not None
        and bool(root.findtext("./RequestID"))
    )


def call(karri: Karri, action: str, **params: str) -> Reply:
    return v4_post(karri, {"Action": action, "Version": VERSION, **params})


RUN = {"Action": "RunInstances", "ImageId": "emi-00000000", "MinCount": "1", "MaxCount": "1"}
REGISTER = {"Action": "RegisterImage", "Name": "bdm-checks", "RootDeviceName": "/dev/sda1"}


@pytest.mark.parametrize(
    ("params", "code", "status"),
    [
        ({"Action": "NoSuchThing"}, "InvalidAction", 400),
        ({"Action": NOT_BUILT}, "UnsupportedOperation", 400),
        ({"Version": VERSION}, "MissingAction", 400),
        ({"Action": "DescribeRegions", "Version": "latest"}, "NoSuchVersion", 400),
        ({"Action": "CreateKeyPair"}, "MissingParameter", 400),
        ({"Action": "ImportKeyPair", "KeyName": "k"}, "MissingParameter", 400),
        ({"Action": "CreateTags", "Tag.1.Key": "a"}, "MissingParameter", 400),
        ({"Action": "DescribeRegions", "Bogus": "1"}, "UnknownParameter", 400),
        ({"Action": "DescribeKeyPairs", "Filter.1.Bogus": "x"}, "UnknownParameter", 400),
        ({"Action": "DescribeKeyPairs", "KeyName.x": "a"}, "UnknownParameter", 400),
        ({"Action": "DescribeRegions", "AllRegions": "maybe"}, "InvalidParameterValue", 400),
        ({"Action": "DescribeTags", "MaxResults": "many"}, "InvalidParameterValue", 400),
        ({"Action": "DescribeTags", "MaxResults": "3"}, "InvalidParameterValue", 400),
        ({"Action": "DescribeTags", "MaxResults": "1_0"}, "InvalidParameterValue", 400),
        ({"Action": "DescribeTags", "MaxResults": " 10"}, "InvalidParameterValue", 400),
        ({"Action": "DescribeTags", "MaxResults": "\u0665\u0660"}, "InvalidParameterValue", 400),
        (
            {"Action": "CreateKeyPair", "KeyName": "k", "KeyType": "dsa"},
            "InvalidParameterValue",
            400,
        ),
        (
            {"Action": "ImportKeyPair", "KeyName": "k", "PublicKeyMaterial": "not base64!"},
            "InvalidParameterValue",
            400,
        ),
        (
            {"Action": "DescribeKeyPairs", "Filter.1.Name": "nope", "Filter.1.Value.1": "x"},
            "InvalidParameterValue",
            400,
        ),
        ({"Action": "DescribeKeyPairs", "KeyName.1": "a\x01b"}, "InvalidParameterValue", 400),
        (
            {"Action": "DescribeKeyPairs", "KeyName.1": "no-such-key"},
            "InvalidKeyPair.NotFound",
            400,
        ),
        (
            {"Action": "DescribeKeyPairs", "KeyPairId.1": "key-00000000"},
            "InvalidKeyPair.NotFound",
            400,
        ),
        ({"Action": "CreateTags", "ResourceId.1": "bogus", "Tag.1.Key": "a"}, "InvalidID", 400),
        ({"Action": "DescribeTags", "NextToken": "garbage"}, "InvalidPaginationToken", 400),
        ({"Action": "DescribeRegions", "DryRun": "true"}, "DryRunOperation", 412),
        (
            {**RUN, "SubnetId": "subnet-12345678"},
            "InvalidSubnetID.NotFound",
            400,
        ),
        (
            {**RUN, "NetworkInterface.1.SubnetId": "subnet-1"},
            "InvalidSubnetID.NotFound",
            400,
        ),
        (
            {**RUN, "LaunchTemplate.LaunchTemplateId": "lt-123"},
            "InvalidLaunchTemplateId.NotFound",
            400,
        ),
        ({**RUN, "ClientToken": "t" * 65}, "InvalidParameterValue", 400),
        ({**RUN, "PrivateIpAddress": "172.31.0.300"}, "InvalidParameterValue", 400),
        ({**RUN, "PrivateIpAddress": "10.0.0.20"}, "InvalidParameterValue", 400),
        ({**RUN, "PrivateIpAddress": "172.31.0.3"}, "InvalidParameterValue", 400),
        (
            {**RUN, "MaxCount": "2", "PrivateIpAddress": "172.31.0.50"},
            "InvalidParameterCombination",
            400,
        ),
        (
            {
                **RUN,
                "PrivateIpAddress": "172.31.0.50",
                "NetworkInterface.1.DeviceIndex": "0",
                "NetworkInterface.1.PrivateIpAddress": "172.31.0.51",
            },
            "InvalidParameterCombination",
            400,
        ),
        (
            {**RUN, "MetadataOptions.HttpTokens": "bogus"},
            "InvalidParameterValue",
            400,
        ),
        (
            {**RUN, "CpuOptions.CoreCount": "-1"},
            "InvalidParameterValue",
            400,
        ),
        (
            {
                **REGISTER,
                "BlockDeviceMapping.1.DeviceName": "/dev/sdb",
                "BlockDeviceMapping.1.Ebs.VolumeSize": "1",
                "BlockDeviceMapping.2.DeviceName": "/dev/sdb",
                "BlockDeviceMapping.2.Ebs.VolumeSize": "2",
            },
            "InvalidBlockDeviceMapping",
            400,
        ),
        (
            {
                **REGISTER,
                "BlockDeviceMapping.1.DeviceName": "/dev/sdb",
                "BlockDeviceMapping.1.Ebs.VolumeSize": "4",
                "BlockDeviceMapping.1.Ebs.VolumeType": "io1",
            },
            "MissingParameter",
            400,
        ),
        (
            {
                **REGISTER,
                "BlockDeviceMapping.1.DeviceName": "/dev/sdb",
                "BlockDeviceMapping.1.Ebs.VolumeSize": "4",
                "BlockDeviceMapping.1.Ebs.Iops": "500",
            },
            "InvalidParameterCombination",
            400,
        ),
    ],
)
def test_error_codes_and_statuses(karri: Karri, params: dict, code: str, status: int) -> None:
    params = {"Version": VERSION, **params}
    reply = v4_post(karri, params)
    assert (reply.code, reply.status) == (code, status), reply.text
    assert is_error_document(reply)
    assert reply.headers["x-amzn-requestid"] == reply.xml.findtext("./RequestID")


def test_boto3_sees_the_codes(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    assert error_of(ec2.describe_key_pairs, KeyNames=["absent"]) == (
        "InvalidKeyPair.NotFound",
        400,
    )
    assert error_of(ec2.create_transit_gateway) == ("UnsupportedOperation", 400)
    assert error_of(
        ec2.describe_key_pairs, Filters=[{"Name": "no-such-filter", "Values": ["x"]}]
    ) == ("InvalidParameterValue", 400)


def test_errors_also_answer_get(karri: Karri) -> None:
    reply = v4_get(karri, {"Action": "NoSuchThing", "Version": VERSION})
    assert (reply.code, reply.status) == ("InvalidAction", 400)


def test_non_utf8_parameters(karri: Karri) -> None:
    base = b"Action=DescribeKeyPairs&Version=2016-11-15&KeyName.1="
    for body in (base + b"%FF%FE", base + b"\xff\xfe"):
        reply = v4_post(karri, body)
        assert (reply.code, reply.status) == ("InvalidParameterValue", 400), reply.text
    raw = send(f"{karri.ec2_url}/?Action=DescribeRegions&RegionName.1=%C3%28")
    assert (raw.code, raw.status) == ("InvalidParameterValue", 400)


def test_bad_content_type(karri: Karri) -> None:
    body = b"Action=DescribeRegions&Version=2016-11-15"
    for content_type in ("application/json", "multipart/form-data; boundary=x", "text/xml"):
        reply = v4_post(karri, body, content_type=content_type)
        assert 400 <= reply.status < 500 and reply.code == "UnsupportedMediaType", content_type
        assert is_error_document(reply)
    # No Content-Type at all: read as a form, as AWS does.
    assert v4_post(karri, body, content_type=None).status == 200


def test_malformed_bodies_are_4xx_never_500(karri: Karri) -> None:
    bodies = [
        b'{"Action": "DescribeRegions"}',
        b"<DescribeRegions/>",
        b"Action=DescribeRegions&&&===&%zz&Version=2016-11-15",
        b"Action=DescribeRegions&Version=2016-11-15&Filter.1.Name.2=x",
        b"Action=DescribeRegions&Version=2016-11-15&Filter..Name=x",
        b"Action=DescribeRegions&Version=2016-11-15&Filter.1=x&Filter.1.Name=y",
        b"Action=DescribeRegions&Version=2016-11-15&RegionName=x&RegionName.1=y",
        b"Action=DescribeTags&Version=2016-11-15&MaxResults=99999999999999999999999",
        b"Action=CreateTags&Version=2016-11-15&ResourceId.1=key-1&Tag.1.Key.Sub=x",
        b"Action=DescribeKeyPairs&Version=2016-11-15&KeyName.-1=x",
        b"Action=DescribeKeyPairs&Version=2016-11-15&KeyName.%C2%B2=x",
        b"Action=DescribeKeyPairs&Version=2016-11-15&KeyName." + b"9" * 5000 + b"=x",
        b"Action=DescribeKeyPairs&Version=2016-11-15&Key%01Name.1=x",
        b"Action=Describe%01Regions&Version=2016-11-15",
        b"\x00\x01\x02",
    ]
    for body in bodies:
        reply = v4_post(karri, body)
        assert 400 <= reply.status < 500, (body, reply.status, reply.text)
        assert is_error_document(reply), body
        assert "Traceback" not in reply.text


def test_body_over_one_mib(karri: Karri) -> None:
    big = b"Action=DescribeRegions&Version=2016-11-15&Pad=" + b"a" * (1024 * 1024)
    reply = v4_post(karri, big)
    assert (reply.code, reply.status) == ("RequestEntityTooLarge", 413)
    assert is_error_document(reply)


def test_chunked_body_over_one_mib(karri: Karri) -> None:
    """No Content-Length to trust: the limit holds while the body streams in."""
    parts = urlsplit(karri.ec2_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    chunks = (b"a" * 65536 for _ in range(20))
    try:
        connection.request(
            "POST",
            "/",
            body=chunks,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 413
        assert b"RequestEntityTooLarge" in response.read()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close before the client finishes sending: also a refusal
    finally:
        connection.close()


def test_unknown_path_and_method(karri: Karri) -> None:
    path = send(karri.ec2_url + "/services/NoSuchService?Action=DescribeRegions")
    assert path.status == 404 and is_error_document(path)
    method = send(karri.ec2_url + "/?Action=DescribeRegions", "PUT", b"")
    assert method.status == 405 and is_error_document(method)


def test_errors_do_not_leave_half_done_work(karri: Karri) -> None:
    """A failed CreateKeyPair (bad tag) creates nothing."""
    name = unique("half")
    reply = call(
        karri,
        "CreateKeyPair",
        KeyName=name,
        **{
            "TagSpecification.1.ResourceType": "key-pair",
            "TagSpecification.1.Tag.1.Key": "aws:reserved",
            "TagSpecification.1.Tag.1.Value": "x",
        },
    )
    assert (reply.code, reply.status) == ("InvalidParameterValue", 400)
    ec2 = karri.client("ec2")
    assert error_of(ec2.describe_key_pairs, KeyNames=[name])[0] == "InvalidKeyPair.NotFound"


def test_overflowing_dates_and_lengths(karri: Karri) -> None:
    """A year-9999 signing date or a 5,000-digit Content-Length once answered 500."""
    body = b"Action=DescribeRegions&Version=2016-11-15"
    date_only = {"Date": "Fri, 31 Dec 9999 23:59:59 -1400", "Content-Type": FORM}
    signed = (
        f"AWS4-HMAC-SHA256 Credential={karri.admin.access_key_id}/99991231/{karri.region}/ec2/"
        f"aws4_request, SignedHeaders=date;host, Signature={'0' * 64}"
    )
    reply = send(karri.ec2_url + "/", "POST", body, date_only | {"Authorization": signed})
    assert 400 <= reply.status < 500 and is_error_document(reply), reply.text
    presigned = (
        f"{karri.ec2_url}/?Action=DescribeRegions&Version=2016-11-15"
        "&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=99991231T235959Z&X-Amz-Expires=60"
        f"&X-Amz-Credential={karri.admin.access_key_id}/99991231/{karri.region}/ec2/aws4_request"
        f"&X-Amz-SignedHeaders=host&X-Amz-Signature={'0' * 64}"
    )
    reply = send(presigned)
    assert 400 <= reply.status < 500 and is_error_document(reply), reply.text
    parts = urlsplit(karri.ec2_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("POST", "/")
    connection.putheader("Content-Length", "0" * 5000 + str(len(body)))
    connection.putheader("Content-Type", FORM)
    connection.endheaders(body)
    response = connection.getresponse()
    assert 400 <= response.status < 500 and b"<Errors>" in response.read()
    connection.close()


def test_a_client_gone_mid_body_is_no_server_error(karri: Karri) -> None:
    parts = urlsplit(karri.ec2_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: " + FORM.encode()
            + b"\r\nContent-Length: 1000\r\n\r\nAction=Des"
        )  # fmt: skip
    time.sleep(1.5)  # the request's log line is written within half a second
    log = (karri.data_dir / "logs" / "karri.log").read_text()
    assert "ClientDisconnect" not in log and "status=499" in log


def test_volume_performance_out_of_range(karri: Karri) -> None:
    zone = f"{karri.region}-1a"
    for extra in (
        {"VolumeType": "io1", "Iops": "99999999"},
        {"VolumeType": "gp3", "Throughput": "99999"},
    ):
        reply = call(karri, "CreateVolume", AvailabilityZone=zone, Size="4", **extra)
        assert (reply.code, reply.status) == ("InvalidParameterValue", 400), reply.text
