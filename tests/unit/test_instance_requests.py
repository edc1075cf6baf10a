"""RunInstances and ModifyInstanceAttribute, as parsed, into the instances service's
request values: the wire's names stop here."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from karri.api.ec2.actions.instance_requests import attribute_request, run_request
from karri.cloud.instances.requests import (
    AttributeChange,
    DeviceChange,
    LaunchOptions,
    MetadataOptions,
    NetworkInterfaceSpec,
    RunRequest,
)
from karri.cloud.volumes.mappings import BlockDeviceMapping, EbsDevice
from karri.errors import CloudError


def test_the_fingerprint_is_the_whole_request_but_its_token() -> None:
    base = {"ImageId": "emi-00000001", "MinCount": 1, "MaxCount": 1, "ClientToken": "a"}
    same = run_request(base).fingerprint
    assert run_request({**base, "ClientToken": "b"}).fingerprint == same
    # a member karri ignores still makes it another request, as on AWS
    assert run_request({**base, "EbsOptimized": True}).fingerprint != same


def test_run_request_reads_the_members_karri_uses() -> None:
    request = run_request(
        {
            "ImageId": "emi-00000001",
            "MinCount": 1,
            "MaxCount": 2,
            "InstanceType": "t1.micro",
            "Placement": {"AvailabilityZone": "zone-a", "Tenancy": "default"},
            "SecurityGroups": ["default"],
            "UserData": "IyEvYmluL3No",
            "DisableApiTermination": True,
            "NetworkInterfaces": [{"DeviceIndex": 0, "PrivateIpAddress": "172.31.0.20"}],
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]},
                {"ResourceType": "volume", "Tags": [{"Key": "disk", "Value": "yes"}]},
            ],
            "BlockDeviceMappings": [{"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 1}}],
            "MetadataOptions": {"HttpTokens": "required"},
            "CpuOptions": {"CoreCount": 2},
            "ClientToken": "t",
        }
    )
    assert request.fingerprint
    assert dataclasses.replace(request, fingerprint="") == RunRequest(
        "emi-00000001",
        1,
        2,
        instance_type="t1.micro",
        zone="zone-a",
        user_data="IyEvYmluL3No",
        security_groups=("default",),
        disable_api_termination=True,
        network_interfaces=(NetworkInterfaceSpec(private_ip="172.31.0.20", device_index=0),),
        instance_tags={"Name": "web"},
        volume_tags={"disk": "yes"},
        block_device_mappings=(BlockDeviceMapping("/dev/sdb", ebs=EbsDevice(volume_size=1)),),
        client_token="t",
        options=LaunchOptions(metadata=MetadataOptions(http_tokens="required"), core_count=2),
    )


def test_run_request_refuses_tags_for_another_resource() -> None:
    with pytest.raises(CloudError) as refused:
        run_request(
            {
                "MinCount": 1,
                "MaxCount": 1,
                "TagSpecifications": [
                    {"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}
                ],
            }
        )
    assert refused.value.code == "InvalidParameterValue"


def test_attribute_request_reads_both_spellings() -> None:
    assert attribute_request({"InstanceType": {"Value": "m1.large"}}).changes == (
        AttributeChange("instanceType", "m1.large"),
    )
    by_name = attribute_request(
        {"Attribute": "userData", "Value": base64.b64encode(b"#!/bin/sh").decode()}
    )
    assert by_name.changes == (AttributeChange("userData", b"#!/bin/sh"),)
    devices = attribute_request(
        {
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/sda1", "Ebs": {"DeleteOnTermination": False}}
            ]
        }
    )
    assert (devices.changes, devices.devices) == ((), (DeviceChange("/dev/sda1", False),))


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Attribute": "groupSet", "Value": "x"}, "InvalidParameterValue"),
        ({"Attribute": "kernel"}, "MissingParameter"),
        ({"Attribute": "userData", "Value": "not base64!"}, "InvalidParameterValue"),
    ],
)
def test_attribute_request_refuses(params: dict[str, str], code: str) -> None:
    with pytest.raises(CloudError) as refused:
        attribute_request(params)
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "No attributes specified."),
        ({"Groups": []}, "No attributes specified."),  # what Ansible sends, answered as AWS
        (
            {"InstanceType": {"Value": "m1.small"}, "UserData": {"Value": b"x"}},
            "Fields for multiple attribute types specified: instanceType, userData",
        ),
        (
            {"Attribute": "kernel", "Value": "eki-1", "DisableApiStop": {"Value": True}},
            "Fields for multiple attribute types specified: disableApiStop, kernel",
        ),
    ],
)
def test_one_attribute_per_modify(params: dict, message: str) -> None:
    with pytest.raises(CloudError) as caught:
        attribute_request({"InstanceId": "i-00000001", **params})
    assert (caught.value.code, caught.value.message) == ("InvalidParameterCombination", message)


def test_attributes_karri_has_nothing_behind_are_refused() -> None:
    with pytest.raises(CloudError) as caught:
        attribute_request({"InstanceId": "i-00000001", "EnaSupport": {"Value": True}})
    assert caught.value.code == "UnsupportedOperation"
