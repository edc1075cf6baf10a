"""EBS on Ceph RBD through a real ``karri up --ebs-backend rbd`` and boto3: thin volumes,
snapshots that are RBD snapshots (exported to Walrus too), CreateVolume from a snapshot
that is an RBD clone flattened in the background, ModifyVolume that resizes the image,
DeleteVolume and DeleteSnapshot that leave nothing behind, encrypted volumes (a qcow2
file with LUKS in the image: snapshots, restores, copies), the backend kept in the data dir
across restarts, and a joined node handed the Ceph access it opens volumes with. No guest:
the images are written and read with ``qemu-io`` as a guest would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from karri.node import RbdTarget
from karri.node.disks import blockdev, node_name, secret_id
from tests import ceph
from tests.conftest import Karri, free_port, start_karri, stop_karri
from tests.integration.bare_qemu import bare_qemu
from tests.integration.ebs import (
    GIB,
    ZONE,
    new_volume,
    snapshot,
    stored_bytes,
    volume,
    wait_snapshot,
    wait_until,
    wait_volume,
)
from tests.integration.ec2_wire import unique
from tests.integration.rbd import (
    images,
    info,
    keyed_io,
    pattern_at,
    qemu_io,
    rbd,
    snaps,
    start_rbd_karri,
)
from tests.integration.test_ebs_encryption import passphrase
from tests.integration.test_nodes_join import nodes, start_node, token, wait_for

KIB, MIB = 1 << 10, 1 << 20


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("ebs-rbd")
    args = ("--no-default-images", "--node-port", str(free_port()))
    karri, pool = start_rbd_karri(base / "data", *args)
    try:
        yield {"karri": karri, "pool": pool, "base": base, "args": args}
    finally:
        stop_karri(karri)


def test_volume_snapshot_clone_and_delete(cloud: dict[str, Any]) -> None:
    karri: Karri = cloud["karri"]
    pool = cloud["pool"]
    ec2 = karri.client("ec2")
    volume_id = new_volume(ec2, 2)
    assert info(pool, volume_id)["size"] == 2 * GIB  # thin: nothing written yet
    qemu_io(pool, volume_id, f"write -P 0x5a {300 * MIB} {MIB}")

    snap_id = ec2.create_snapshot(VolumeId=volume_id, Description="rbd")["SnapshotId"]
    assert wait_snapshot(ec2, snap_id)["State"] == "completed"
    assert snap_id in snaps(pool, volume_id)  # kept: volumes are cloned from it
    qemu_io(pool, volume_id, f"write -P 0x11 {300 * MIB} {MIB}")  # after the snapshot

    copy = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=ZONE, Size=3)["VolumeId"]
    wait_volume(ec2, copy)
    assert volume(ec2, copy)["SnapshotId"] == snap_id and volume(ec2, copy)["Size"] == 3
    assert pattern_at(pool, copy, 300 * MIB, MIB, 0x5A)
    assert pattern_at(pool, copy, 0, MIB, 0)
    # flattened in the background: no longer a clone of the snapshot
    wait_until(lambda: "parent" not in info(pool, copy), 60, 0.5)
    assert info(pool, copy)["size"] == 3 * GIB
    assert pattern_at(pool, copy, 300 * MIB, MIB, 0x5A)

    # DeleteVolume keeps the snapshot usable (the image is kept until its snapshot goes)
    ec2.delete_volume(VolumeId=volume_id)
    wait_until(lambda: volume_id not in images(pool) and _gone(ec2, volume_id), 60, 0.5)
    again = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, again)
    assert pattern_at(pool, again, 300 * MIB, MIB, 0x5A)

    ec2.delete_snapshot(SnapshotId=snap_id)
    wait_until(lambda: f"gone.{volume_id}" not in images(pool), 60, 0.5)
    assert pattern_at(pool, again, 300 * MIB, MIB, 0x5A)  # flattened before its parent went
    for vol in (copy, again):
        ec2.delete_volume(VolumeId=vol)
    wait_until(lambda: images(pool) == [], 60, 0.5)


def test_later_snapshots_export_only_what_changed(cloud: dict[str, Any]) -> None:
    """The second snapshot's object is a diff over the first (``diff_iterate`` from its
    RBD snapshot); the first deleted, a copy of the second read back from Walrus (the
    chain laid over its kept base object) restores the volume's bytes exactly."""
    karri: Karri = cloud["karri"]
    pool = cloud["pool"]
    ec2 = karri.client("ec2")
    volume_id = new_volume(ec2, 2)
    qemu_io(pool, volume_id, f"write -P 0x21 {100 * MIB} {16 * MIB}")
    first = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    assert wait_snapshot(ec2, first)["State"] == "completed"
    qemu_io(pool, volume_id, f"write -P 0x42 {104 * MIB} {64 * KIB}")  # over the first's
    qemu_io(pool, volume_id, f"write -P 0x63 {1500 * MIB} {MIB}")  # where it had nothing
    qemu_io(pool, volume_id, f"discard {112 * MIB} {4 * MIB}")  # reads as zeros again
    second = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    assert wait_snapshot(ec2, second)["State"] == "completed"
    full, diff = stored_bytes(karri, first) or 0, stored_bytes(karri, second) or 0
    assert full > 16 * MIB and diff < 2 * MIB, (full, diff)

    ec2.delete_snapshot(SnapshotId=first)  # its object stays: the second's diff needs it
    wait_until(lambda: first not in snaps(pool, volume_id), 60, 0.5)
    assert stored_bytes(karri, first) == full  # its row too, hidden
    copy = ec2.copy_snapshot(SourceSnapshotId=second, SourceRegion=karri.region)["SnapshotId"]
    assert wait_snapshot(ec2, copy)["State"] == "completed"
    assert (stored_bytes(karri, copy) or 0) > 13 * MIB  # a copy is whole (12 MiB + 64 KiB + 1 MiB)
    restored = ec2.create_volume(SnapshotId=copy, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, restored)
    assert "parent" not in info(pool, restored)  # restored from Walrus, not a clone
    expected = [
        (0, 100 * MIB, 0),
        (100 * MIB, 4 * MIB, 0x21),
        (104 * MIB, 64 * KIB, 0x42),
        (104 * MIB + 64 * KIB, 8 * MIB - 64 * KIB, 0x21),
        (112 * MIB, 4 * MIB, 0),
        (116 * MIB, MIB, 0),
        (1500 * MIB, MIB, 0x63),
    ]
    for offset, length, byte in expected:
        assert pattern_at(pool, restored, offset, length, byte), (offset, byte)

    for snap in (second, copy):
        ec2.delete_snapshot(SnapshotId=snap)
    wait_until(lambda: snaps(pool, volume_id) == [], 60, 0.5)
    wait_until(lambda: stored_bytes(karri, first) is None, 60, 0.5)  # the base went last
    for vol in (volume_id, restored):
        ec2.delete_volume(VolumeId=vol)
    wait_until(lambda: images(pool) == [], 60, 0.5)


