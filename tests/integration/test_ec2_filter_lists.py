"""The filters the EC2 API reference lists for DescribeInstances, DescribeImages,
DescribeVolumes, DescribeSnapshots and DescribeKeyPairs: every name is accepted (read from
botocore's model, the reference's text), and each family matches what Describe reports.
Instances run on the fake node driver: the filters need no guest."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore
import pytest

from tests.conftest import Karri, start_karri, stop_karri
from tests.integration.ebs import error_code, new_volume, wait_snapshot, wait_until
from tests.integration.guests import tiny_image, wait_state

# DescribeImages' list nests the severity levels of scan-result.highest-finding-severity-label
SEVERITIES = {"informational", "low", "medium", "high", "critical"}


def documented(operation: str) -> list[str]:
    """The filter names of the operation's ``Filters`` documentation."""
    models = Path(botocore.__file__).parent / "data" / "ec2"
    path = max(models.glob("*/service-2.json.gz"))
    model = json.loads(gzip.decompress(path.read_bytes()))
    shape = model["operations"][operation]["input"]["shape"]
    doc = model["shapes"][shape]["members"]["Filters"]["documentation"]
    names = re.findall(r"<li>\s*<p>\s*<code>([^<]+)</code>", doc)
    # ``tag:<key>`` (DescribeKeyPairs writes ``<code>tag</code>:<key>``)
    names = ["tag:k" if n in ("tag", "tag:&lt;key&gt;") else n for n in names]
    return [n for n in names if n not in SEVERITIES]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("filter-lists") / "data", "--node-driver", "fake")
    try:
        yield karri
    finally:
        stop_karri(karri)


CALLS = {
    "DescribeInstances": ("describe_instances", "Reservations"),
    "DescribeImages": ("describe_images", "Images"),
    "DescribeVolumes": ("describe_volumes", "Volumes"),
    "DescribeSnapshots": ("describe_snapshots", "Snapshots"),
    "DescribeKeyPairs": ("describe_key_pairs", "KeyPairs"),
}


@pytest.mark.parametrize("operation", sorted(CALLS))
def test_every_documented_filter_is_accepted(cloud: Karri, operation: str) -> None:
    method, key = CALLS[operation]
    ec2 = cloud.client("ec2")
    names = documented(operation)
    assert len(names) > 3
    refused = []
    for name in names:
        try:
            answer = getattr(ec2, method)(Filters=[{"Name": name, "Values": ["no-such-value"]}])
        except ec2.exceptions.ClientError as error:
            refused.append((name, error.response["Error"]["Code"]))
            continue
        assert answer[key] == [], name
    assert refused == []
    assert error_code(getattr(ec2, method), Filters=[{"Name": "no-such", "Values": ["x"]}]) == (
        "InvalidParameterValue"
    )


def ids(ec2: Any, *filters: tuple[str, str]) -> list[str]:
    reservations = ec2.describe_instances(Filters=[{"Name": n, "Values": [v]} for n, v in filters])[
        "Reservations"
    ]
    return [i["InstanceId"] for r in reservations for i in r["Instances"]]


