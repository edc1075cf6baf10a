"""A node that dies (many-hosts step 7): a real `karri up --node-port` (its own node: the
fake driver) and a real `karri node --node-driver fake` on 127.0.0.2, SIGKILLed. Its
missed heartbeats make it BROKEN (`karri node list`, `karri status`); its instances'
SystemStatus is impaired (reachability failed) while they stay `running` as last observed;
one terminated meanwhile ends without it; `karri node evacuate` terminates the
instance-store one with a Server.InternalError reason. Restarted, the node is ENABLED,
connected again and takes new instances."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import KARRI, Karri, free_port
from tests.integration.ebs import new_volume, wait_snapshot
from tests.integration.guests import tiny_image, wait_state
from tests.integration.test_nodes_join import nodes, token, wait_for
from tests.integration.test_nodes_placement import cloud, connected, per_node

__all__ = ["cloud"]  # the module's cloud: `karri up --node-port`, round robin


def start_node(
    cloud: Karri, node_dir: Path, *args: str, host: str = "127.0.0.2"
) -> subprocess.Popen:
    log = open(node_dir.parent / f"{node_dir.name}.out", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [KARRI, "node", "--data-dir", str(node_dir), "--interval", "0.5", "--host", host,
         "--port", str(free_port()), "--node-driver", "fake", *args],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def join(cloud: Karri, tmp_path: Path, name: str, host: str) -> subprocess.Popen:
    """A new node ``name`` on ``host``, once it is ENABLED and connected."""
    process = start_node(
        cloud, tmp_path / name, "--cloud", cloud.ec2_url, "--token", token(cloud),
        "--name", name, host=host,
    )  # fmt: skip
    try:
        wait_for(lambda: nodes(cloud).get(name, {}).get("state") == "ENABLED")
        wait_for(lambda: name in connected(cloud))
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def run_tiny(cloud: Karri, count: int) -> tuple[str, list[str]]:
    """``count`` instances of the default image in one reservation, once all run."""
    ec2 = cloud.client("ec2")
    image_id = tiny_image(cloud, ec2)
    run = ec2.run_instances(
        ImageId=image_id, MinCount=count, MaxCount=count, InstanceType="t1.micro"
    )
    ids = [i["InstanceId"] for i in run["Instances"]]
    for instance_id in ids:
        wait_state(ec2, instance_id, "running")
    return image_id, ids


def terminate(ec2: Any, ids: list[str]) -> None:
    ec2.terminate_instances(InstanceIds=ids)
    for instance_id in ids:
        wait_state(ec2, instance_id, "terminated")


def system_status(cloud: Karri, instance_id: str) -> dict:
    ec2 = cloud.client("ec2")
    statuses = ec2.describe_instance_status(InstanceIds=[instance_id])["InstanceStatuses"]
    return statuses[0] if statuses else {}


def node_states(cloud: Karri) -> dict[str, int]:
    status = json.loads(cloud.cli("status", "--json").stdout)
    return status["counts"]["joined node states"]


def test_a_killed_node_turns_broken_and_comes_back(cloud: Karri, tmp_path: Path) -> None:
    node_dir = tmp_path / "n1"
    process = start_node(
        cloud, node_dir, "--cloud", cloud.ec2_url, "--token", token(cloud), "--name", "n1"
    )
    try:
        wait_for(lambda: nodes(cloud).get("n1", {}).get("state") == "ENABLED")
        wait_for(lambda: connected(cloud) == ["n1"])
        ec2 = cloud.client("ec2")
        image_id, ids = run_tiny(cloud, 4)
        assert per_node(cloud) == {"n1": 2}
        on_n1 = ids[1::2]  # round robin: the cloud's own node first, then n1

        process.send_signal(signal.SIGKILL)
        process.wait()
        wait_for(lambda: nodes(cloud)["n1"]["state"] == "BROKEN")
        assert node_states(cloud) == {"BROKEN": 1}
        wait_for(lambda: system_status(cloud, on_n1[0])["SystemStatus"]["Status"] == "impaired")
        status = system_status(cloud, on_n1[0])
        details = status["SystemStatus"]["Details"]
        assert [(d["Name"], d["Status"]) for d in details] == [("reachability", "failed")]
        assert "ImpairedSince" in details[0]
        assert status["InstanceState"]["Name"] == "running"  # as last observed
        assert status["InstanceStatus"]["Status"] == "insufficient-data"
        own = system_status(cloud, ids[0])["SystemStatus"]["Status"]
        assert own != "impaired"  # the cloud's own node is fine

        ec2.terminate_instances(InstanceIds=[on_n1[1]])  # ends without its node
        wait_state(ec2, on_n1[1], "terminated")
        refused = cloud.cli("node", "evacuate", "n9", check=False)
        assert refused.returncode != 0 and "no node named n9" in refused.stderr
        evacuated = cloud.cli("node", "evacuate", "n1")
        assert f"{on_n1[0]}\tterminated" in evacuated.stdout
        wait_state(ec2, on_n1[0], "terminated")
        described = ec2.describe_instances(InstanceIds=[on_n1[0]])
        reason = described["Reservations"][0]["Instances"][0]["StateReason"]
        assert reason == {
            "Code": "Server.InternalError",
            "Message": "Server.InternalError: its node failed (n1)",
        }

        process = start_node(cloud, node_dir)  # joined already: no token
        wait_for(lambda: nodes(cloud)["n1"]["state"] == "ENABLED")
        assert node_states(cloud) == {"ENABLED": 1}
        live = cloud.cli("node", "evacuate", "n1", check=False)
        assert live.returncode != 0 and "only a BROKEN node" in live.stderr
        wait_for(lambda: connected(cloud) == ["n1"])
        again = ec2.run_instances(ImageId=image_id, MinCount=2, MaxCount=2)
        new_ids = [i["InstanceId"] for i in again["Instances"]]
        for instance_id in new_ids:
            wait_state(ec2, instance_id, "running")  # one of them on n1, connected again
        assert per_node(cloud) == {"n1": 1}
        ec2.terminate_instances(InstanceIds=ids + new_ids)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_ebs_instance_of_a_dead_node_is_forced_to_stop_and_starts_elsewhere(
    cloud: Karri, tmp_path: Path
) -> None:
    """n2 runs an EBS-backed instance (its root volume exported to it over NBD) and dies: a
    plain stop waits, StopInstances Force=true stops it, StartInstances runs it on the
    cloud's own node (n1 and n2 both BROKEN by then)."""
    # n1, killed at the end of the test before, takes no instance once it is BROKEN
    wait_for(lambda: nodes(cloud).get("n1", {}).get("state") in (None, "BROKEN"), 120)
    process = join(cloud, tmp_path, "n2", "127.0.0.3")
    try:
        ec2 = cloud.client("ec2")
        snapshot_id = ec2.create_snapshot(VolumeId=new_volume(ec2))["SnapshotId"]
        wait_snapshot(ec2, snapshot_id)
        image_id = ec2.register_image(
            Name="failover-ebs",
            RootDeviceName="/dev/sda1",
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": snapshot_id}}],
        )["ImageId"]
        run = ec2.run_instances(ImageId=image_id, MinCount=2, MaxCount=2, InstanceType="t1.micro")
        ids = [i["InstanceId"] for i in run["Instances"]]
        for instance_id in ids:
            wait_state(ec2, instance_id, "running")
        assert per_node(cloud)["n2"] == 1

        process.send_signal(signal.SIGKILL)
        process.wait()
        wait_for(lambda: nodes(cloud)["n2"]["state"] == "BROKEN")

        def impaired() -> list[str]:
            return [
                i for i in ids if system_status(cloud, i)["SystemStatus"]["Status"] == "impaired"
            ]

        wait_for(lambda: len(impaired()) == 1)
        dead = impaired()[0]
        ec2.stop_instances(InstanceIds=[dead])  # waits for its node
        ec2.stop_instances(InstanceIds=[dead], Force=True)
        wait_state(ec2, dead, "stopped")
        described = ec2.describe_instances(InstanceIds=[dead])["Reservations"][0]["Instances"][0]
        assert described["StateReason"]["Code"] == "Server.InternalError"
        ec2.start_instances(InstanceIds=[dead])
        wait_state(ec2, dead, "running")  # on the cloud's own node
        assert per_node(cloud)["n2"] == 0
        assert system_status(cloud, dead)["SystemStatus"]["Status"] != "impaired"
        terminate(ec2, ids)
    finally:
        process.kill()
        process.wait(timeout=30)