def test_modify_volume_resizes_the_image(cloud: dict[str, Any]) -> None:
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    volume_id = new_volume(ec2, 1)
    ec2.modify_volume(VolumeId=volume_id, Size=4)
    wait_until(lambda: volume(ec2, volume_id)["Size"] == 4, 60, 0.5)
    assert info(cloud["pool"], volume_id)["size"] == 4 * GIB
    ec2.delete_volume(VolumeId=volume_id)


def test_encrypted_volumes_snapshots_restores_and_copies(
    cloud: dict[str, Any], tmp_path: Path
) -> None:
    """Encrypted EBS on RBD through boto3: a volume whose image holds a qcow2 (LUKS) file,
    written by a QEMU that opens it as the node does (qcow2 over its rbd driver, the
    account's key as a secret object) and snapshotted while plugged in; its snapshot
    encrypted and kept, a volume from it a clone (grown through the key, flattened in the
    background); its next snapshot a diff, copied (the chain read whole) and restored;
    ModifyVolume grows it through the key; a plain snapshot restored and copied encrypted
    (the copy's volumes clones too); encryption by default. Nothing is left."""
    karri: Karri = cloud["karri"]
    pool = cloud["pool"]
    account = karri.create_account(unique("rbd-enc"))
    ec2 = karri.client("ec2", account)
    key = passphrase(karri, account.account_id)
    volume_id = new_volume(ec2, 1, Encrypted=True)
    described = volume(ec2, volume_id)
    assert described["Encrypted"] is True and account.account_id in described["KmsKeyId"]
    assert rbd("image-meta", "get", f"{pool}/{volume_id}", "karri.format").strip() == "qcow2-luks"
    keyed_io(pool, volume_id, f"read -P 0 0 {4 * MIB}", key)  # a new volume reads zeros
    keyed_io(pool, volume_id, f"write -P 0x44 {16 * MIB} {8 * MIB}", key)
    target = RbdTarget(pool, volume_id, "admin", ceph.cluster().conf)

    async def in_qemu() -> str:
        async with bare_qemu(tmp_path) as qmp:
            await qmp.secret_add(secret_id(volume_id), key.decode())
            await qmp.blockdev_add(blockdev(volume_id, target, "qcow2-luks"))
            for command in (f"write -P 0x6b {3 * MIB} {MIB}", "flush"):  # as write-through
                line = f'qemu-io {node_name(volume_id)} "{command}"'
                said = await qmp._run("human-monitor-command", {"command-line": line})
                assert "error" not in said.lower(), said
            snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]  # while plugged
            taken = await asyncio.to_thread(wait_snapshot, ec2, snap_id)
            await qmp.blockdev_del(node_name(volume_id))
            assert (taken["State"], taken["Encrypted"]) == ("completed", True), taken
            return snap_id

    snap_id = asyncio.run(in_qemu())
    assert snap_id in snaps(pool, volume_id)  # kept: volumes are cloned from it
    assert snapshot(ec2, snap_id)["KmsKeyId"] == described["KmsKeyId"]
    restored = new_volume(ec2, 2, SnapshotId=snap_id)
    assert (volume(ec2, restored)["Encrypted"], volume(ec2, restored)["Size"]) == (True, 2)
    assert f"a clone of {snap_id}" in _log_line(karri, restored)  # nothing copied
    wait_until(lambda: "parent" not in info(pool, restored), 60, 0.5)  # then flattened
    keyed_io(pool, restored, f"read -P 0x6b {3 * MIB} {MIB}", key)
    keyed_io(pool, restored, f"read -P 0 {GIB} {4 * MIB}", key)  # grown: zeros
    ec2.modify_volume(VolumeId=restored, Size=3)  # detached: grown by its header
    wait_until(lambda: "3 GiB" in keyed_io(pool, restored, "length", key), 60, 0.5)

    keyed_io(pool, volume_id, f"write -P 0x7c {40 * MIB} {MIB}", key)
    second = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    assert wait_snapshot(ec2, second)["State"] == "completed"
    full, diff = stored_bytes(karri, snap_id) or 0, stored_bytes(karri, second) or 0
    assert diff < 3 * MIB < 9 * MIB < full, (full, diff)  # a diff over the first
    copy_id = ec2.copy_snapshot(SourceSnapshotId=second, SourceRegion=karri.region)["SnapshotId"]
    assert wait_snapshot(ec2, copy_id)["Encrypted"] is True
    from_copy = new_volume(ec2, 1, SnapshotId=copy_id)  # the chain read whole from Walrus
    assert "parent" not in info(pool, from_copy)  # restored: a copy keeps no checkpoint
    for volume_read in (f"read -P 0x6b {3 * MIB} {MIB}", f"read -P 0x7c {40 * MIB} {MIB}"):
        keyed_io(pool, from_copy, volume_read, key)
    keyed_io(pool, from_copy, f"read -P 0x44 {16 * MIB} {8 * MIB}", key)

    plain = new_volume(ec2, 1)
    qemu_io(pool, plain, f"write -P 0x5a {5 * MIB} {MIB}")
    plain_snap = ec2.create_snapshot(VolumeId=plain)["SnapshotId"]
    assert wait_snapshot(ec2, plain_snap)["Encrypted"] is False
    converted = new_volume(ec2, 1, SnapshotId=plain_snap, Encrypted=True)  # QEMU encrypts it
    assert volume(ec2, converted)["Encrypted"] is True
    keyed_io(pool, converted, f"read -P 0x5a {5 * MIB} {MIB}", key)
    encrypted_copy = ec2.copy_snapshot(
        SourceSnapshotId=plain_snap, SourceRegion=karri.region, Encrypted=True
    )["SnapshotId"]
    copied = wait_snapshot(ec2, encrypted_copy)
    assert (copied["State"], copied["Encrypted"]) == ("completed", True), copied
    from_encrypted_copy = new_volume(ec2, 1, SnapshotId=encrypted_copy)
    assert f"a clone of {encrypted_copy}" in _log_line(karri, from_encrypted_copy)
    keyed_io(pool, from_encrypted_copy, f"read -P 0x5a {5 * MIB} {MIB}", key)

    assert ec2.enable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    by_default = new_volume(ec2, 1)
    assert volume(ec2, by_default)["Encrypted"] is True
    ec2.disable_ebs_encryption_by_default()

    volumes = [volume_id, restored, from_copy, plain, converted, from_encrypted_copy, by_default]
    for vol in volumes:
        ec2.delete_volume(VolumeId=vol)
    snapshots = (snap_id, second, copy_id, plain_snap, encrypted_copy)
    for snap in snapshots:
        ec2.delete_snapshot(SnapshotId=snap)
    ours = set(volumes) | set(snapshots)
    wait_until(lambda: not any(name.split(".")[-1] in ours for name in images(pool)), 60, 0.5)


