"""DescribeInstances without ids or filters answers from each instance's XML kept by its
version (``api/ec2/instance_fragments.py``): its answer is the same, byte for byte but the
request id, as the full path's (InstanceIds naming them all, or a filter every instance
passes, with MaxResults), across a cloud of several reservations with tags, several
interfaces and secondary addresses, an elastic IP, a volume, an instance profile, a
stopped instance and a VPC without DNS hostnames, and after each change of those."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Karri, start_karri
from tests.integration.ec2_wire import unique
from tests.integration.guests import available_image, end_cloud, tiny_image, wait_state
from tests.integration.test_instance_profiles import profile_with_role

REQUEST_ID = re.compile(rb"<requestId>[^<]*</requestId>")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("kept") / "data", "--node-driver", "fake")
    try:
        yield karri
    finally:
        end_cloud(karri)


class Answers:
    """The raw bodies of an EC2 client's DescribeInstances answers."""

    def __init__(self, ec2: Any) -> None:
        self.ec2, self.bodies = ec2, []
        ec2.meta.events.register("after-call.ec2.DescribeInstances", self._keep)

    def _keep(self, http_response: Any, **_: Any) -> None:
        self.bodies.append(REQUEST_ID.sub(b"", http_response.content))

    def body(self, **params: Any) -> tuple[bytes, dict[str, Any]]:
        parsed = self.ec2.describe_instances(**params)
        parsed.pop("ResponseMetadata")
        return self.bodies[-1], parsed

    def all_ids(self) -> list[str]:
        found = self.ec2.describe_instances(InstanceIds=[], Filters=[])["Reservations"]
        return [i["InstanceId"] for r in found for i in r["Instances"]]


def assert_same(answers: Answers, account_id: str) -> dict[str, Any]:
    """The kept answer is the full path's, unpaginated and in pages of 5 (retried while
    the cloud moves, as the reconciler settles an attachment: a stale kept answer would
    stay stale)."""
    for _attempt in range(40):
        kept, parsed = answers.body()
        full, _ = answers.body(InstanceIds=answers.all_ids())
        pages_kept, pages_full = walk(answers, {}), walk(answers, owner_filter(account_id))
        if kept == full and pages_kept == pages_full:
            return parsed
        time.sleep(0.5)
    assert kept == full
    assert pages_kept == pages_full
    return parsed


def owner_filter(account_id: str) -> dict[str, Any]:
    return {"Filters": [{"Name": "owner-id", "Values": [account_id]}]}


def walk(answers: Answers, params: dict[str, Any]) -> list[bytes]:
    pages, token = [], None
    while True:
        more = {"NextToken": token} if token else {}
        body, parsed = answers.body(MaxResults=5, **params, **more)
        pages.append(body)
        token = parsed.get("NextToken")
        if not token:
            return pages


def instances(parsed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["InstanceId"]: i for r in parsed["Reservations"] for i in r["Instances"]}


def test_the_kept_answer_is_the_full_one_through_every_change(cloud: Karri) -> None:
    creds = cloud.create_account(unique("kept").lower())
    account_id = creds.account_id
    ec2 = cloud.client("ec2", creds)
    answers = Answers(ec2)
    assert answers.body()[1]["Reservations"] == []
    image_id = tiny_image(cloud, ec2)
    subnet = ec2.describe_subnets()["Subnets"][0]
    tagged = ec2.run_instances(
        ImageId=image_id,
        MinCount=4,
        MaxCount=4,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "a"}]}],
    )["Instances"]
    (multi,) = ec2.run_instances(
        ImageId=image_id,
        MinCount=1,
        MaxCount=1,
        NetworkInterfaces=[
            {"DeviceIndex": 0, "SubnetId": subnet["SubnetId"], "SecondaryPrivateIpAddressCount": 1},
            {"DeviceIndex": 1, "SubnetId": subnet["SubnetId"], "Description": "second"},
        ],
    )["Instances"]
    ebs_image = available_image(ec2, "karri-tiny-ebs", 900)["ImageId"]
    more = ec2.run_instances(ImageId=ebs_image, MinCount=3, MaxCount=3)["Instances"]
    ids = [i["InstanceId"] for i in (*tagged, multi, *more)]
    for instance_id in ids:
        wait_state(ec2, instance_id, "running")
    assert len(instances(assert_same(answers, account_id))) == 8
    first, stopped, multi_id = tagged[0]["InstanceId"], more[0]["InstanceId"], multi["InstanceId"]

    ec2.create_tags(Resources=[first], Tags=[{"Key": "role", "Value": "web"}])
    seen = instances(assert_same(answers, account_id))[first]
    assert {"Key": "role", "Value": "web"} in seen["Tags"]

    allocation = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=allocation["AllocationId"], InstanceId=first)
    seen = instances(assert_same(answers, account_id))[first]
    assert seen["PublicIpAddress"] == allocation["PublicIp"]

    volume = ec2.create_volume(AvailabilityZone=subnet["AvailabilityZone"], Size=1)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume])
    ec2.attach_volume(VolumeId=volume, InstanceId=first, Device="/dev/sdf")
    seen = instances(assert_same(answers, account_id))[first]
    assert volume in [m["Ebs"]["VolumeId"] for m in seen["BlockDeviceMappings"]]

    extra = ec2.create_network_interface(SubnetId=subnet["SubnetId"])["NetworkInterface"]
    ec2.attach_network_interface(
        NetworkInterfaceId=extra["NetworkInterfaceId"], InstanceId=first, DeviceIndex=1
    )
    ec2.assign_private_ip_addresses(
        NetworkInterfaceId=extra["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=1
    )
    seen = instances(assert_same(answers, account_id))[first]
    assert len(seen["NetworkInterfaces"]) == 2

    profile = profile_with_role(cloud, creds)
    ec2.associate_iam_instance_profile(
        InstanceId=multi_id, IamInstanceProfile={"Arn": profile["Arn"]}
    )
    seen = instances(assert_same(answers, account_id))[multi_id]
    assert seen["IamInstanceProfile"]["Arn"] == profile["Arn"]

    ec2.stop_instances(InstanceIds=[stopped])
    wait_state(ec2, stopped, "stopped")
    assert instances(assert_same(answers, account_id))[stopped]["State"]["Name"] == "stopped"

    names = {i: seen["PublicDnsName"] for i, seen in instances(answers.body()[1]).items()}
    ec2.modify_vpc_attribute(VpcId=subnet["VpcId"], EnableDnsHostnames={"Value": False})
    after = instances(assert_same(answers, account_id))
    assert any(names.values()) and not any(s["PublicDnsName"] for s in after.values())

    ec2.terminate_instances(InstanceIds=[more[1]["InstanceId"]])
    wait_state(ec2, more[1]["InstanceId"], "terminated")
    after = instances(assert_same(answers, account_id))
    assert after[more[1]["InstanceId"]]["State"]["Name"] == "terminated"
