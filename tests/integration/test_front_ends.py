"""One reconciler, many front ends (many-hosts step 7): two `karri up --no-local-node`
on PostgreSQL sharing a data dir, each with its own ports and node gateway, and a `karri
node --node-driver fake` on 127.0.0.2 joined through the second. Both answer the API with
the same view; exactly one (the first) leads the background work; a RunInstances and a
CreateVolume through the standby complete (the leader's reconciler and EBS worker). The
leader SIGKILLed, the standby leads and a new RunInstances, TerminateInstances and
CreateVolume complete."""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

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


def _subnet(ec2: Any) -> str:
    return ec2.describe_subnets()["Subnets"][0]["SubnetId"]
