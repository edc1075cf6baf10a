"""Elastic IPs through boto3: every action and its errors, account isolation and the
instance's view of its address (fake node driver); then with real guests (TCG), an
elastic IP moved from one instance to another answers from the second."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Creds, Karri, start_karri
from tests.integration.ec2_wire import error_of, unique
from tests.integration.guests import (
    end_cloud,
    instance,
    key_file,
    open_port,
    ssh,
    tiny_image,
    wait_state,
)


@pytest.fixture(scope="module")
def fake_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("eip") / "data", "--node-driver", "fake")
    try:
        yield karri
    finally:
        end_cloud(karri)


@pytest.fixture(scope="module")
def bob(fake_cloud: Karri) -> Creds:
    return fake_cloud.create_account(unique("bob").lower())


def _run(ec2: Any, image_id: str) -> str:
    run = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t1.micro")
    instance_id = run["Instances"][0]["InstanceId"]
    wait_state(ec2, instance_id, "running")
    return instance_id


def test_allocate_describe_tag_release(fake_cloud: Karri) -> None:
    ec2 = fake_cloud.client("ec2")
    tags = [{"ResourceType": "elastic-ip", "Tags": [{"Key": "role", "Value": "web"}]}]
    made = ec2.allocate_address(Domain="vpc", TagSpecifications=tags)
    assert made["AllocationId"].startswith("eipalloc-") and made["Domain"] == "vpc"
    assert made["PublicIp"].startswith("127.64.")
    assert made["NetworkBorderGroup"] and made["PublicIpv4Pool"]
    standard = ec2.allocate_address(Domain="standard")
    (seen,) = ec2.describe_addresses(AllocationIds=[made["AllocationId"]])["Addresses"]
    assert seen["PublicIp"] == made["PublicIp"] and seen["Tags"] == tags[0]["Tags"]
    assert "AssociationId" not in seen
    by_tag = ec2.describe_addresses(Filters=[{"Name": "tag:role", "Values": ["web"]}])
    assert [a["AllocationId"] for a in by_tag["Addresses"]] == [made["AllocationId"]]
    by_ip = ec2.describe_addresses(PublicIps=[standard["PublicIp"]])["Addresses"]
    assert [a["AllocationId"] for a in by_ip] == [standard["AllocationId"]]
    ec2.create_tags(Resources=[standard["AllocationId"]], Tags=[{"Key": "k", "Value": "v"}])
    described = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["elastic-ip"]}])
    assert {t["ResourceId"] for t in described["Tags"]} == {
        made["AllocationId"],
        standard["AllocationId"],
    }
    attribute = ec2.describe_addresses_attribute(
        AllocationIds=[made["AllocationId"]], Attribute="domain-name"
    )
    assert attribute["Addresses"] == [
        {"AllocationId": made["AllocationId"], "PublicIp": made["PublicIp"]}
    ]
    for allocation in (made, standard):
        ec2.release_address(AllocationId=allocation["AllocationId"])
    assert error_of(ec2.describe_addresses, AllocationIds=[made["AllocationId"]])[0] == (
        "InvalidAllocationID.NotFound"
    )
    assert error_of(ec2.describe_addresses, AllocationIds=["eipalloc-zz"])[0] == (
        "InvalidAllocationID.Malformed"
    )
    assert error_of(ec2.describe_addresses, PublicIps=["127.64.250.250"])[0] == (
        "InvalidAddress.NotFound"
    )
    assert error_of(ec2.allocate_address, Domain="nope")[0] == "InvalidParameterValue"


def test_limit(fake_cloud: Karri, bob: Creds) -> None:
    ec2 = fake_cloud.client("ec2", bob)
    ids = [ec2.allocate_address(Domain="vpc")["AllocationId"] for _ in range(5)]
    assert error_of(ec2.allocate_address, Domain="vpc")[0] == "AddressLimitExceeded"
    for allocation_id in ids:
        ec2.release_address(AllocationId=allocation_id)


def test_associate_move_disassociate(fake_cloud: Karri, bob: Creds) -> None:
    ec2 = fake_cloud.client("ec2")
    image_id = tiny_image(fake_cloud, ec2)
    a, b = _run(ec2, image_id), _run(ec2, image_id)
    auto_a = instance(ec2, a)["PublicIpAddress"]
    eip = ec2.allocate_address(Domain="vpc")
    assert eip["PublicIp"] != auto_a and eip["PublicIp"] != instance(ec2, b)["PublicIpAddress"]
    association = ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=a)
    shown = instance(ec2, a)
    assert shown["PublicIpAddress"] == eip["PublicIp"]
    owner = fake_cloud.admin.account_id
    assert shown["NetworkInterfaces"][0]["Association"]["IpOwnerId"] == owner
    (interface,) = ec2.describe_network_interfaces(
        Filters=[{"Name": "association.allocation-id", "Values": [eip["AllocationId"]]}]
    )["NetworkInterfaces"]
    assert interface["Association"]["AssociationId"] == association["AssociationId"]
    assert interface["Attachment"]["InstanceId"] == a
    assert error_of(ec2.associate_address, AllocationId=eip["AllocationId"], InstanceId=b)[0] == (
        "Resource.AlreadyAssociated"
    )
    assert error_of(ec2.release_address, AllocationId=eip["AllocationId"])[0] == (
        "InvalidIPAddress.InUse"
    )
    moved = ec2.associate_address(
        AllocationId=eip["AllocationId"], InstanceId=b, AllowReassociation=True
    )
    assert instance(ec2, b)["PublicIpAddress"] == eip["PublicIp"]
    assert instance(ec2, a)["PublicIpAddress"] not in (None, eip["PublicIp"])
    (seen,) = ec2.describe_addresses(
        Filters=[{"Name": "instance-id", "Values": [b]}, {"Name": "domain", "Values": ["vpc"]}]
    )["Addresses"]
    assert seen["AssociationId"] == moved["AssociationId"] and seen["InstanceId"] == b
    assert seen["NetworkInterfaceOwnerId"] == owner
    assert seen["PrivateIpAddress"] == instance(ec2, b)["PrivateIpAddress"]

    other = fake_cloud.client("ec2", bob)
    assert error_of(other.describe_addresses, AllocationIds=[eip["AllocationId"]])[0] == (
        "InvalidAllocationID.NotFound"
    )
    assert other.describe_addresses()["Addresses"] == []
    assert (
        error_of(other.associate_address, AllocationId=eip["AllocationId"], InstanceId=b)[0]
        == "InvalidAllocationID.NotFound"
    )
    assert error_of(other.disassociate_address, AssociationId=moved["AssociationId"])[0] == (
        "InvalidAssociationID.NotFound"
    )
    assert error_of(other.release_address, AllocationId=eip["AllocationId"])[0] == (
        "InvalidAllocationID.NotFound"
    )
    theirs = other.allocate_address(Domain="vpc")
    assert (
        error_of(other.associate_address, AllocationId=theirs["AllocationId"], InstanceId=a)[0]
        == "InvalidInstanceID.NotFound"
    )
    other.release_address(AllocationId=theirs["AllocationId"])
    assert error_of(ec2.associate_address, AllocationId=eip["AllocationId"])[0] == (
        "MissingParameter"
    )
    assert (
        error_of(ec2.associate_address, AllocationId=eip["AllocationId"], InstanceId="i-x")[0]
        == "InvalidInstanceID.Malformed"
    )

    ec2.disassociate_address(AssociationId=moved["AssociationId"])
    ec2.disassociate_address(AssociationId=moved["AssociationId"])  # idempotent, as on AWS
    assert instance(ec2, b)["PublicIpAddress"] not in (None, eip["PublicIp"])
    ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=a)
    ec2.terminate_instances(InstanceIds=[a, b])
    wait_state(ec2, a, "terminated")
    (after,) = ec2.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"]
    assert "AssociationId" not in after  # terminated: the account keeps the address
    ec2.release_address(AllocationId=eip["AllocationId"])


def test_aws_cli(fake_cloud: Karri) -> None:
    made = fake_cloud.aws("ec2", "allocate-address", "--domain", "vpc")
    (seen,) = fake_cloud.aws(
        "ec2", "describe-addresses", "--filters", f"Name=public-ip,Values={made['PublicIp']}"
    )["Addresses"]
    assert seen["AllocationId"] == made["AllocationId"]
    fake_cloud.aws("ec2", "release-address", "--allocation-id", made["AllocationId"])


METADATA = "wget -qO- http://169.254.169.254/latest/meta-data/"
guests = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")


@guests
def test_an_elastic_ip_moved_answers_from_the_new_instance(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.mktemp("eip-guests")
    karri = start_karri(base / "data", "--stop-instances-on-exit")
    try:
        ec2 = karri.client("ec2")
        image_id = tiny_image(karri, ec2)
        key = key_file(ec2, base, "eip")
        open_port(ec2, 22)
        run = ec2.run_instances(
            ImageId=image_id, MinCount=2, MaxCount=2, InstanceType="t1.micro", KeyName="eip"
        )
        a, b = (i["InstanceId"] for i in run["Instances"])
        for instance_id in (a, b):
            wait_state(ec2, instance_id, "running")
        eip = ec2.allocate_address(Domain="vpc")
        ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=a)
        assert instance(ec2, a)["PublicIpAddress"] == eip["PublicIp"]
        assert a in ssh(key, eip["PublicIp"], METADATA + "instance-id", timeout=600)
        ec2.associate_address(
            AllocationId=eip["AllocationId"], InstanceId=b, AllowReassociation=True
        )
        assert b in ssh(key, eip["PublicIp"], METADATA + "instance-id")
        public_ipv4 = ssh(key, eip["PublicIp"], METADATA + "public-ipv4")
        assert public_ipv4.strip() == eip["PublicIp"]
        new_a = instance(ec2, a)["PublicIpAddress"]
        assert new_a and new_a != eip["PublicIp"]
        assert a in ssh(key, new_a, METADATA + "instance-id")
    finally:
        end_cloud(karri, wait=True)
