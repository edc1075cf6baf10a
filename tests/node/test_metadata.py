"""The metadata service over loopback: paths, versions, listings, IMDSv2, isolation, signing.

The service identifies instances by source address; here instance A asks from 127.0.0.1
and instance B from 127.0.0.2 (both loopback), 127.0.0.3 is no instance at all. The
lookup is a plain function over InstanceMetadata values, as the cloud's would be.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.utils import InstanceMetadataFetcher

from karri.node import InstanceMetadata, ProfileMetadata, RoleCredentials
from karri.node.identity import IdentitySigner
from karri.node.imds import MetadataService, Tokens
from karri.node.signedviews import SignedViews, local
from tests.rawhttp import ENDLESS_HEADER, send_until_answered

from .conftest import LoopThread
from .guests import metadata
from .signing import check_signature, identity_key, pkcs7_content

LAUNCH = dt.datetime(2026, 11, 27, 10, 0, 0, tzinfo=dt.UTC)
A = metadata(
    "i-0000000a",
    "172.31.0.10",
    "52:54:00:00:00:0a",
    launch_time=LAUNCH,
    reservation_id="r-0000000a",
    ami_launch_index=2,
    block_device_mapping={"ami": "/dev/sda1", "root": "/dev/sda1", "ephemeral0": "sdb"},
    kernel_id="eki-00000002",
    public_ipv4="127.64.0.10",
    public_keys=(("mykey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pT mykey"),),
    security_groups=("default",),
    security_group_ids=("sg-0000000a",),
    interface_id="eni-0000000a",
    vpc_id="vpc-0000000a",
    vpc_cidr_blocks=("172.31.0.0/16",),
    subnet_id="subnet-0000000a",
    subnet_cidr_block="172.31.0.0/20",
    user_data=b"#!/bin/sh\necho secret-of-a\n",
    iam=ProfileMetadata(
        "arn:aws:iam::123456789012:instance-profile/apps/web",
        "AIPAEXAMPLEEXAMPLE01",
        LAUNCH,
        role_name="web-role",
        credentials=RoleCredentials(
            "ASIAEXAMPLEEXAMPLE01", "secret/+key", "dG9rZW4=", LAUNCH + dt.timedelta(hours=6)
        ),
    ),
)
B = metadata(
    "i-0000000b",
    "172.31.0.11",
    "52:54:00:00:00:0b",
    launch_time=LAUNCH,
    account_id="210987654321",
    instance_type="m1.small",
    http_tokens="required",
)
BY_IP = {"127.0.0.1": A, "127.0.0.2": B}


KEY = identity_key()
CERT = KEY.certificate_pem


async def _lookup(ip: str) -> InstanceMetadata | None:
    await asyncio.sleep(0)  # the cloud's lookup may be async
    return BY_IP.get(ip)


@pytest.fixture(scope="module")
def imds() -> Iterator[str]:
    loop = LoopThread()
    service = MetadataService(_lookup, Tokens(b"k" * 32), SignedViews(local(IdentitySigner(KEY))))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    loop.run(service.start(sock))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    loop.run(service.close())
    loop.close()


def client(url: str, source: str = "127.0.0.1") -> httpx.Client:
    return httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=source))


def test_listings_mark_directories_and_versions(imds: str) -> None:
    with client(imds) as c:
        versions = c.get("/").text.split("\n")
        assert versions[0] == "1.0" and versions[-1] == "latest" and "2009-04-04" in versions
        top = c.get("/latest/").text.split("\n")
        assert top == ["dynamic/", "meta-data/", "user-data"]
        assert c.get("/latest").text == c.get("/latest/").text
        listing = c.get("/latest/meta-data/").text.split("\n")
        for key in ("ami-id", "instance-id", "local-ipv4", "public-ipv4", "reservation-id"):
            assert key in listing
        for key in ("block-device-mapping/", "placement/", "public-keys/", "network/"):
            assert key in listing
        assert "instance-id/" not in listing and "ramdisk-id" not in listing
        assert c.get("/latest/meta-data/placement/").text == "availability-zone\nregion"
        assert c.get("/latest/meta-data/placement").text == "availability-zone\nregion"
        assert c.get("/latest/meta-data/instance-id/").status_code == 404
        assert c.get("/latest/meta-data/nothing-here").status_code == 404
        assert c.get("/2099-01-01/meta-data/instance-id").status_code == 404


def test_values_as_cloud_init_asks_them(imds: str) -> None:
    with client(imds) as c:
        assert c.get("/2009-04-04/meta-data/instance-id").text == "i-0000000a"
        base = "/2021-03-23/meta-data/"
        expected = {
            "ami-id": "emi-00000001",
            "ami-launch-index": "2",
            "hostname": "ip-172-31-0-10.eucalyptus.compute.internal",
            "local-hostname": "ip-172-31-0-10.eucalyptus.compute.internal",
            "instance-type": "t1.micro",
            "local-ipv4": "172.31.0.10",
            "reservation-id": "r-0000000a",
            "placement/availability-zone": "eucalyptus-1a",
            "public-keys/": "0=mykey",
            "public-keys/0/": "openssh-key",
            "public-keys/0/openssh-key": A.public_keys[0][1],
            "kernel-id": "eki-00000002",
            "security-groups": "default",
            "block-device-mapping/ephemeral0": "sdb",
            "public-hostname": "ec2-127-64-0-10.eucalyptus.compute.amazonaws.com",
            f"network/interfaces/macs/{A.mac}/local-ipv4s": "172.31.0.10",
            f"network/interfaces/macs/{A.mac}/owner-id": "123456789012",
            f"network/interfaces/macs/{A.mac}/interface-id": "eni-0000000a",
            f"network/interfaces/macs/{A.mac}/vpc-id": "vpc-0000000a",
            f"network/interfaces/macs/{A.mac}/vpc-ipv4-cidr-block": "172.31.0.0/16",
            f"network/interfaces/macs/{A.mac}/vpc-ipv4-cidr-blocks": "172.31.0.0/16",
            f"network/interfaces/macs/{A.mac}/subnet-id": "subnet-0000000a",
            f"network/interfaces/macs/{A.mac}/subnet-ipv4-cidr-block": "172.31.0.0/20",
            f"network/interfaces/macs/{A.mac}/security-group-ids": "sg-0000000a",
        }
        for path, value in expected.items():
            response = c.get(base + path)
            assert (response.status_code, response.text) == (200, value), path
        user_data = c.get("/latest/user-data")
        assert user_data.content == A.user_data
        assert user_data.headers["content-type"] == "application/octet-stream"


def test_identity_document_and_signatures(imds: str, tmp_path: Path) -> None:
    with client(imds) as c:
        assert c.get("/latest/dynamic/").text == "instance-identity/"
        listing = c.get("/latest/dynamic/instance-identity/").text
        assert listing == "document\npkcs7\nrsa2048\nsignature"
        document = c.get("/latest/dynamic/instance-identity/document").content
        doc = json.loads(document)
        assert doc["instanceId"] == "i-0000000a" and doc["accountId"] == "123456789012"
        assert doc["privateIp"] == "172.31.0.10" and doc["pendingTime"] == "2026-11-27T10:00:00Z"
        assert doc["kernelId"] == "eki-00000002" and doc["ramdiskId"] is None
        assert b'"region" : "eucalyptus"' in document  # EC2's own layout
        signature = c.get("/latest/dynamic/instance-identity/signature").content
        check_signature(CERT, document, signature)
        pkcs7 = c.get("/latest/dynamic/instance-identity/pkcs7").text
        assert all(len(line) <= 64 for line in pkcs7.splitlines())
        assert c.get("/latest/dynamic/instance-identity/rsa2048").text == pkcs7
    assert pkcs7_content(CERT, pkcs7, tmp_path) == document


def test_imdsv2_token_flow(imds: str) -> None:
    with client(imds) as c:
        assert c.put("/latest/api/token").status_code == 400
        for bad in ("0", "21601", "x"):
            ttl = {"X-aws-ec2-metadata-token-ttl-seconds": bad}
            assert c.put("/latest/api/token", headers=ttl).status_code == 400
        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        forwarded = {**ttl, "X-Forwarded-For": "10.0.0.1"}
        assert c.put("/latest/api/token", headers=forwarded).status_code == 403
        assert c.put("/latest/meta-data/instance-id", headers=ttl).status_code == 405
        response = c.put("/latest/api/token", headers=ttl)
        assert response.status_code == 200
        assert response.headers["x-aws-ec2-metadata-token-ttl-seconds"] == "60"
        token = response.text
        with_token = c.get(
            "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token}
        )
        assert (with_token.status_code, with_token.text) == (200, "i-0000000a")
        bad = c.get("/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": "AQAE"})
        assert bad.status_code == 401
    with client(imds, "127.0.0.2") as b:
        # A's token is no good to B, and B requires tokens
        stolen = b.get("/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token})
        assert stolen.status_code == 401
        assert b.get("/latest/meta-data/instance-id").status_code == 401
        own = b.put("/latest/api/token", headers=ttl).text
        response = b.get("/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": own})
        assert (response.status_code, response.text) == (200, "i-0000000b")
        assert (
            b.get("/latest/user-data", headers={"X-aws-ec2-metadata-token": own}).status_code == 404
        )


def test_token_expiry_and_tampering() -> None:
    tokens = Tokens(b"s" * 32)
    token = tokens.issue("i-0000000a", 10, now=1000.0)
    assert tokens.valid(token, "i-0000000a", now=1009.0)
    assert not tokens.valid(token, "i-0000000a", now=1010.0)
    assert not tokens.valid(token, "i-0000000b", now=1000.0)
    raw = base64.urlsafe_b64decode(token)
    forged = base64.urlsafe_b64encode(raw.replace(b"i-0000000a", b"i-0000000b")).decode()
    assert not tokens.valid(forged, "i-0000000b", now=1000.0)
    assert not Tokens(b"t" * 32).valid(token, "i-0000000a", now=1000.0)


def test_unknown_source_gets_nothing(imds: str) -> None:
    with client(imds, "127.0.0.3") as c:
        for path in ("/latest/meta-data/instance-id", "/latest/user-data", "/latest/meta-data/"):
            response = c.get(path)
            assert response.status_code == 404
            assert b"i-0000000" not in response.content and b"secret" not in response.content
            assert "404 - Not Found" in response.text
        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        assert c.put("/latest/api/token", headers=ttl).status_code == 404


def test_an_endless_header_is_refused(imds: str) -> None:
    """A guest cannot grow karri's process with a header that never ends."""
    answer = send_until_answered(imds, ENDLESS_HEADER)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"<h1>400 - Bad Request</h1>" in answer
    assert client(imds).get("/latest/meta-data/").status_code in (200, 404)


