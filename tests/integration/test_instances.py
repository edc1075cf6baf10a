"""Real QEMU guests of the default image, driven through the EC2 API (issue 5).

The tests share one cloud and one reservation of three guests, and run in order: what a
guest did earlier (a boot, a reboot) is what later tests look for.
"""

from __future__ import annotations

import base64
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Karri, start_karri
from tests.integration.ec2_wire import error_of, race, v4_post
from tests.integration.guests import (
    alive,
    console,
    end_cloud,
    instance,
    key_file,
    open_port,
    qemu_pid,
    ssh,
    tiny_image,
    wait_console,
    wait_state,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")

USER_DATA = """#!/bin/sh
id=$(wget -qO- http://169.254.169.254/latest/meta-data/instance-id)
echo "USERDATA-MARKER $id"
"""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("instances")
    karri = start_karri(base / "data", "--stop-instances-on-exit")
    state: dict[str, Any] = {"karri": karri, "base": base}
    try:
        yield state
    finally:
        end_cloud(state["karri"], wait=True)


@pytest.fixture(scope="module")
def launched(cloud: dict[str, Any]) -> dict[str, Any]:
    """Three guests from one RunInstances call, booted, with a key pair."""
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    image_id = tiny_image(karri, ec2)
    key = key_file(ec2, cloud["base"], "guests")
    open_port(ec2, 22)  # ssh from the host
    reservation = ec2.run_instances(
        ImageId=image_id,
        MinCount=3,
        MaxCount=3,
        InstanceType="t1.micro",
        KeyName="guests",
        UserData=USER_DATA,
    )
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    cloud.update(reservation=reservation, ids=ids, key=key, image_id=image_id)
    return cloud


def test_one_reservation_three_instances_all_boot(launched: dict[str, Any]) -> None:
    karri: Karri = launched["karri"]
    ec2 = karri.client("ec2")
    reservation = launched["reservation"]
    assert reservation["ReservationId"].startswith("r-")
    assert [i["AmiLaunchIndex"] for i in reservation["Instances"]] == [0, 1, 2]
    assert len(set(launched["ids"])) == 3
    described = ec2.describe_instances(
        Filters=[{"Name": "reservation-id", "Values": [reservation["ReservationId"]]}]
    )["Reservations"]
    assert len(described) == 1 and len(described[0]["Instances"]) == 3
    for instance_id in launched["ids"]:
        running = wait_state(ec2, instance_id, "running")
        assert running["PrivateIpAddress"].startswith("172.31.")
        assert running["PublicIpAddress"].startswith("127.64.")
    for instance_id in launched["ids"]:
        text = wait_console(ec2, instance_id, "karri-tiny: boot complete")
        assert f"karri-tiny: instance {instance_id} boot 1" in text
        assert f"USERDATA-MARKER {instance_id}" in text


def test_guests_reach_each_other_and_only_their_own_metadata(launched: dict[str, Any]) -> None:
    ec2 = launched["karri"].client("ec2")
    first, second = (instance(ec2, i) for i in launched["ids"][:2])
    out = ssh(launched["key"], first["PublicIpAddress"], f"ping -c 2 {second['PrivateIpAddress']}")
    assert "2 packets received" in out
    seen = ssh(
        launched["key"],
        first["PublicIpAddress"],
        "wget -qO- http://169.254.169.254/latest/meta-data/instance-id; echo;"
        "wget -qO- http://169.254.169.254/latest/user-data | head -1",
    )
    assert seen.split()[0] == first["InstanceId"]
    assert second["InstanceId"] not in seen


def test_an_instance_gets_the_private_address_it_asks_for(launched: dict[str, Any]) -> None:
    ec2 = launched["karri"].client("ec2")
    first = instance(ec2, launched["ids"][0])
    taken = first["PrivateIpAddress"]
    run = {"ImageId": launched["image_id"], "MinCount": 1, "MaxCount": 1, "KeyName": "guests"}
    assert error_of(ec2.run_instances, **run, PrivateIpAddress=taken) == (
        "InvalidIPAddress.InUse",
        400,
    )
    chosen = taken.rsplit(".", 1)[0] + ".200"
    instance_id = ec2.run_instances(**run, PrivateIpAddress=chosen)["Instances"][0]["InstanceId"]
    try:
        assert instance(ec2, instance_id)["PrivateIpAddress"] == chosen
        wait_console(ec2, instance_id, "karri-tiny: boot complete")
        out = ssh(launched["key"], first["PublicIpAddress"], f"ping -c 2 {chosen}")
        assert "2 packets received" in out
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated")


def test_one_client_token_launches_once_even_when_raced(launched: dict[str, Any]) -> None:
    ec2 = launched["karri"].client("ec2")
    run = {"ImageId": launched["image_id"], "MinCount": 1, "MaxCount": 1}
    token = f"race-{time.time()}"
    reservations: list[str] = []

    def launch() -> None:
        reservations.append(ec2.run_instances(**run, ClientToken=token)["ReservationId"])

    assert race([launch] * 6) == ["ok"] * 6
    assert len(set(reservations)) == 1
    (reservation,) = ec2.describe_instances(
        Filters=[{"Name": "reservation-id", "Values": reservations[:1]}]
    )["Reservations"]
    ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in reservation["Instances"]])
    assert len(reservation["Instances"]) == 1


