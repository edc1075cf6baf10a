"""Helpers for tests that boot real guests of the default karri-tiny image."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import Karri, start_karri, stop_karri
from tests.node.vpcnet import Outside

T = TypeVar("T")
BOOT_TIMEOUT = 420  # TCG on a loaded 2-core machine


def wait_for(what: str, check: Callable[[], T | None], timeout: float = BOOT_TIMEOUT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def available_image(ec2: Any, name: str, timeout: float = 600) -> dict[str, Any]:
    """The image named ``name`` (a default one), once it is available."""

    def available() -> dict[str, Any] | None:
        images = ec2.describe_images(
            Filters=[
                {"Name": "name", "Values": [name]},
                {"Name": "state", "Values": ["available"]},
            ]
        )["Images"]
        return images[0] if images else None

    return wait_for(f"the {name} image", available, timeout)


def tiny_image(karri: Karri, ec2: Any) -> str:
    """The default EMI's id, once it is available."""
    return available_image(ec2, "karri-tiny")["ImageId"]


def key_file(ec2: Any, directory: Path, name: str) -> Path:
    """A new key pair ``name``; its private key saved as ``directory/key.pem`` for ssh."""
    key = directory / "key.pem"
    key.write_text(ec2.create_key_pair(KeyName=name)["KeyMaterial"])
    key.chmod(0o600)
    return key


def open_port(ec2: Any, port: int) -> dict[str, Any]:
    """Let anyone reach tcp ``port`` of the account's instances (its default VPC's
    ``default`` group, which on its own admits only its members, as on AWS). Returns the
    permission, for a revoke."""
    permission = {
        "IpProtocol": "tcp",
        "FromPort": port,
        "ToPort": port,
        "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
    }
    ec2.authorize_security_group_ingress(GroupName="default", IpPermissions=[permission])
    return permission


def ssh_guest(
    karri: Karri, ec2: Any, directory: Path, key_name: str, instance_type: str
) -> tuple[str, Callable[[str], str]]:
    """One booted guest of the tiny image that the host reaches by ssh (a new key pair,
    tcp/22 opened in the default group): its id, and a function running a command in it."""
    key = key_file(ec2, directory, key_name)
    open_port(ec2, 22)
    instance_id = ec2.run_instances(
        ImageId=tiny_image(karri, ec2),
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        KeyName=key_name,
    )["Instances"][0]["InstanceId"]
    wait_state(ec2, instance_id, "running", 300)
    wait_console(ec2, instance_id, "karri-tiny: boot complete")
    address = instance(ec2, instance_id)["PublicIpAddress"]
    return instance_id, lambda command: ssh(key, address, command)


def end_cloud(karri: Karri, *, wait: bool = False) -> None:
    """A test cloud's teardown: terminate every instance still there, then stop karri.

    ``wait`` waits for each to be terminated before karri stops.
    """
    terminate_all(karri.client("ec2"), wait=wait)
    stop_karri(karri)


def terminate_all(ec2: Any, *, wait: bool = False, timeout: float = 120) -> None:
    """Terminate every instance not terminated yet (``wait``: until each is)."""
    live = [
        i["InstanceId"]
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    if live:
        ec2.terminate_instances(InstanceIds=live)
        if wait:
            for instance_id in live:
                wait_state(ec2, instance_id, "terminated", timeout)


def instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]


def state(ec2: Any, instance_id: str) -> str:
    return instance(ec2, instance_id)["State"]["Name"]


def wait_state(ec2: Any, instance_id: str, wanted: str, timeout: float = 120) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        last.clear()  # this answer's keys only (a terminated instance's lack some)
        last.update(instance(ec2, instance_id))
        return dict(last) if last["State"]["Name"] == wanted else None

    try:
        return wait_for(f"{instance_id} to be {wanted}", reached, timeout)
    except AssertionError as error:  # what it was instead, and why
        seen = (last.get("State", {}).get("Name"), last.get("StateReason"))
        raise AssertionError(f"{error}; last seen {seen[0]}, reason {seen[1]}") from None


def console(ec2: Any, instance_id: str) -> str:
    output = ec2.get_console_output(InstanceId=instance_id).get("Output") or ""
    return output if isinstance(output, str) else base64.b64decode(output).decode(errors="replace")


def wait_console(ec2: Any, instance_id: str, marker: str, timeout: float = BOOT_TIMEOUT) -> str:
    return wait_for(
        f"{marker!r} on the console of {instance_id}",
        lambda: (text := console(ec2, instance_id)) and marker in text and text,
        timeout,
    )


def ssh(key: Path, address: str, command: str, timeout: float = 90, via: Sequence[str] = ()) -> str:
    """Run a command in a guest over SSH, retrying while the connection cannot be made yet
    (``via``: what ssh runs under, e.g. ``ip netns exec HOST`` for a simulated host)."""
    args = [*via, "ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no"]
    args += ["-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20"]
    args += ["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"root@{address}", command]
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if result.returncode == 0:
            return result.stdout
        if result.returncode != 255 or time.monotonic() > deadline:  # 255: ssh's own failure
            raise AssertionError(result.stderr)
        time.sleep(1)


def qemu_pid(karri: Karri, instance_id: str) -> int | None:
    """The PID of an instance's QEMU process if it runs (the node records it on disk)."""
    return node_qemu_pid(karri.data_dir, instance_id)


def node_qemu_pid(data_dir: Path, instance_id: str) -> int | None:
    """The PID of an instance's QEMU process if it runs on the node of ``data_dir`` (a
    cloud's or a joined node's)."""
    record = data_dir / "node" / "instances" / instance_id / "instance.json"
    try:
        pid = json.loads(record.read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None
    return pid if pid and alive(pid) else None


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (the orphans' reaper may be slow)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def ssh_banner(address: str) -> bytes | None:
    """The guest's SSH banner through its public address, or None when nothing answers."""
    try:
        with socket.create_connection((address, 22), timeout=3) as connection:
            connection.settimeout(5)
            return connection.recv(64) or None
    except OSError:
        return None


UPLINK_POOL = "198.51.100.128/25"  # the public pool of a cloud behind a test uplink


class UplinkCloud:
    """A ``karri up`` whose public side is a test uplink: ``--public-interface`` is the
    host end of a veth to a namespace standing for "the outside" (``outside``, whose
    server answers the source address it saw), ``--public-pool UPLINK_POOL``."""

    def __init__(self, data_dir: Path, outside: Outside) -> None:
        self.data_dir = data_dir
        self.outside = outside
        self.karri: Karri | None = None

    def start(self) -> Karri:
        """Start (or start again, after a kill) the cloud on the same data dir."""
        self.karri = start_karri(
            self.data_dir,
            "--public-interface",
            self.outside.interface,
            "--public-pool",
            UPLINK_POOL,
        )
        return self.karri


@contextmanager
def cloud_behind_uplink(data_dir: Path, name: str) -> Iterator[UplinkCloud]:
    """A started ``UplinkCloud``; on a clean exit its instances are ended first. The
    outside's namespace is gone afterwards, whatever happened."""
    outside = Outside(f"karri-test-{name}-{os.getpid()}")
    cloud = UplinkCloud(data_dir, outside)
    try:
        cloud.start()
        yield cloud
        assert cloud.karri is not None
        end_cloud(cloud.karri, wait=True)
    finally:
        if cloud.karri is not None:
            stop_karri(cloud.karri)
        outside.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert outside.ns.name not in listed
