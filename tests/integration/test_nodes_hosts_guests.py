"""Real guests on two simulated hosts (issue 19's tests, tests/hosts.py): the cloud,
`karri up --host 10.250.X.1 --node-port …`, in host 1 (its volumes' files there too);
`karri node` with the QEMU driver in hosts 2 and 3, joined over the test network in a
zone of their own. One RunInstances of two guests in that zone puts one on each host, in
one subnet: they reach each other over the subnet's VXLAN devices, whose underlay is the
test network between the hosts (not loopback), and a change of their security group
applies on both hosts. A volume (the cloud's file in host 1) written by the guest in
host 2, detached and attached to the guest in host 3, reads back the same bytes: over
NBD with TLS from host 1, through each node's relay. An encrypted volume written by the
guest in host 2 past its qcow2 file's first length, snapshotted while attached there (a
copy taken by its export's daemon in host 1), restored and read back by the guest in host
3; growing it fails while it is in use there, and succeeds once detached. SSH reaches
each guest from its own host (the public address is mapped on the node that hosts the
guest); clients run in host 1 (see test_nodes_hosts.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KARRI, Karri
from tests.hosts import Hosts
from tests.integration.ebs import volume, wait_snapshot, wait_until, wait_volume
from tests.integration.guests import (
    instance,
    key_file,
    open_port,
    ssh,
    terminate_all,
    tiny_image,
    wait_console,
    wait_state,
)
from tests.integration.test_ebs_guests import FIND, attachment_state
from tests.integration.test_nodes_hosts import ZONE, Node, hosts, reachable
from tests.integration.test_nodes_hosts_qemu import cloud
from tests.integration.test_nodes_join import token, wait_for

__all__ = ["cloud", "hosts"]  # the module's cloud (in host 1) and simulated hosts
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("qemu-system-x86_64"),
    reason="guests need root (namespaces) and QEMU",
)
KEY = "hosts"
Guest = tuple[dict[str, Any], Node]  # as DescribeInstances shows it, and its node


@pytest.fixture(scope="module")
def fleet(
    cloud: Karri, hosts: Hosts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Node]]:
    """n2 and n3, QEMU driver, on hosts 2 and 3; their guests ended, then they and what
    they left in their hosts."""
    base = tmp_path_factory.mktemp("nshosts-guests-nodes")
    joined = {f"n{n}": Node(f"n{n}", hosts.host(n), base / f"n{n}", "qemu") for n in (2, 3)}
    try:
        tokens = [token(cloud) for _ in joined]
        for node, given in zip(joined.values(), tokens, strict=True):
            node.start("--cloud", cloud.ec2_url, "--token", given)
        wait_for(lambda: reachable(cloud) == sorted(joined), 180)
        yield joined
    finally:
        terminate_all(cloud.client("ec2"), wait=True, timeout=300)  # while the nodes run
        for node in joined.values():
            node.stop()
            down = [KARRI, "down", "--guests", "--data-dir", str(node.data_dir)]
            subprocess.run(node.host.ns.exec_args(*down), check=False)  # in its host


@pytest.fixture(scope="module")
def key(cloud: Karri, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return key_file(cloud.client("ec2"), tmp_path_factory.mktemp("key"), KEY)


@pytest.fixture(scope="module")
def guests(cloud: Karri, fleet: dict[str, Node], key: Path) -> dict[str, Guest]:
    """The guest on each node, by node name: as DescribeInstances shows it, and its node."""
    ec2 = cloud.client("ec2")
    image_id = tiny_image(cloud, ec2)
    open_port(ec2, 22)
    run = ec2.run_instances(
        ImageId=image_id, MinCount=2, MaxCount=2, KeyName=KEY,
        Placement={"AvailabilityZone": ZONE},
    )  # fmt: skip
    placed = {}
    for launched in run["Instances"]:
        wait_state(ec2, launched["InstanceId"], "running", timeout=300)
        wait_console(ec2, launched["InstanceId"], "karri-tiny: boot complete")
        described = instance(ec2, launched["InstanceId"])
        hosting = [n for n in fleet.values() if _runs(n, launched["InstanceId"])]
        assert len(hosting) == 1, described
        placed[hosting[0].name] = (described, hosting[0])
    assert sorted(placed) == ["n2", "n3"]  # one guest on each host
    return placed


def _runs(node: Node, instance_id: str) -> bool:
    return (node.data_dir / "node" / "instances" / instance_id / "instance.json").exists()


def in_guest(key: Path, guest: Guest, command: str) -> str:
    """``command``'s output in the guest, over SSH from the host of its node."""
    described, node = guest
    return ssh(key, described["PublicIpAddress"], command, via=node.host.ns.exec_args())


def ping(key: Path, one: Guest, other: Guest) -> str:
    return in_guest(key, one, f"ping -c 2 -W 3 {other[0]['PrivateIpAddress']}; true")


def test_guests_on_two_hosts_reach_each_other_and_their_group_applies_on_both(
    cloud: Karri, key: Path, guests: dict[str, Guest]
) -> None:
    ec2 = cloud.client("ec2")
    first, second = guests["n2"], guests["n3"]
    assert first[0]["SubnetId"] == second[0]["SubnetId"]
    for one, other in ((first, second), (second, first)):
        assert "2 packets received" in ping(key, one, other)
    mtu = in_guest(key, first, "cat /sys/class/net/eth0/mtu").strip()
    assert mtu == "1450"  # the test network's 1500 less VXLAN's 50, told by DHCP
    group_id = first[0]["SecurityGroups"][0]["GroupId"]
    members = [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]}]
    ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=members)
    for one, other in ((first, second), (second, first)):
        assert "0 packets received" in ping(key, one, other)
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=members)
    for one, other in ((first, second), (second, first)):
        assert "2 packets received" in ping(key, one, other)