def _log_line(karri: Karri, volume_id: str) -> str:
    """The cloud's log line saying how the volume was made ("… (a clone of snap-…)")."""
    said = f"ebs: {volume_id} available in "

    def line() -> str | None:
        log = (karri.data_dir / "logs" / "karri.log").read_text()
        return next((text for text in log.splitlines() if said in text), None)

    return wait_until(line, 30, 0.2)


def test_the_backend_is_kept_in_the_data_dir(cloud: dict[str, Any]) -> None:
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    volume_id = new_volume(ec2, 1)
    stop_karri(karri)
    cloud["karri"] = karri = start_karri(karri.data_dir, *cloud["args"])
    ec2 = karri.client("ec2")
    snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    assert wait_snapshot(ec2, snap_id)["State"] == "completed"
    assert snap_id in snaps(cloud["pool"], volume_id)
    assert snapshot(ec2, snap_id)["VolumeSize"] == 1


def test_qemu_opens_the_volume_as_the_node_does(cloud: dict[str, Any], tmp_path: Path) -> None:
    """A QEMU (outside any namespace) plugs the volume with the node's own block nodes
    (QEMU's rbd driver) and writes to it, holding the image's lock; a snapshot then has
    what QEMU wrote (the RBD snapshot is taken through the lock's holder), and QEMU grows
    the image as a ModifyVolume of an attached volume does."""
    karri: Karri = cloud["karri"]
    pool = cloud["pool"]
    ec2 = karri.client("ec2")
    volume_id = new_volume(ec2, 1)
    target = RbdTarget(pool, volume_id, "admin", ceph.cluster().conf)

    async def in_qemu() -> None:
        async with bare_qemu(tmp_path) as qmp:
            await qmp.blockdev_add(blockdev(volume_id, target, "raw"))
            assert node_name(volume_id) in await qmp.query_named_block_nodes()
            command = f'qemu-io {node_name(volume_id)} "write -P 0x77 4096 65536"'
            said = await qmp._run("human-monitor-command", {"command-line": command})
            assert "error" not in said.lower(), said
            snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
            assert (await asyncio.to_thread(wait_snapshot, ec2, snap_id))["State"] == "completed"
            copy = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=ZONE)["VolumeId"]
            await asyncio.to_thread(wait_volume, ec2, copy)
            assert pattern_at(pool, copy, 4096, 65536, 0x77)
            await qmp.block_resize(node_name(volume_id), 2 * GIB)
            assert info(pool, volume_id)["size"] == 2 * GIB
            await qmp.blockdev_del(node_name(volume_id))

    asyncio.run(in_qemu())