def test_imdsv2_token_flow(launched: dict[str, Any]) -> None:
    ec2 = launched["karri"].client("ec2")
    first = instance(ec2, launched["ids"][0])
    # busybox wget cannot PUT, so the token request goes through busybox nc, whose stdin
    # stays open until the answer is in (nc may quit at stdin's end, before the answer).
    script = (
        "token=$( (printf 'PUT /latest/api/token HTTP/1.0\\r\\n"
        "X-aws-ec2-metadata-token-ttl-seconds: 60\\r\\n\\r\\n'; sleep 3) "
        "| nc 169.254.169.254 80 | tail -n 1);"
        'wget -qO- --header "X-aws-ec2-metadata-token: $token" '
        "http://169.254.169.254/latest/meta-data/instance-id; echo;"
        'wget -qO- --header "X-aws-ec2-metadata-token: forged" '
        "http://169.254.169.254/latest/meta-data/instance-id || echo REFUSED"
    )
    out = ssh(launched["key"], first["PublicIpAddress"], script).split()
    assert out == [first["InstanceId"], "REFUSED"]


def test_reboot_keeps_the_instance_and_boots_again(launched: dict[str, Any]) -> None:
    ec2 = launched["karri"].client("ec2")
    instance_id = launched["ids"][0]
    ec2.reboot_instances(InstanceIds=[instance_id])
    wait_console(ec2, instance_id, f"karri-tiny: instance {instance_id} boot 2")
    assert instance(ec2, instance_id)["State"]["Name"] == "running"
    # as AWS reboots: an ACPI shutdown of the guest first, then the second boot
    text = console(ec2, instance_id)
    assert "karri-tiny: ACPI power button" in text.split(f"instance {instance_id} boot 2")[0]


def test_another_account_cannot_touch_an_instance(
    launched: dict[str, Any],
) -> None:
    karri: Karri = launched["karri"]
    other = karri.client("ec2", karri.create_account("intruder"))
    instance_id = launched["ids"][0]
    for call, kwargs in (
        (other.describe_instances, {"InstanceIds": [instance_id]}),
        (other.reboot_instances, {"InstanceIds": [instance_id]}),
        (other.terminate_instances, {"InstanceIds": [instance_id]}),
        (other.get_console_output, {"InstanceId": instance_id}),
    ):
        assert error_of(call, **kwargs) == ("InvalidInstanceID.NotFound", 400)
    assert other.describe_instances()["Reservations"] == []
    assert instance(karri.client("ec2"), instance_id)["State"]["Name"] == "running"


OTHER_ACCOUNT_DATA = """#!/bin/sh
echo "OTHER-ID $(wget -qO- http://169.254.169.254/latest/meta-data/instance-id)"
mkdir -p /www && echo "hello from the other account" > /www/index.html && httpd -p 80 -h /www
if ping -c 3 -W 1 {target} >/dev/null 2>&1; then r=reached; else r=unreachable; fi
echo "OTHER-PING $r"
if nc -w 3 {target} 22 </dev/null | grep -q SSH; then r=reached; else r=unreachable; fi
echo "OTHER-SSH $r"
"""


def page(address: str, timeout: float = 5) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{address}/", timeout=timeout) as answer:
            return answer.read().decode().strip()
    except OSError:
        return None