def test_instance_filter_families(cloud: Karri) -> None:
    ec2 = cloud.client("ec2")
    run = ec2.run_instances(
        ImageId=tiny_image(cloud, ec2), MinCount=1, MaxCount=1, ClientToken="filters-1"
    )["Instances"][0]
    instance_id = run["InstanceId"]
    seen = wait_state(ec2, instance_id, "running")
    volume_id = new_volume(ec2)
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    wait_until(
        lambda: (
            ids(
                ec2,
                ("block-device-mapping.volume-id", volume_id),
                ("block-device-mapping.status", "attached"),
            )
            == [instance_id]
        )
    )
    eni = seen["NetworkInterfaces"][0]
    ec2.create_tags(Resources=[eni["NetworkInterfaceId"]], Tags=[{"Key": "role", "Value": "w"}])
    zone_id = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneId"]
    group = seen["SecurityGroups"][0]
    matching = [
        ("block-device-mapping.device-name", "/dev/sdf"),
        ("block-device-mapping.delete-on-termination", "false"),
        ("block-device-mapping.attach-time", "*"),
        ("network-interface.network-interface-id", eni["NetworkInterfaceId"]),
        ("network-interface.private-dns-name", eni["PrivateDnsName"]),
        ("network-interface.addresses.private-dns-name", eni["PrivateDnsName"]),
        ("network-interface.tag-key", "role"),
        ("network-interface.tag-value", "w"),
        ("network-interface.association.public-ip", seen["PublicIpAddress"]),
        ("network-interface.association.public-dns-name", seen["PublicDnsName"]),
        ("network-interface.addresses.association.ip-owner-id", "amazon"),
        ("network-interface.ipv6-native", "false"),
        ("instance.group-id", group["GroupId"]),
        ("instance.group-name", group["GroupName"]),
        ("availability-zone-id", zone_id),
        ("client-token", "filters-1"),
        ("metadata-options.http-tokens", seen["MetadataOptions"]["HttpTokens"]),
        ("metadata-options.http-endpoint", "enabled"),
        ("metadata-options.http-put-response-hop-limit", "1"),
        ("hibernation-options.configured", "false"),
        ("boot-mode", seen["BootMode"]),
        ("platform-details", seen["PlatformDetails"]),
        ("usage-operation", seen["UsageOperation"]),
        ("private-dns-name-options.hostname-type", "ip-name"),
        ("source-dest-check", "true"),
        ("tenancy", "default"),
    ]
    for name, value in matching:
        assert ids(ec2, (name, value), ("instance-id", instance_id)) == [instance_id], name
    for name, value in [
        ("block-device-mapping.device-name", "/dev/sdz"),
        ("network-interface.tag-key", "other"),
        ("client-token", "filters-2"),
        ("placement-group-name", "*"),
        ("iam-instance-profile.arn", "*"),
        ("network-interface.association.allocation-id", "*"),  # not an elastic IP
        ("metadata-options.http-tokens", "required"),
    ]:
        assert ids(ec2, (name, value), ("instance-id", instance_id)) == [], name

    allocation = ec2.allocate_address(Domain="vpc")
    association = ec2.associate_address(
        AllocationId=allocation["AllocationId"], InstanceId=instance_id
    )["AssociationId"]
    for name, value in [
        ("network-interface.association.allocation-id", allocation["AllocationId"]),
        ("network-interface.addresses.association.association-id", association),
        ("network-interface.association.ip-owner-id", eni["OwnerId"]),
    ]:
        assert ids(ec2, (name, value)) == [instance_id], name
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated")
    assert ids(ec2, ("block-device-mapping.volume-id", volume_id)) == []


def test_volume_snapshot_and_image_filters(cloud: Karri) -> None:
    ec2 = cloud.client("ec2")
    volume_id = new_volume(ec2)
    zone_id = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneId"]

    def volumes(name: str, value: str) -> list[str]:
        found = ec2.describe_volumes(
            VolumeIds=[volume_id], Filters=[{"Name": name, "Values": [value]}]
        )
        return [v["VolumeId"] for v in found["Volumes"]]

    assert volumes("availability-zone-id", zone_id) == [volume_id]
    assert volumes("availability-zone-id", "other-az1") == []
    assert volumes("operator.managed", "false") == [volume_id]

    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    wait_snapshot(ec2, snapshot_id)
    found = ec2.describe_snapshots(
        SnapshotIds=[snapshot_id], Filters=[{"Name": "transfer-type", "Values": ["standard"]}]
    )
    assert [s["SnapshotId"] for s in found["Snapshots"]] == [snapshot_id]

    image_id = ec2.register_image(
        Name="filters-ebs",
        RootDeviceName="/dev/sda1",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snapshot_id}}],
    )["ImageId"]

    def images(name: str, value: str) -> list[str]:
        found = ec2.describe_images(
            ImageIds=[image_id], Filters=[{"Name": name, "Values": [value]}]
        )
        return [i["ImageId"] for i in found["Images"]]

    assert images("block-device-mapping.encrypted", "false") == [image_id]
    assert images("block-device-mapping.encrypted", "true") == []
    assert images("source-instance-id", "*") == []
    ec2.deregister_image(ImageId=image_id)