def _gone(ec2: Any, volume_id: str) -> bool:
    return not ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])[
        "Volumes"
    ]


def test_status_shows_the_pool(cloud: dict[str, Any]) -> None:
    report = json.loads(cloud["karri"].cli("status", "--json").stdout)
    volumes = report["volumes"]
    assert (volumes["backend"], volumes["pool"]) == ("rbd", cloud["pool"])
    assert volumes["health"].startswith("HEALTH_") and volumes["used_bytes"] > 0
    shown = cloud["karri"].cli("status").stdout
    assert f"Ceph RBD pool {cloud['pool']}" in shown


def test_a_ceph_outage_delays_volumes_and_the_cloud_recovers(cloud: dict[str, Any]) -> None:
    """With the cluster down, a new volume stays ``creating`` (its job waits, the API
    answers); once Ceph is back it becomes ``available`` by itself."""
    karri: Karri = cloud["karri"]
    ec2 = karri.client("ec2")
    cluster = ceph.cluster()
    cluster.stop()
    try:
        volume_id = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
        for _ in range(10):
            assert volume(ec2, volume_id)["State"] == "creating"
            time.sleep(1)
    finally:
        cluster.start()
    wait_volume(ec2, volume_id, timeout=180)
    assert volume_id in images(cloud["pool"])


def test_a_joined_node_reaches_ceph_with_the_access_it_is_handed(
    cloud: dict[str, Any], tmp_path: Path
) -> None:
    """A node on another host gets the cloud's Ceph access over the gateway and writes
    a client configuration of its own: with it alone, Ceph's own tool lists the cloud's
    volumes."""
    karri: Karri = cloud["karri"]
    volume_id = new_volume(karri.client("ec2"), 1)
    node_dir = tmp_path / "n1"
    process = start_node(karri, node_dir, "--cloud", karri.ec2_url, "--token", token(karri))
    try:
        wait_for(lambda: any(n["state"] == "ENABLED" for n in nodes(karri).values()))
        conf = node_dir / "ceph" / "ceph.conf"
        wait_for(conf.exists)
        assert str(ceph.cluster().dir) not in conf.read_text()  # nothing of the cloud's host
        listed = subprocess.run(
            ["rbd", "-c", str(conf), "--id", "admin", "ls", cloud["pool"]],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert listed.returncode == 0 and volume_id in listed.stdout.split(), listed
    finally:
        process.terminate()
        process.wait(timeout=30)