def test_two_accounts_share_a_private_address_and_never_each_others_network(
    launched: dict[str, Any],
) -> None:
    """Each account's default VPC is its own network: the other account's instance gets
    the very address of our first one, its own metadata, and reaches none of ours; its
    public address answers on port 80 (every port, not only 22)."""
    karri: Karri = launched["karri"]
    ec2 = karri.client("ec2")
    first, second = (instance(ec2, i) for i in launched["ids"][:2])
    creds = karri.create_account("neighbour")
    other = karri.client("ec2", creds)
    data = OTHER_ACCOUNT_DATA.format(target=second["PrivateIpAddress"])
    reservation = other.run_instances(
        ImageId=launched["image_id"], MinCount=1, MaxCount=1, UserData=data
    )
    theirs = reservation["Instances"][0]["InstanceId"]
    launched.update(other_creds=creds, other_id=theirs, other_public=None)
    assert reservation["Instances"][0]["PrivateIpAddress"] == first["PrivateIpAddress"]
    wait_state(other, theirs, "running")
    out = wait_console(other, theirs, "OTHER-SSH")
    assert f"OTHER-ID {theirs}" in out
    assert "OTHER-PING unreachable" in out and "OTHER-SSH unreachable" in out
    public = launched["other_public"] = instance(other, theirs)["PublicIpAddress"]
    assert page(public, timeout=2) is None  # its default group admits no one from outside
    web = open_port(other, 80)
    assert page(public) == "hello from the other account"
    other.revoke_security_group_ingress(GroupName="default", IpPermissions=[web])
    assert page(public, timeout=2) is None
    open_port(other, 80)
    # from our second instance, the shared address is our first instance (no web server)
    seen = ssh(
        launched["key"],
        second["PublicIpAddress"],
        f"wget -qO- -T 3 http://{first['PrivateIpAddress']}/ 2>&1; echo done",
    )
    assert "other account" not in seen


def test_instance_store_cannot_stop(launched: dict[str, Any]) -> None:
    ec2 = launched["karri"].client("ec2")
    assert error_of(ec2.stop_instances, InstanceIds=[launched["ids"][0]]) == (
        "UnsupportedOperation",
        400,
    )


def test_sigkill_and_restart_adopts_the_running_guests(launched: dict[str, Any]) -> None:
    karri: Karri = launched["karri"]
    pids = {i: qemu_pid(karri, i) for i in launched["ids"]}
    assert all(pids.values())
    karri.process.send_signal(signal.SIGKILL)
    karri.process.wait()
    # no karri process: the NAT and the groups are the kernel's
    assert page(launched["other_public"]) == "hello from the other account"
    restarted = start_karri(karri.data_dir, "--stop-instances-on-exit")
    launched["karri"] = restarted
    ec2 = restarted.client("ec2")
    for instance_id, pid in pids.items():
        assert qemu_pid(restarted, instance_id) == pid
        assert wait_state(ec2, instance_id, "running")
    first = instance(ec2, launched["ids"][0])
    assert ssh(launched["key"], first["PublicIpAddress"], "hostname").strip()
    other = restarted.client("ec2", launched["other_creds"])
    assert instance(other, launched["other_id"])["PublicIpAddress"] == launched["other_public"]
    assert page(launched["other_public"]) == "hello from the other account"  # adopted
    other.terminate_instances(InstanceIds=[launched["other_id"]])
    wait_state(other, launched["other_id"], "terminated")


def test_a_qemu_killed_by_hand_moves_its_instance_on(launched: dict[str, Any]) -> None:
    karri: Karri = launched["karri"]
    ec2 = karri.client("ec2")
    instance_id = launched["ids"][2]
    os.kill(qemu_pid(karri, instance_id), signal.SIGKILL)
    ended = wait_state(ec2, instance_id, "terminated")
    assert ended["StateReason"]["Code"] == "Server.InternalError"


def test_terminate_removes_the_guest_and_its_overlay(launched: dict[str, Any]) -> None:
    karri: Karri = launched["karri"]
    ec2 = karri.client("ec2")
    instance_id = launched["ids"][1]
    pid = qemu_pid(karri, instance_id)
    changes = ec2.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"]
    assert changes[0]["PreviousState"]["Name"] == "running"
    assert changes[0]["CurrentState"]["Name"] in ("shutting-down", "terminated")
    ended = wait_state(ec2, instance_id, "terminated")
    assert "PrivateIpAddress" not in ended
    assert not alive(pid)
    assert not (karri.data_dir / "node" / "instances" / instance_id).exists()
    again = ec2.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"]
    assert again[0]["CurrentState"]["Name"] == "terminated"
    assert error_of(
        ec2.modify_instance_attribute,
        InstanceId=instance_id,
        DisableApiTermination={"Value": True},
    ) == ("IncorrectInstanceState", 400)


