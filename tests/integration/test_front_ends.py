"""One reconciler, many front ends (many-hosts step 7): two `karri up --no-local-node`
on PostgreSQL sharing a data dir, each with its own ports and node gateway, and a `karri
node --node-driver fake` on 127.0.0.2 joined through the second. Both answer the API with
the same view; exactly one (the first) leads the background work; a RunInstances and a
CreateVolume through the standby complete (the leader's reconciler and EBS worker). The
leader SIGKILLed, the standby leads and a new RunInstances, TerminateInstances and
CreateVolume complete. A node learns every front end's gateway: the one it joined
through SIGKILLed, its heartbeats go on through the other (never BROKEN) and instances
still run and end on it. A change made through the standby reaches the node at once:
the leader pushes it when told (PostgreSQL's NOTIFY), and its listener hears again after
its session is ended."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import text

from karri.cloud.nodes.remote import RemoteNode
from karri.db.engine import make_engine
from karri.db.push_notify import CHANNEL, PgNotify, PushListener, listen_connection
from karri.node.membership import Membership
from tests import postgres
from tests.conftest import Karri, free_port, start_karri, stop_karri
from tests.integration.ebs import wait_volume
from tests.integration.guests import instance, tiny_image, wait_state
from tests.integration.test_node_transport import cloud_tls
from tests.integration.test_nodes_failover import start_node
from tests.integration.test_nodes_join import nodes, token, wait_for

pytestmark = pytest.mark.skipif(
    not postgres.wanted(), reason="front ends share a cloud on PostgreSQL only"
)

T = TypeVar("T")
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


def agent_url(node: subprocess.Popen) -> str:
    """Where the cloud reaches the node started by ``start_node`` (on 127.0.0.2)."""
    args = list(node.args)  # type: ignore[arg-type]
    return f"https://127.0.0.2:{args[args.index('--port') + 1]}"


def on_node(cloud: Karri, node: subprocess.Popen, ask: Callable[[RemoteNode], T]) -> T:
    """``ask`` of the node's agent itself, as the cloud calls it."""

    async def asking() -> T:
        remote = RemoteNode("n1", agent_url(node), cloud_tls(cloud), timeout=20)
        try:
            return await asyncio.to_thread(ask, remote)
        finally:
            await remote.disconnect()

    return asyncio.run(asking())


def ingress_ports(cloud: Karri, node: subprocess.Popen, vpc_id: str, group_id: str) -> set[int]:
    """The ingress ports of the group as the fake node was last told them."""
    told = on_node(cloud, node, lambda r: r.summary()["told"]["groups"])
    groups = {g["group_id"]: g for g in told.get(vpc_id, [])}
    return {rule["from_port"] for rule in groups.get(group_id, {}).get("ingress", [])}


def public_ip(cloud: Karri, node: subprocess.Popen, instance_id: str) -> str | None:
    """The public address the node maps for the instance."""
    return on_node(cloud, node, lambda r: r.info(instance_id).public_ip)


def test_a_change_through_the_standby_reaches_the_node_at_once(
    clouds: tuple[Karri, Karri], tmp_path: Path
) -> None:
    """Security group rules and elastic IPs changed through the standby are pushed by the
    leader when the standby tells it (NOTIFY), not at its resync (every 30 s, which never
    maps public addresses): each change is on the node within 10 s, two group changes in
    a row (a resync comes at most once in 30 s)."""
    first, second = clouds
    node = start_node(
        second, tmp_path / "n1", "--cloud", second.ec2_url, "--token", token(second),
        "--name", "n1",
    )  # fmt: skip
    try:
        wait_for(lambda: health(first).get("connected_nodes") == ["n1"])
        ec2 = second.client("ec2")  # through the standby
        image_id = tiny_image(second, ec2)
        run = ec2.run_instances(ImageId=image_id, MinCount=2, MaxCount=2, InstanceType="t1.micro")
        a, b = [i["InstanceId"] for i in run["Instances"]]
        shown = {i: wait_state(ec2, i, "running") for i in (a, b)}
        vpc_id = shown[a]["VpcId"]
        group_id = shown[a]["SecurityGroups"][0]["GroupId"]
        wait_for(lambda: public_ip(second, node, a) == shown[a].get("PublicIpAddress"))

        for port in (2222, 2223):
            ec2.authorize_security_group_ingress(
                GroupId=group_id, IpProtocol="tcp", FromPort=port, ToPort=port,
                CidrIp="10.9.0.0/16",
            )  # fmt: skip
            wait_for(lambda p=port: p in ingress_ports(second, node, vpc_id, group_id), 10)

        eip = ec2.allocate_address(Domain="vpc")
        ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=a)
        wait_for(lambda: public_ip(second, node, a) == eip["PublicIp"], 10)
        moved = ec2.associate_address(
            AllocationId=eip["AllocationId"], InstanceId=b, AllowReassociation=True
        )
        wait_for(lambda: public_ip(second, node, b) == eip["PublicIp"], 10)
        auto_a = instance(ec2, a).get("PublicIpAddress")
        assert auto_a != eip["PublicIp"]
        wait_for(lambda: public_ip(second, node, a) == auto_a, 10)
        ec2.disassociate_address(AssociationId=moved["AssociationId"])
        auto_b = instance(ec2, b).get("PublicIpAddress")
        assert auto_b != eip["PublicIp"]
        wait_for(lambda: public_ip(second, node, b) == auto_b, 10)
        ec2.terminate_instances(InstanceIds=[a, b])
        wait_state(ec2, a, "terminated")
        wait_state(ec2, b, "terminated")
    finally:
        node.terminate()
        node.wait(timeout=30)


def test_the_listener_hears_again_after_its_connection_is_ended() -> None:
    """The leader's listener on a real PostgreSQL: a request sent with ``PgNotify`` is
    heard; its session ended by the server (``pg_terminate_backend``), it listens again
    and asks for a resync, and hears the next request."""
    url = postgres.cluster().new_database()
    heard: list[str] = []
    missed = threading.Event()
    listener = PushListener(listen_connection(url), heard.append, missed.set, retry=0.2)
    engine = make_engine(url)
    try:
        listener.start()
        assert listener.listening.wait(10)
        notify = PgNotify(engine)
        notify("groups vpc-1")
        wait_for(lambda: heard == ["groups vpc-1"], 10)
        with engine.connect() as connection:
            ended = connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE query = :listen AND pid <> pg_backend_pid()"
                    " AND datname = current_database()"
                ),
                {"listen": f"LISTEN {CHANNEL}"},
            ).fetchall()
        assert ended == [(True,)]
        assert missed.wait(10)
        notify("addresses i-1 i-2")
        wait_for(lambda: heard == ["groups vpc-1", "addresses i-1 i-2"], 10)
    finally:
        listener.stop()
        engine.dispose()


def _subnet(ec2: Any) -> str:
    return ec2.describe_subnets()["Subnets"][0]["SubnetId"]
