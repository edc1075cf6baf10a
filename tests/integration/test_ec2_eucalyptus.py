"""Eucalyptus compatibility: its service paths, old API versions, its own answers, libcloud."""

from __future__ import annotations

import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from libcloud.compute.providers import get_driver
from libcloud.compute.types import Provider

from tests.conftest import Karri
from tests.integration.ec2_wire import VERSION, unique, v2_request, v4_post

EC2_XMLNS = "http://ec2.amazonaws.com/doc/{}/"
EUCALYPTUS_XMLNS = "http://msgs.eucalyptus.com/3.3.0"


@pytest.mark.parametrize(
    "path", ["/services/compute", "/services/Eucalyptus", "/services/compute/"]
)
def test_boto3_at_eucalyptus_paths(karri: Karri, path: str) -> None:
    ec2 = boto3.client(  # at what an eucarc's EC2_URL points to
        "ec2",
        endpoint_url=karri.ec2_url + path,
        region_name=karri.region,
        aws_access_key_id=karri.admin.access_key_id,
        aws_secret_access_key=karri.admin.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )
    assert ec2.describe_regions()["Regions"][0]["RegionName"] == "eucalyptus"
    name = unique("path")
    ec2.create_key_pair(KeyName=name)
    assert ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]["KeyName"] == name
    # AWS clients get AWS's shape at every path.
    assert ec2.describe_instance_types(InstanceTypes=["m1.small"])["InstanceTypes"]


def test_aws_cli_at_services_compute(karri: Karri) -> None:
    out = karri.aws(
        "ec2", "describe-availability-zones", "--endpoint-url", karri.ec2_url + "/services/compute"
    )
    assert out["AvailabilityZones"][0]["ZoneName"] == "eucalyptus-1a"


@pytest.mark.parametrize("version", ["2009-04-04", "2014-06-15", VERSION])
def test_answers_in_the_namespace_of_the_version_asked(karri: Karri, version: str) -> None:
    reply = v4_post(karri, {"Action": "DescribeAvailabilityZones", "Version": version})
    assert reply.status == 200, reply.text
    assert reply.namespace == EC2_XMLNS.format(version)
    ns = {"ec2": reply.namespace}
    assert reply.xml.findtext(
        ".//ec2:availabilityZoneInfo/ec2:item/ec2:zoneName", namespaces=ns
    ) == ("eucalyptus-1a")
    v2 = v2_request(
        karri, {"Action": "DescribeRegions", "Version": version}, path="/services/compute"
    )
    assert v2.status == 200 and v2.namespace == EC2_XMLNS.format(version)


def eucalyptus_types(reply) -> dict[str, tuple[int, int, int]]:
    ns = {"euca": EUCALYPTUS_XMLNS}
    return {
        item.findtext("euca:name", namespaces=ns): (
            int(item.findtext("euca:cpu", namespaces=ns)),
            int(item.findtext("euca:memory", namespaces=ns)),
            int(item.findtext("euca:disk", namespaces=ns)),
        )
        for item in reply.xml.findall("euca:instanceTypeDetails/euca:item", ns)
    }


def test_eucalyptus_shaped_instance_types_for_old_versions(karri: Karri) -> None:
    reply = v4_post(karri, {"Action": "DescribeInstanceTypes", "Version": "2009-04-04"})
    assert reply.status == 200, reply.text
    assert reply.namespace == EUCALYPTUS_XMLNS
    assert reply.xml.findtext(f"{{{EUCALYPTUS_XMLNS}}}requestId")
    types = eucalyptus_types(reply)
    aws = karri.client("ec2").describe_instance_types()["InstanceTypes"]
    assert types == {
        t["InstanceType"]: (
            t["VCpuInfo"]["DefaultVCpus"],
            t["MemoryInfo"]["SizeInMiB"],
            t["InstanceStorageInfo"]["TotalSizeInGB"],
        )
        for t in aws
    }


def test_eucalyptus_shape_for_sigv2_at_services_eucalyptus(karri: Karri) -> None:
    """libcloud's driver sends today's Version there, signed with SigV2, and wants Eucalyptus's."""
    euca = v2_request(
        karri, {"Action": "DescribeInstanceTypes", "Version": VERSION}, path="/services/Eucalyptus"
    )
    assert euca.status == 200 and euca.namespace == EUCALYPTUS_XMLNS
    assert "m1.small" in eucalyptus_types(euca)
    aws = v2_request(
        karri, {"Action": "DescribeInstanceTypes", "Version": VERSION}, path="/services/compute"
    )
    assert aws.namespace == EC2_XMLNS.format(VERSION)


