"""A real guest on a joined node (many-hosts step 5): a real `karri up` and, on the same
host, a second `karri node` with the QEMU driver and its own data dir, joined in a zone
of its own. RunInstances into that zone boots the tiny guest there (TCG as the host
allows): its image fetched by the node through a presigned URL, its metadata answered by
the node's metadata service with what the cloud's gateway tells it (the user data ran),
its identity document's signed views made by the cloud for it, its console output read
from that node; a volume attached to it is the cloud's file over NBD, through n1's relay
(the guest's QEMU runs in its VPC's namespace); TerminateInstances ends its QEMU there."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KARRI, Karri, free_port, start_karri
from tests.integration.ebs import volume_file, wait_until, wait_volume
from tests.integration.guests import (
    end_cloud,
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
from tests.integration.test_nodes_join import nodes, token, wait_for
from tests.integration.test_nodes_placement import connected
from tests.node.signing import check_signature, pkcs7_content

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")

ZONE = "eucalyptus-1b"
HELLO = '#!/bin/sh\necho "karri-test: hello from the joined node"\n'


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    data = tmp_path_factory.mktemp("qemu-node") / "data"
    subprocess.run([KARRI, "zone", "create", ZONE, "--data-dir", str(data)], check=True)
    karri = start_karri(data, "--node-port", str(free_port()))
    try:
        yield karri
    finally:
        end_cloud(karri, wait=True)


@pytest.fixture(scope="module")
def node(cloud: Karri, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """n1, QEMU driver, zone eucalyptus-1b, agent on 127.0.0.2: its data dir."""
    with qemu_node(cloud, tmp_path_factory.mktemp("qemu-node") / "n1", ZONE) as node_dir:
        yield node_dir


@contextlib.contextmanager
def qemu_node(cloud: Karri, node_dir: Path, zone: str | None) -> Iterator[Path]:
    """``karri node`` n1 with the QEMU driver and its data dir ``node_dir``, its agent on
    127.0.0.2, joined in ``zone`` (None: the cloud's first), until its guests ended."""
    node_dir.mkdir(parents=True, exist_ok=True)
    log = open(node_dir.parent / "n1.out", "ab")  # noqa: SIM115
    command = [
        KARRI, "node", "--data-dir", str(node_dir), "--cloud", cloud.ec2_url,
        "--token", token(cloud), "--name", "n1", "--interval", "1",
        "--host", "127.0.0.2", "--port", str(free_port()),
        *(("--zone", zone) if zone else ()),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: nodes(cloud).get("n1", {}).get("state") == "ENABLED", 180)
        wait_for(lambda: connected(cloud) == ["n1"], 180)
        yield node_dir
    finally:
        terminate_all(cloud.client("ec2"), wait=True, timeout=300)  # while n1 runs: there
        process.terminate()
        process.wait(timeout=120)
        log.close()
        subprocess.run([KARRI, "down", "--guests", "--data-dir", str(node_dir)], check=False)


def qemu_of(node_dir: Path) -> list[str]:
    """The command lines of the QEMU processes whose files are in the node's data dir."""
    found = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if str(node_dir) in line]


@pytest.fixture(scope="module")
def guest(cloud: Karri, node: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny guest launched into n1's zone, reachable by ssh: its id and key."""
    ec2 = cloud.client("ec2")
    image_id = tiny_image(cloud, ec2)
    key = key_file(ec2, tmp_path_factory.mktemp("key"), "n1")
    open_port(ec2, 22)
    run = ec2.run_instances(
        ImageId=image_id, MinCount=1, MaxCount=1, UserData=HELLO, KeyName="n1",
        Placement={"AvailabilityZone": ZONE},
    )  # fmt: skip
    instance_id = run["Instances"][0]["InstanceId"]
    wait_state(ec2, instance_id, "running", timeout=300)
    return {"id": instance_id, "key": key}


def test_a_guest_boots_on_the_joined_node(cloud: Karri, node: Path, guest: dict) -> None:
    ec2 = cloud.client("ec2")
    instance_id = guest["id"]
    assert any(instance_id in line for line in qemu_of(node))  # its QEMU is n1's
    text = wait_console(ec2, instance_id, "karri-tiny: boot complete")
    assert f"karri-tiny: instance {instance_id} boot 1" in text  # n1's metadata service
    assert "karri-test: hello from the joined node" in text  # the user data, through it
    assert json.loads(cloud.cli("node", "list", "--json").stdout)[0]["instances"] == 1


def test_the_guest_reads_its_identity_document_signed_by_the_cloud(
    cloud: Karri, guest: dict, tmp_path: Path
) -> None:
    """n1 has no key: its metadata service serves the views the cloud signed for it, which
    the cloud's certificate (`karri cloud-cert`) verifies."""
    ec2 = cloud.client("ec2")
    address = instance(ec2, guest["id"])["PublicIpAddress"]

    def fetched(view: str) -> str:
        url = f"http://169.254.169.254/latest/dynamic/instance-identity/{view}"
        return ssh(guest["key"], address, f"wget -qO- {url}")

    document = fetched("document").encode()
    assert json.loads(document)["instanceId"] == guest["id"]
    cert = cloud.cli("cloud-cert").stdout.encode()
    check_signature(cert, document, fetched("signature").encode())
    assert pkcs7_content(cert, fetched("pkcs7"), tmp_path) == document
    assert fetched("rsa2048") == fetched("pkcs7")


def test_a_volume_reaches_the_guest_over_nbd(cloud: Karri, node: Path, guest: dict) -> None:
    """Attached to the guest on n1, the volume is the cloud's file exported over NBD (TLS,
    n1's certificate), reached from the guest's namespace through n1's relay: what the
    guest writes is in that file after the detach."""
    ec2 = cloud.client("ec2")
    instance_id = guest["id"]
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    wait_volume(ec2, volume_id)
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    wait_until(lambda: attachment_state(ec2, volume_id) == "attached", 120)
    address = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
        "PublicIpAddress"
    ]
    find = FIND.format(vol=volume_id)
    device = wait_until(lambda: ssh(guest["key"], address, find).strip(), 60, 1)
    marker = f"NBD-MARKER-{volume_id}"
    ssh(guest["key"], address, f"printf '{marker}' > {device}; sync")
    ec2.detach_volume(VolumeId=volume_id)
    wait_volume(ec2, volume_id)
    with open(volume_file(cloud, volume_id), "rb") as f:
        assert f.read(len(marker)) == marker.encode()
    assert not list((node / "node" / "nbd").glob("*.sock"))  # its relay ended


def test_terminate_ends_the_guest_on_its_node(cloud: Karri, node: Path, guest: dict) -> None:
    ec2 = cloud.client("ec2")
    instance_id = guest["id"]
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated", timeout=300)
    wait_for(lambda: not any(instance_id in line for line in qemu_of(node)), 60)