def test_a_dead_node_fails_no_launch_elsewhere_in_its_vpc(cloud: Karri, tmp_path: Path) -> None:
    """n3 holds an instance of the default VPC and dies: launches of that VPC on the cloud's
    own node reach `running` while n3 does not answer yet (its push fails, passed over)
    and once it is BROKEN (not told at all); it is told everything when it is back."""
    process = join(cloud, tmp_path, "n3", "127.0.0.4")
    try:
        ec2 = cloud.client("ec2")
        image_id, ids = run_tiny(cloud, 2)
        assert per_node(cloud)["n3"] == 1
        cloud.cli("node", "disable", "n3")  # new instances go to the cloud's own node

        process.send_signal(signal.SIGKILL)
        process.wait()
        unanswered = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
        ids.append(unanswered["Instances"][0]["InstanceId"])
        wait_state(ec2, ids[-1], "running")
        wait_for(lambda: nodes(cloud)["n3"]["state"] == "BROKEN")
        broken = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
        ids.append(broken["Instances"][0]["InstanceId"])
        wait_state(ec2, ids[-1], "running")
        assert per_node(cloud)["n3"] == 1

        process = start_node(cloud, tmp_path / "n3", host="127.0.0.4")  # joined already
        wait_for(lambda: "n3" in connected(cloud))
        terminate(ec2, ids)
    finally:
        process.kill()
        process.wait(timeout=30)