@pytest.fixture
def libcloud_driver(karri: Karri):
    url = urlsplit(karri.ec2_url)
    cls = get_driver(Provider.EUCALYPTUS)
    return cls(
        karri.admin.access_key_id,
        karri.admin.secret_access_key,
        secure=False,
        host=url.hostname,
        port=url.port,
        path="/services/Eucalyptus",
    )


def test_libcloud_eucalyptus_driver(karri: Karri, libcloud_driver) -> None:
    driver = libcloud_driver
    sizes = {s.id: s for s in driver.list_sizes()}
    small = karri.client("ec2").describe_instance_types(InstanceTypes=["m1.small"])
    info = small["InstanceTypes"][0]
    assert sizes["m1.small"].ram == info["MemoryInfo"]["SizeInMiB"]
    assert sizes["m1.small"].disk == info["InstanceStorageInfo"]["TotalSizeInGB"]
    assert sizes["m1.small"].extra["cpu"] == info["VCpuInfo"]["DefaultVCpus"]

    name = unique("lc")
    created = driver.create_key_pair(name)
    assert created.private_key.startswith("-----BEGIN RSA PRIVATE KEY-----")
    public = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    imported = driver.import_key_pair_from_string(name + "-imp", public)
    assert imported.fingerprint
    listed = {k.name: k for k in driver.list_key_pairs()}
    assert listed[name].fingerprint == created.fingerprint
    assert driver.get_key_pair(name).name == name
    key_id = karri.client("ec2").describe_key_pairs(KeyNames=[name])["KeyPairs"][0]["KeyPairId"]
    assert driver.ex_create_tags(SimpleNamespace(id=key_id), {"via": "libcloud"})
    assert driver.ex_describe_tags(SimpleNamespace(id=key_id)) == {"via": "libcloud"}
    assert driver.delete_key_pair(listed[name])
    assert name not in {k.name for k in driver.list_key_pairs()}
    # The driver asks for the zones of region "us-east-1", which this cloud does not have.
    assert driver.ex_list_availability_zones() == []


def test_zones_verbose_is_eucalyptus_capacity_table(karri: Karri, other_account) -> None:
    """``euca-describe-availability-zones verbose``: the administrator gets each zone, the
    header and a ``free / max cpu ram disk`` line per VM type; other accounts the zones."""
    ec2 = karri.client("ec2")

    def table() -> list[dict]:
        return ec2.describe_availability_zones(ZoneNames=["verbose"])["AvailabilityZones"]

    deadline = time.monotonic() + 120  # the node may still be starting: zeros until then
    while True:
        zones = table()
        small = next(z for z in zones if z["ZoneName"] == "|- m1.small")
        if int(small["State"].split()[2]) > 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert zones[0]["ZoneName"] == "eucalyptus-1a"
    cluster = "arn:euca:eucalyptus:eucalyptus-1a:cluster:eucalyptus-1a-cc/"
    assert zones[0]["State"] == f"127.0.0.1 {cluster}"
    header = ("|- vm types", "free / max   cpu   ram  disk")
    assert (zones[1]["ZoneName"], zones[1]["State"]) == header
    types = {t["InstanceType"] for t in ec2.describe_instance_types()["InstanceTypes"]}
    assert {z["ZoneName"].removeprefix("|- ") for z in zones[2:]} == types
    for zone in zones[2:]:
        free, slash, most, cpu, ram, disk = zone["State"].split()
        assert slash == "/" and len(free) == len(most) == 4
        assert 0 <= int(free) <= int(most) and int(cpu) >= 1 and int(ram) >= 1 and int(disk) >= 1
    assert int(small["State"].split()[2]) > 0  # the node's room, once it started
    assert int(small["State"].split()[0]) > 0

    others = karri.client("ec2", other_account).describe_availability_zones(ZoneNames=["verbose"])
    assert [z["ZoneName"] for z in others["AvailabilityZones"]] == ["eucalyptus-1a"]
