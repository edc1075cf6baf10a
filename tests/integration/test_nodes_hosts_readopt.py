"""A joined node restarted re-adopts its real guests (issue 19, many-hosts step 7): the
cloud in host 1 and `karri node` n2 (QEMU driver) in host 2, as in
test_nodes_hosts_qemu.py, whose fixtures this module shares.

Two tiny guests run on n2 (TCG); the first serves HTTP on port 80, which its security
group does not open, has a volume of the cloud attached (NBD from host 1, through n2's
relay) and is reached by SSH from host 2. `karri node` alone is SIGKILLed: the guests'
QEMU, dnsmasq and the relay run on. The cloud sees n2 BROKEN and the guests' SystemStatus
impaired; the second guest is terminated meanwhile (the cloud records it without n2).
`karri node` restarted with the same data dir: n2 is ENABLED and connected again, the
first guest adopted as it ran (same QEMU process, one boot on its console, SSH still
reaching it, port 80 still closed, its volume still attached and written through),
DescribeInstanceStatus ok again; the second guest's QEMU, which n2 still ran, is ended
(the cloud's desired state wins); TerminateInstances of the first then ends it on n2."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.integration.ebs import volume_file, wait_until, wait_volume
from tests.integration.guests import (
    alive,
    console,
    instance,
    key_file,
    node_qemu_pid,
    open_port,
    tiny_image,
    wait_console,
    wait_state,
)
from tests.integration.test_ebs_guests import FIND, attachment_state
from tests.integration.test_nodes_failover import system_status
from tests.integration.test_nodes_hosts import ZONE, Node, hosts, reachable
from tests.integration.test_nodes_hosts_guests import in_guest
from tests.integration.test_nodes_hosts_qemu import cloud, node
from tests.integration.test_nodes_join import nodes, wait_for

__all__ = ["cloud", "hosts", "node"]  # host 1's cloud, the simulated hosts, n2 in host 2
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("qemu-system-x86_64"),
    reason="guests need root (namespaces) and QEMU",
)
WEB = "#!/bin/sh\nmkdir -p /www && echo readopted > /www/index.html && httpd -p 80 -h /www\n"
BOOT = "karri-tiny: boot complete"


def connects(address: str, port: int) -> bool:
    """Whether a TCP connection to ``address:port`` is made (within 3 s)."""
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


def status_of(cloud: Any, instance_id: str) -> tuple[str | None, str | None]:
    """The instance's (SystemStatus, InstanceStatus) from DescribeInstanceStatus."""
    found = system_status(cloud, instance_id)
    return found.get("SystemStatus", {}).get("Status"), found.get("InstanceStatus", {}).get(
        "Status"
    )


def test_a_restarted_node_readopts_its_guests(cloud: Any, node: Node, tmp_path: Path) -> None:
    ec2 = cloud.client("ec2")
    key = key_file(ec2, tmp_path, "readopt")
    open_port(ec2, 22)  # not 80
    run = ec2.run_instances(
        ImageId=tiny_image(cloud, ec2), MinCount=2, MaxCount=2, KeyName="readopt",
        UserData=WEB, Placement={"AvailabilityZone": ZONE},
    )  # fmt: skip
    kept, ended = (i["InstanceId"] for i in run["Instances"])
    for instance_id in (kept, ended):
        wait_state(ec2, instance_id, "running", timeout=300)
    wait_console(ec2, kept, BOOT)
    guest = (instance(ec2, kept), node)
    public = guest[0]["PublicIpAddress"]
    assert in_guest(key, guest, "wget -qO- http://127.0.0.1/").strip() == "readopted"
    assert not node.host.call(lambda: connects(public, 80))  # its group keeps 80 closed

    volume_id = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, volume_id)
    ec2.attach_volume(VolumeId=volume_id, InstanceId=kept, Device="/dev/sdf")
    wait_until(lambda: attachment_state(ec2, volume_id) == "attached", 120)
    device = wait_until(lambda: in_guest(key, guest, FIND.format(vol=volume_id)).strip(), 60, 1)
    before = f"BEFORE-{volume_id}"
    in_guest(key, guest, f"printf '{before}' > {device}; sync")
    pids = {i: node_qemu_pid(node.data_dir, i) for i in (kept, ended)}
    assert all(pids.values()), pids

    node.kill()  # `karri node` only: its guests, dnsmasq and relays run on
    wait_for(lambda: nodes(cloud)["n2"]["state"] == "BROKEN", 120)
    wait_for(lambda: status_of(cloud, kept)[0] == "impaired", 120)
    assert status_of(cloud, kept)[1] == "insufficient-data"
    assert all(alive(pid) for pid in pids.values())
    ec2.terminate_instances(InstanceIds=[ended])  # recorded without n2
    wait_state(ec2, ended, "terminated")
    assert alive(pids[ended])  # n2 is not heard: its QEMU runs on for now
    assert in_guest(key, guest, "hostname").strip()  # the kernel keeps its NAT and group

    node.start()  # joined already: no token
    wait_for(lambda: nodes(cloud)["n2"]["state"] == "ENABLED", 120)
    wait_for(lambda: reachable(cloud) == ["n2"], 180)
    gone = node.data_dir / "node" / "instances" / ended
    wait_for(lambda: not alive(pids[ended]) and not gone.exists(), 120)  # the cloud wins
    assert node_qemu_pid(node.data_dir, kept) == pids[kept]  # adopted, not relaunched
    wait_for(lambda: status_of(cloud, kept) == ("ok", "ok"), 180)
    assert wait_state(ec2, kept, "running")
    text = console(ec2, kept)
    assert text.count(BOOT) == 1 and f"instance {kept} boot 2" not in text  # no reboot
    assert in_guest(key, guest, "wget -qO- http://127.0.0.1/").strip() == "readopted"
    assert not node.host.call(lambda: connects(public, 80))  # its group still enforced
    assert attachment_state(ec2, volume_id) == "attached"
    read = f"echo 3 > /proc/sys/vm/drop_caches; head -c {len(before)} {device}"
    assert in_guest(key, guest, read) == before  # through the relay and export it had
    after = f"AFTER-{volume_id}"
    in_guest(key, guest, f"printf '{after}' > {device}; sync")
    ec2.detach_volume(VolumeId=volume_id)
    wait_volume(ec2, volume_id)
    with open(volume_file(cloud, volume_id), "rb") as f:
        assert f.read(len(after)) == after.encode()

    ec2.terminate_instances(InstanceIds=[kept])
    wait_state(ec2, kept, "terminated", timeout=300)
    wait_for(lambda: not alive(pids[kept]), 60)