def test_iam_info_and_role_credentials_as_ec2_serves_them(imds: str) -> None:
    with client(imds) as c:
        assert "iam/" in c.get("/latest/meta-data/").text.split("\n")
        assert c.get("/latest/meta-data/iam/").text == "info\nsecurity-credentials/"
        info = c.get("/latest/meta-data/iam/info")
        assert info.headers["content-type"].startswith("text/plain")
        assert info.text == (
            "{\n"
            '  "Code" : "Success",\n'
            '  "LastUpdated" : "2026-11-27T10:00:00Z",\n'
            '  "InstanceProfileArn" : "arn:aws:iam::123456789012:instance-profile/apps/web",\n'
            '  "InstanceProfileId" : "AIPAEXAMPLEEXAMPLE01"\n'
            "}"
        )
        assert c.get("/latest/meta-data/iam/security-credentials/").text == "web-role"
        v1 = c.get("/latest/meta-data/iam/security-credentials/web-role")
        assert json.loads(v1.text) == {
            "Code": "Success",
            "LastUpdated": "2026-11-27T10:00:00Z",
            "Type": "AWS-HMAC",
            "AccessKeyId": "ASIAEXAMPLEEXAMPLE01",
            "SecretAccessKey": "secret/+key",
            "Token": "dG9rZW4=",
            "Expiration": "2026-11-27T16:00:00Z",
        }
        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        token = c.put("/latest/api/token", headers=ttl).text
        v2 = c.get(
            "/latest/meta-data/iam/security-credentials/web-role",
            headers={"X-aws-ec2-metadata-token": token},
        )
        assert v2.text == v1.text
        assert c.get("/latest/meta-data/iam/security-credentials/other").status_code == 404
    with client(imds, "127.0.0.2") as b:  # no instance profile: nothing under iam/
        own = b.put("/latest/api/token", headers=ttl).text
        headers = {"X-aws-ec2-metadata-token": own}
        assert "iam/" not in b.get("/latest/meta-data/", headers=headers).text.split("\n")
        for path in ("iam/", "iam/info", "iam/security-credentials/"):
            assert b.get(f"/latest/meta-data/{path}", headers=headers).status_code == 404


def test_botocores_instance_metadata_fetcher_reads_the_role_credentials(imds: str) -> None:
    """What SDKs in the guest run (IMDSv2: a token, the role's name, its credentials)."""
    fetched = InstanceMetadataFetcher(timeout=5, num_attempts=1, base_url=imds + "/")
    credentials = fetched.retrieve_iam_role_credentials()
    assert credentials["role_name"] == "web-role"
    assert (credentials["access_key"], credentials["secret_key"], credentials["token"]) == (
        "ASIAEXAMPLEEXAMPLE01",
        "secret/+key",
        "dG9rZW4=",
    )
