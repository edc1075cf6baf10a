"""One reconciler, many front ends (many-hosts step 7): two `karri up --no-local-node`
on PostgreSQL sharing a data dir, each with its own ports and node gateway, and a `karri
node --node-driver fake` on 127.0.0.2 joined through the second. Both answer the API with
the same view; exactly one (the first) leads the background work; a RunInstances and a
CreateVolume through the standby complete (the leader's reconciler and EBS worker). The
leader SIGKILLed, the standby leads and a new RunInstances, TerminateInstances and
CreateVolume complete. A node learns every front end's gateway: the one it joined
through SIGKILLed, its heartbeats go on through the other (never BROKEN) and instances
still run and end on it."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from karri.node.membership import Membership
from tests import postgres
from tests.conftest import Karri, free_port, start_karri, stop_karri
from tests.integration.ebs import wait_volume
from tests.integration.guests import tiny_image, wait_state
from tests.integration.test_nodes_failover import start_node
from tests.integration.test_nodes_join import nodes, token, wait_for

pytestmark = pytest.mark.skipif(
    not postgres.wanted(), reason="front ends share a cloud on PostgreSQL only"
)

TAKEOVER = 60  # seconds: far above the bound (a poll, 2 s, once the lock is dropped)


def front_end(data: Path) -> Karri:
    return start_karri(data, "--no-local-node", "--node-port", str(free_port()))


def gateway_of(cloud: Karri) -> str:
    """Where nodes reach the front end (its ``--node-port``)."""
    args = list(cloud.process.args)  # type: ignore[arg-type]
    return f"https://127.0.0.1:{args[args.index('--node-port') + 1]}"


def health(cloud: Karri) -> dict:
    with urllib.request.urlopen(cloud.ec2_url + "/karri/health", timeout=10) as reply:
        return json.loads(reply.read())


def roles(*clouds: Karri) -> list[str]:
    return [health(c)["background_work"] for c in clouds]


def described(cloud: Karri) -> dict[str, str]:
    ec2 = cloud.client("ec2")
    reservations = ec2.describe_instances()["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}


@pytest.fixture
def clouds(tmp_path: Path) -> Iterator[tuple[Karri, Karri]]:
    data = tmp_path / "data"
    first = front_end(data)
    try:
        second = front_end(data)  # the same data dir: shared, on PostgreSQL
        try:
            yield first, second
        finally:
            stop_karri(second)
    finally:
        stop_karri(first)


def test_the_standby_takes_over_the_background_work(
    clouds: tuple[Karri, Karri], tmp_path: Path
) -> None:
    first, second = clouds
    assert roles(first, second) == ["leader", "standby"]
    status = json.loads(second.cli("status", "--json").stdout)
    assert status["background_work"] == "standby"  # runtime.json names the last started
    node = start_node(
        second, tmp_path / "n1", "--cloud", second.ec2_url, "--token", token(second),
        "--name", "n1",
    )  # fmt: skip
    try:
        wait_for(lambda: nodes(second).get("n1", {}).get("state") == "ENABLED")
        wait_for(lambda: health(first).get("connected_nodes") == ["n1"])
        ec2 = second.client("ec2")  # through the standby
        image_id = tiny_image(second, ec2)
        with pytest.raises(ClientError, match="UnsupportedOperation"):
            ec2.create_nat_gateway(SubnetId=_subnet(ec2), ConnectivityType="private")

        run = ec2.run_instances(ImageId=image_id, MinCount=2, MaxCount=2, InstanceType="t1.micro")
        ids = [i["InstanceId"] for i in run["Instances"]]
        for instance_id in ids:
            wait_state(ec2, instance_id, "running")  # launched by the leader's reconciler
        assert described(first) == described(second)
        zone = run["Instances"][0]["Placement"]["AvailabilityZone"]
        volume_id = ec2.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]
        wait_volume(ec2, volume_id, "available")  # made by the leader's EBS worker
        assert roles(first, second) == ["leader", "standby"]  # still

        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        wait_for(lambda: roles(second) == ["leader"], TAKEOVER)
        wait_for(lambda: health(second).get("connected_nodes") == ["n1"], TAKEOVER)
        again = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
        new_id = again["Instances"][0]["InstanceId"]
        wait_state(ec2, new_id, "running")
        ec2.terminate_instances(InstanceIds=[ids[0], new_id])
        wait_state(ec2, ids[0], "terminated")
        wait_state(ec2, new_id, "terminated")
        other = ec2.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]
        wait_volume(ec2, other, "available")
        ec2.terminate_instances(InstanceIds=ids)
    finally:
        node.terminate()
        node.wait(timeout=30)


def test_a_node_goes_on_through_another_front_ends_gateway(
    clouds: tuple[Karri, Karri], tmp_path: Path
) -> None:
    first, second = clouds
    node_dir = tmp_path / "n1"
    node = start_node(
        second, node_dir, "--cloud", second.ec2_url, "--token", token(second), "--name", "n1",
    )  # fmt: skip

    def known() -> Membership:
        membership = Membership.load(node_dir)
        assert membership is not None
        return membership

    try:
        wait_for(lambda: health(first).get("connected_nodes") == ["n1"])
        both = {gateway_of(first), gateway_of(second)}
        wait_for(lambda: set(known().gateways) == both)  # a heartbeat's answer listed them
        assert known().gateway == gateway_of(second)
        ec2 = first.client("ec2")
        image_id = tiny_image(first, ec2)
        before = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
        before_id = before["Instances"][0]["InstanceId"]
        wait_state(ec2, before_id, "running")

        second.process.send_signal(signal.SIGKILL)
        second.process.wait()
        killed = time.monotonic()
        wait_for(lambda: known().gateway == gateway_of(first), 10)
        while time.monotonic() - killed < 10:  # far above the bound: 3 beats of 0.5 s
            assert nodes(first)["n1"]["state"] == "ENABLED"
        again = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
        new_id = again["Instances"][0]["InstanceId"]
        wait_state(ec2, new_id, "running")  # placed on n1, the only node
        ec2.terminate_instances(InstanceIds=[before_id, new_id])
        wait_state(ec2, before_id, "terminated")
        wait_state(ec2, new_id, "terminated")
        assert nodes(first)["n1"]["state"] == "ENABLED"

        node.terminate()  # restarted, it starts with the gateway that answered last
        node.wait(timeout=30)
        wait_for(lambda: nodes(first)["n1"]["state"] == "BROKEN")
        node = start_node(first, node_dir)
        wait_for(lambda: nodes(first)["n1"]["state"] == "ENABLED")
        assert (tmp_path / "n1.out").read_bytes().count(b"cannot be reached") == 1  # B's
    finally:
        node.terminate()
        node.wait(timeout=30)


def _subnet(ec2: Any) -> str:
    return ec2.describe_subnets()["Subnets"][0]["SubnetId"]