def test_a_volume_moves_between_guests_on_two_hosts(
    cloud: Karri, key: Path, guests: dict[str, Guest]
) -> None:
    ec2 = cloud.client("ec2")
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, volume_id)
    marker = f"CROSSED-{volume_id}"
    said = []
    for name, command in (
        ("n2", f"printf '{marker}' > $DEV; sync; echo written"),
        ("n3", f"head -c {len(marker)} $DEV"),
    ):
        guest = guests[name]
        ec2.attach_volume(VolumeId=volume_id, InstanceId=guest[0]["InstanceId"], Device="/dev/sdf")
        wait_until(lambda: attachment_state(ec2, volume_id) == "attached", 120)
        find = FIND.format(vol=volume_id)
        device = wait_until(lambda: in_guest(key, guest, find).strip(), 60, 1)  # noqa: B023
        said.append(in_guest(key, guest, command.replace("$DEV", device)))
        assert list((guest[1].data_dir / "node" / "nbd").glob("*.sock"))  # its relay
        ec2.detach_volume(VolumeId=volume_id)
        wait_volume(ec2, volume_id)
    assert said == ["written\n", marker]


def modification(ec2: Any, volume_id: str) -> dict[str, Any]:
    return ec2.describe_volumes_modifications(VolumeIds=[volume_id])["VolumesModifications"][0]


def attached_device(ec2: Any, key: Path, guest: Guest, volume_id: str) -> str:
    """Attach the volume to the guest; its device in the guest."""
    ec2.attach_volume(VolumeId=volume_id, InstanceId=guest[0]["InstanceId"], Device="/dev/sdg")
    wait_until(lambda: attachment_state(ec2, volume_id) == "attached", 120)
    find = FIND.format(vol=volume_id)
    return wait_until(lambda: in_guest(key, guest, find).strip(), 60, 1)


def test_an_encrypted_volume_on_another_host_grows_into_its_file_and_is_snapshotted(
    cloud: Karri, key: Path, guests: dict[str, Guest]
) -> None:
    ec2 = cloud.client("ec2")
    first, second = guests["n2"], guests["n3"]
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=ZONE, Encrypted=True)["VolumeId"]
    wait_volume(ec2, volume_id)
    file = cloud.data_dir / "volumes" / f"{volume_id}.qcow2"
    made = file.stat().st_size  # its metadata: far less than its clusters need
    marker = f"FAR-{volume_id}"
    offsets = (0, 300, 1020)  # MiB: each a new cluster past the file's first length
    device = attached_device(ec2, key, first, volume_id)
    at = f"| dd of={device} bs=1M 2>/dev/null seek="
    written = [f"printf '{marker}' {at}{mib}" for mib in offsets]
    written.append(f"yes KARRI | head -c 8388608 {at}500")
    assert in_guest(key, first, "; ".join([*written, "sync", "echo written"])) == "written\n"
    assert file.stat().st_size > made + (8 << 20)  # lengthened before it was exported

    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]  # still attached
    snapshot = wait_snapshot(ec2, snapshot_id)
    assert (snapshot["State"], snapshot["Encrypted"]) == ("completed", True), snapshot
    assert attachment_state(ec2, volume_id) == "attached"
    assert marker.encode() not in file.read_bytes()  # ciphertext, in the file and the copy
    restored = ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, restored)
    assert volume(ec2, restored)["Encrypted"] is True

    device = attached_device(ec2, key, second, restored)
    for mib in offsets:
        read = f"dd if={device} bs=1M skip={mib} count=1 2>/dev/null | head -c {len(marker)}"
        assert in_guest(key, second, read) == marker, mib
    pattern = f"dd if={device} bs=1M skip=500 count=8 2>/dev/null | tr -d 'KARI\\n' | wc -c"
    assert in_guest(key, second, pattern).strip() == "0"
    count = f"dd if={device} bs=1M skip=500 count=8 2>/dev/null | wc -c"
    assert in_guest(key, second, count).strip() == str(8 << 20)

    # QEMU's NBD client keeps the size it connected with: growing it there fails, cleanly
    ec2.modify_volume(VolumeId=restored, Size=2)
    failed = wait_until(lambda: (m := modification(ec2, restored))["ModificationState"]
                        in ("failed", "completed") and m, 120)  # fmt: skip
    assert failed["ModificationState"] == "failed" and "NBD" in failed["StatusMessage"]
    assert volume(ec2, restored)["Size"] == 1
    ec2.detach_volume(VolumeId=restored)  # detached, it grows; attached anew, it is seen
    wait_volume(ec2, restored)
    ec2.modify_volume(VolumeId=restored, Size=2)
    wait_until(lambda: modification(ec2, restored)["ModificationState"] != "modifying", 120)
    device = attached_device(ec2, key, second, restored)
    sectors = f"cat /sys/block/{device.removeprefix('/dev/')}/size"
    assert int(in_guest(key, second, sectors)) * 512 == 2 << 30
    late = f"printf '{marker}' {at}2040; sync; dd if={device} bs=1M skip=2040 count=1"
    assert in_guest(key, second, f"{late} 2>/dev/null | head -c {len(marker)}") == marker
    assert in_guest(key, second, f"head -c {len(marker)} {device}") == marker
    for volume_id_ in (volume_id, restored):
        ec2.detach_volume(VolumeId=volume_id_)
        wait_volume(ec2, volume_id_)
        ec2.delete_volume(VolumeId=volume_id_)
    ec2.delete_snapshot(SnapshotId=snapshot_id)