def test_bad_input_gets_aws_errors(launched: dict[str, Any]) -> None:
    karri: Karri = launched["karri"]
    ec2 = karri.client("ec2")
    image_id = launched["image_id"]
    run = ec2.run_instances
    assert error_of(run, ImageId=image_id, MinCount=1, MaxCount=0)[0] == "InvalidParameterValue"
    assert error_of(run, ImageId=image_id, MinCount=3, MaxCount=2)[0] == "InvalidParameterValue"
    assert error_of(run, ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="x9.huge")[0] == (
        "InvalidParameterValue"
    )
    assert error_of(run, ImageId=image_id, MinCount=1, MaxCount=1, UserData="x" * 16385)[0] == (
        "InvalidParameterValue"
    )
    assert error_of(run, ImageId="emi-00000000", MinCount=1, MaxCount=1)[0] == (
        "InvalidAMIID.NotFound"
    )
    assert error_of(ec2.describe_instances, InstanceIds=["i-nothex!"])[0] == (
        "InvalidInstanceID.Malformed"
    )
    assert error_of(ec2.terminate_instances, InstanceIds=["i-0badc0de"])[0] == (
        "InvalidInstanceID.NotFound"
    )
    reply = v4_post(
        karri,
        {
            "Action": "RunInstances",
            "Version": "2016-11-15",
            "ImageId": image_id,
            "MinCount": "1",
            "MaxCount": "1",
            "UserData": "not base64!",
        },
    )
    assert (reply.status, reply.code) == (400, "InvalidParameterValue")
    assert not [
        i
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] == "pending"
    ]


def test_console_of_a_terminated_instance_is_still_readable(launched: dict[str, Any]) -> None:
    ec2 = launched["karri"].client("ec2")
    assert isinstance(console(ec2, launched["ids"][1]), str)


def test_describe_instance_status_and_attributes(launched: dict[str, Any]) -> None:
    ec2 = launched["karri"].client("ec2")
    instance_id = launched["ids"][0]
    statuses = ec2.describe_instance_status(InstanceIds=[instance_id])["InstanceStatuses"]
    assert statuses[0]["InstanceState"]["Name"] == "running"
    every = ec2.describe_instance_status(IncludeAllInstances=True)["InstanceStatuses"]
    assert {s["InstanceId"] for s in every} >= set(launched["ids"][:2])
    attribute = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceType")
    assert attribute["InstanceType"]["Value"] == "t1.micro"
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})
    assert error_of(ec2.terminate_instances, InstanceIds=[instance_id])[0] == (
        "OperationNotPermitted"
    )
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": False})
    modify = ec2.modify_instance_attribute
    assert error_of(modify, InstanceId=instance_id, Kernel={"Value": "garbage"})[0] == (
        "InvalidAMIID.Malformed"
    )
    assert error_of(modify, InstanceId=instance_id, Ramdisk={"Value": "eri-00000000"})[0] == (
        "InvalidAMIID.NotFound"
    )
    user_data = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    assert "USERDATA-MARKER" in base64.b64decode(user_data["UserData"]["Value"]).decode()


def test_instance_attributes_as_aws_answers_them(launched: dict[str, Any]) -> None:
    ec2 = launched["karri"].client("ec2")
    instance_id = launched["ids"][0]
    names = ec2.meta.service_model.operation_model("DescribeInstanceAttribute").input_shape
    for name in names.members["Attribute"].enum:  # every attribute AWS lists answers
        answer = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute=name)
        assert answer["InstanceId"] == instance_id, name
    answer = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="sourceDestCheck")
    assert answer["SourceDestCheck"]["Value"] is True
    modify = ec2.modify_instance_attribute
    assert error_of(modify, InstanceId=instance_id) == ("InvalidParameterCombination", 400)
    assert error_of(
        modify,
        InstanceId=instance_id,
        SourceDestCheck={"Value": False},
        DisableApiStop={"Value": True},
    ) == ("InvalidParameterCombination", 400)
    modify(InstanceId=instance_id, SourceDestCheck={"Value": False})
    answer = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="sourceDestCheck")
    assert answer["SourceDestCheck"]["Value"] is False
    ec2.reset_instance_attribute(InstanceId=instance_id, Attribute="sourceDestCheck")
    answer = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="sourceDestCheck")
    assert answer["SourceDestCheck"]["Value"] is True
    reset = ec2.reset_instance_attribute
    assert error_of(reset, InstanceId=instance_id, Attribute="kernel") == (
        "IncorrectInstanceState",
        400,
    )
    assert error_of(reset, InstanceId=instance_id, Attribute="userData") == (
        "InvalidParameterValue",
        400,
    )
