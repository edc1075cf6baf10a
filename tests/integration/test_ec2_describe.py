"""DescribeAccountAttributes, regions and zones, instance types and their offerings."""

from __future__ import annotations

from tests.conftest import Karri
from tests.integration.ec2_wire import error_of

# The Eucalyptus VM types the issue names.
EUCALYPTUS_TYPES = (
    "t1.micro",
    "m1.small",
    "m1.medium",
    "c1.medium",
    "m1.large",
    "m1.xlarge",
    "c1.xlarge",
)


def test_account_attributes(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    attributes = {
        a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
        for a in ec2.describe_account_attributes()["AccountAttributes"]
    }
    assert attributes["supported-platforms"] == ["VPC"]  # AWS retired EC2-Classic
    assert attributes["default-vpc"][0].startswith("vpc-")
    one = ec2.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"]
    assert [a["AttributeName"] for a in one] == ["default-vpc"]
    assert error_of(ec2.describe_account_attributes, AttributeNames=["nonsense"]) == (
        "InvalidParameterValue",
        400,
    )


def test_regions(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    (region,) = ec2.describe_regions()["Regions"]
    assert region["RegionName"] == "eucalyptus" and region["Endpoint"] == karri.ec2_url
    assert ec2.describe_regions(RegionNames=["eucalyptus"])["Regions"] == [region]
    assert ec2.describe_regions(AllRegions=True)["Regions"] == [region]
    found = ec2.describe_regions(Filters=[{"Name": "region-name", "Values": ["euca*"]}])
    assert found["Regions"] == [region]
    none = ec2.describe_regions(Filters=[{"Name": "endpoint", "Values": ["*amazonaws*"]}])
    assert none["Regions"] == []
    assert error_of(ec2.describe_regions, RegionNames=["us-east-1"]) == (
        "InvalidParameterValue",
        400,
    )


def test_availability_zones(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    (zone,) = ec2.describe_availability_zones()["AvailabilityZones"]
    assert zone["ZoneName"] == "eucalyptus-1a"
    assert zone["RegionName"] == "eucalyptus" and zone["State"] == "available"
    assert zone["ZoneType"] == "availability-zone" and zone["ZoneId"]
    by_name = ec2.describe_availability_zones(ZoneNames=["eucalyptus-1a"])["AvailabilityZones"]
    by_id = ec2.describe_availability_zones(ZoneIds=[zone["ZoneId"]])["AvailabilityZones"]
    assert by_name == by_id == [zone]
    filtered = ec2.describe_availability_zones(
        Filters=[
            {"Name": "state", "Values": ["available"]},
            {"Name": "zone-name", "Values": ["*-1a"]},
        ]
    )
    assert filtered["AvailabilityZones"] == [zone]
    assert error_of(ec2.describe_availability_zones, ZoneNames=["us-east-1a"]) == (
        "InvalidParameterValue",
        400,
    )


def test_instance_types(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    types = {t["InstanceType"]: t for t in ec2.describe_instance_types()["InstanceTypes"]}
    for name in EUCALYPTUS_TYPES:
        info = types[name]
        assert info["VCpuInfo"]["DefaultVCpus"] >= 1
        assert info["MemoryInfo"]["SizeInMiB"] >= 256
        assert info["InstanceStorageInfo"]["TotalSizeInGB"] >= 1
        assert info["ProcessorInfo"]["SupportedArchitectures"] == ["x86_64"]
    asked = ec2.describe_instance_types(InstanceTypes=["m1.small", "c1.medium"])["InstanceTypes"]
    assert sorted(t["InstanceType"] for t in asked) == ["c1.medium", "m1.small"]
    two_cpus = ec2.describe_instance_types(
        Filters=[{"Name": "vcpu-info.default-vcpus", "Values": ["2"]}]
    )["InstanceTypes"]
    assert two_cpus and all(t["VCpuInfo"]["DefaultVCpus"] == 2 for t in two_cpus)
    assert error_of(ec2.describe_instance_types, InstanceTypes=["m9.huge"]) == (
        "InvalidInstanceType",
        400,
    )


def test_instance_type_offerings(karri: Karri) -> None:
    ec2 = karri.client("ec2")
    names = {t["InstanceType"] for t in ec2.describe_instance_types()["InstanceTypes"]}
    region = ec2.describe_instance_type_offerings()["InstanceTypeOfferings"]
    assert {o["InstanceType"] for o in region} == names
    assert {(o["LocationType"], o["Location"]) for o in region} == {("region", "eucalyptus")}
    zone = ec2.describe_instance_type_offerings(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": ["m1.*"]}],
    )["InstanceTypeOfferings"]
    assert zone and {o["Location"] for o in zone} == {"eucalyptus-1a"}
    assert all(o["InstanceType"].startswith("m1.") for o in zone)
    by_id = ec2.describe_instance_type_offerings(LocationType="availability-zone-id")
    assert {o["LocationType"] for o in by_id["InstanceTypeOfferings"]} == {"availability-zone-id"}
    assert error_of(ec2.describe_instance_type_offerings, LocationType="outpost") == (
        "InvalidParameterValue",
        400,
    )


def test_describe_calls_with_the_aws_cli(karri: Karri) -> None:
    zones = karri.aws("ec2", "describe-availability-zones")["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == ["eucalyptus-1a"]
    types = karri.aws(
        "ec2",
        "describe-instance-types",
        "--instance-types",
        "m1.small",
        "--query",
        "InstanceTypes[].[InstanceType,VCpuInfo.DefaultVCpus,MemoryInfo.SizeInMiB]",
    )
    assert types[0][0] == "m1.small" and types[0][1] >= 1 and types[0][2] >= 1
