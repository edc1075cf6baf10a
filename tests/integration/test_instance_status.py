"""DescribeInstanceStatus from evidence, through boto3 against a real `karri up` (issue 13).

Two real guests: one whose user-data panics its kernel, one that boots and stays up. The
status each test waits for is what the node observed, never what karri asked for.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Karri, start_karri
from tests.integration.ec2_wire import error_of
from tests.integration.guests import console, end_cloud, tiny_image, wait_console, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")

PANIC = "#!/bin/sh\n(sleep 2; echo c > /proc/sysrq-trigger) </dev/null >/dev/null 2>&1 &\n"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    karri = start_karri(tmp_path_factory.mktemp("status") / "data")
    ec2 = karri.client("ec2")
    image_id = tiny_image(karri, ec2)
    state: dict[str, Any] = {"karri": karri, "ec2": ec2}
    try:
        state["healthy"] = ec2.run_instances(
            ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t1.micro"
        )["Instances"][0]["InstanceId"]
        state["first"] = _status(ec2, state["healthy"], include_all=True)
        state["panics"] = ec2.run_instances(
            ImageId=image_id,
            MinCount=1,
            MaxCount=1,
            InstanceType="t1.micro",
            UserData=PANIC,
        )["Instances"][0]["InstanceId"]
        yield state
    finally:
        end_cloud(karri)


def _status(ec2: Any, instance_id: str, include_all: bool = False) -> dict[str, Any] | None:
    statuses = ec2.describe_instance_status(
        InstanceIds=[instance_id], IncludeAllInstances=include_all
    )["InstanceStatuses"]
    return statuses[0] if statuses else None


def _wait_status(ec2: Any, instance_id: str, check: str, status: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = _status(ec2, instance_id)
        return found if found and found[check]["Status"] == status else None

    return wait_for(f"{instance_id}'s {check} {status}", reached)


def test_a_new_instance_is_initializing_then_ok(cloud: dict[str, Any]) -> None:
    ec2, instance_id = cloud["ec2"], cloud["healthy"]
    first = cloud["first"]  # read right after RunInstances: no guest has spoken yet
    assert first["InstanceStatus"]["Status"] in ("not-applicable", "initializing")
    ok = _wait_status(ec2, instance_id, "InstanceStatus", "ok")
    assert ok["InstanceStatus"]["Details"] == [{"Name": "reachability", "Status": "passed"}]
    assert ok["SystemStatus"] == {
        "Status": "ok",
        "Details": [{"Name": "reachability", "Status": "passed"}],
    }
    assert ok["InstanceState"] == {"Code": 16, "Name": "running"}
    assert ok["Events"] == []


def test_a_panicked_guest_is_impaired_and_a_reboot_recovers_it(cloud: dict[str, Any]) -> None:
    ec2, instance_id = cloud["ec2"], cloud["panics"]
    impaired = _wait_status(ec2, instance_id, "InstanceStatus", "impaired")
    (detail,) = impaired["InstanceStatus"]["Details"]
    assert detail["Name"] == "reachability" and detail["Status"] == "failed"
    assert detail["ImpairedSince"]
    assert impaired["SystemStatus"]["Status"] == "ok"  # the host is fine; the guest is not
    assert impaired["InstanceState"]["Name"] == "running"  # left as AWS leaves it
    assert "Kernel panic" in console(ec2, instance_id)
    # the filters see it too
    by_filter = ec2.describe_instance_status(
        Filters=[
            {"Name": "instance-status.status", "Values": ["impaired"]},
            {"Name": "instance-status.reachability", "Values": ["failed"]},
            {"Name": "system-status.status", "Values": ["ok"]},
        ]
    )["InstanceStatuses"]
    assert [s["InstanceId"] for s in by_filter] == [instance_id]
    ec2.reboot_instances(InstanceIds=[instance_id])
    wait_console(ec2, instance_id, f"karri-tiny: instance {instance_id} boot 2")
    _wait_status(ec2, instance_id, "InstanceStatus", "ok")


def test_status_filters_and_bad_input(cloud: dict[str, Any]) -> None:
    ec2, healthy = cloud["ec2"], cloud["healthy"]
    _wait_status(ec2, healthy, "InstanceStatus", "ok")
    ok = ec2.describe_instance_status(
        Filters=[{"Name": "system-status.reachability", "Values": ["passed"]}]
    )["InstanceStatuses"]
    assert healthy in {s["InstanceId"] for s in ok}
    none = ec2.describe_instance_status(Filters=[{"Name": "event.code", "Values": ["*"]}])
    assert none["InstanceStatuses"] == []
    describe = ec2.describe_instance_status
    assert error_of(describe, InstanceIds=["i-nothex!"]) == ("InvalidInstanceID.Malformed", 400)
    assert error_of(describe, InstanceIds=["i-0123abcd"]) == ("InvalidInstanceID.NotFound", 400)
    assert error_of(describe, Filters=[{"Name": "tag:Name", "Values": ["x"]}])[0] == (
        "InvalidParameterValue"
    )
    assert error_of(describe, InstanceIds=[healthy], MaxResults=5)[0] == (
        "InvalidParameterCombination"
    )
    assert error_of(describe, MaxResults=4)[0] == "InvalidParameterValue"
    assert error_of(describe, NextToken="not-a-token")[0] == "InvalidPaginationToken"
    assert error_of(ec2.reboot_instances, InstanceIds=["i-nothex!"])[0] == (
        "InvalidInstanceID.Malformed"
    )


def test_another_account_sees_no_status(cloud: dict[str, Any]) -> None:
    karri: Karri = cloud["karri"]
    other = karri.client("ec2", karri.create_account("status-intruder"))
    assert other.describe_instance_status(IncludeAllInstances=True)["InstanceStatuses"] == []
    assert error_of(other.describe_instance_status, InstanceIds=[cloud["healthy"]]) == (
        "InvalidInstanceID.NotFound",
        400,
    )
