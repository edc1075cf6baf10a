"""Many hosts as network namespaces (issue 19's tests): three "hosts" on one test network
(tests/hosts.py: a bridge in a namespace of its own, 10.250.X.0/24 existing only there),
guest-free. Host 1 runs the cloud, `karri up --host 10.250.X.1 --node-port …
--node-driver fake`: its EC2, S3 and node gateway listen on that address only (its own
node is in process: with the fake driver it makes no namespace). Hosts 2 and 3 each run
a real `karri node --node-driver fake --host 10.250.X.N` with its own data dir, joined
with a token over the test network, in a zone of their own (`karri zone create`), so
that a launch in that zone goes to them and not to the cloud's own node.

The test process stays in the machine's namespace, which has no route of its own to the
test network (its default route may lead anywhere). It talks to the cloud as a client on
host 1 would: its boto3 calls and health probes run in a thread that entered host 1's
namespace (`Karri.call`, `InHost`: a socket stays in the namespace it was opened in), and
the `karri` CLI runs there with `ip netns exec` (the admin's commands on the cloud's
host). Nothing is added to the machine's own namespace, and nothing listens on its
interfaces. The data dirs are ordinary directories of the test's temp dir (and
PostgreSQL, under KARRI_TEST_DB, a unix socket in the filesystem), so every namespace
sees them.

MaxCount=4 in the nodes' zone spreads over both nodes in one reservation (2 and 2 in
`karri node list --json`); host 2's node SIGKILLed turns BROKEN and its instances'
SystemStatus impaired while host 3's stay fine; restarted (no token), it is ENABLED and
takes instances again. The hosts' processes and namespaces end at the module's end, also
when a test fails."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import KARRI, Karri, start_karri, stop_karri
from tests.hosts import Host, Hosts
from tests.integration.guests import tiny_image, wait_state
from tests.integration.test_nodes_failover import system_status
from tests.integration.test_nodes_join import nodes, token, wait_for
from tests.integration.test_nodes_placement import connected, per_node

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")

ZONE = "eucalyptus-1b"  # the nodes' zone; the cloud's own node is in the first one
NODE_PORT, AGENT_PORT = 8775, 8776  # each host's ports are its own


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    made = Hosts(f"karri-test-host-{os.getpid()}")
    try:
        yield made
    finally:
        made.close()
    assert not made.left()


@pytest.fixture(scope="module")
def cloud(hosts: Hosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    data = tmp_path_factory.mktemp("nshosts") / "data"
    subprocess.run([KARRI, "zone", "create", ZONE, "--data-dir", str(data)], check=True)
    karri = start_karri(
        data, "--node-driver", "fake", "--node-port", str(NODE_PORT), on=hosts.host(1)
    )
    try:
        yield karri
    finally:
        stop_karri(karri)


class Node:
    """`karri node` (``driver``) in a host of its own, with its own data dir."""

    def __init__(self, name: str, host: Host, data_dir: Path, driver: str = "fake") -> None:
        self.name, self.host, self.data_dir, self.driver = name, host, data_dir, driver
        self.process: subprocess.Popen | None = None

    def start(self, *join: str) -> None:
        command = [
            KARRI, "node", "--data-dir", str(self.data_dir), "--name", self.name,
            "--zone", ZONE, "--interval", "0.5", "--host", self.host.address,
            "--port", str(AGENT_PORT), "--node-driver", self.driver, *join,
        ]  # fmt: skip
        log = self.data_dir.parent / f"{self.name}.out"
        self.process = self.host.popen(command, log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    @property
    def agent(self) -> str:
        return f"https://{self.host.address}:{AGENT_PORT}"


@pytest.fixture(scope="module")
def fleet(
    cloud: Karri, hosts: Hosts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Node]]:
    """Nodes n2 and n3 on hosts 2 and 3, joined and connected; stopped before the cloud
    (a `karri up` still heard by a live node takes 30 s to stop). Whatever is left of
    them ends with ``hosts``."""
    base = tmp_path_factory.mktemp("nshosts-nodes")
    joined = {f"n{n}": Node(f"n{n}", hosts.host(n), base / f"n{n}") for n in (2, 3)}
    try:
        tokens = [token(cloud) for _ in joined]
        for node, given in zip(joined.values(), tokens, strict=True):
            node.start("--cloud", cloud.ec2_url, "--token", given)
        wait_for(lambda: reachable(cloud) == sorted(joined))
        listed = nodes(cloud)
        for name, node in joined.items():
            assert listed[name]["state"] == "ENABLED"
            assert listed[name]["agent"] == node.agent  # over the test network
        yield joined
    finally:
        for node in joined.values():
            node.stop()


def reachable(cloud: Karri) -> list[str]:
    """The joined nodes the cloud reaches (not BROKEN), from its health answer: cheaper to
    poll than `karri node list`, a new Python process each time."""
    return cloud.call(lambda: connected(cloud))


def impaired(cloud: Karri, instance_id: str) -> bool:
    return system_status(cloud, instance_id).get("SystemStatus", {}).get("Status") == "impaired"


def test_a_launch_spreads_over_two_hosts_and_a_killed_one_breaks_and_returns(
    cloud: Karri, fleet: dict[str, Node]
) -> None:
    ec2 = cloud.client("ec2")
    image_id = tiny_image(cloud, ec2)
    run = ec2.run_instances(
        ImageId=image_id, MinCount=4, MaxCount=4, InstanceType="t1.micro",
        Placement={"AvailabilityZone": ZONE},
    )  # fmt: skip
    ids = [i["InstanceId"] for i in run["Instances"]]
    for instance_id in ids:
        wait_state(ec2, instance_id, "running")
    reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    assert len(reservations) == 1 and len(reservations[0]["Instances"]) == 4
    assert {i["Placement"]["AvailabilityZone"] for i in reservations[0]["Instances"]} == {ZONE}
    assert per_node(cloud) == {"n2": 2, "n3": 2}

    fleet["n2"].kill()
    wait_for(lambda: reachable(cloud) == ["n3"])
    assert {n: v["state"] for n, v in nodes(cloud).items()} == {"n2": "BROKEN", "n3": "ENABLED"}
    wait_for(lambda: sum(impaired(cloud, i) for i in ids) == 2)
    on_n2 = [i for i in ids if impaired(cloud, i)]
    status = system_status(cloud, on_n2[0])
    details = status["SystemStatus"]["Details"]
    assert [(d["Name"], d["Status"]) for d in details] == [("reachability", "failed")]
    assert status["InstanceState"]["Name"] == "running"  # as last observed
    on_n3 = [i for i in ids if i not in on_n2]
    assert all(system_status(cloud, i)["SystemStatus"]["Status"] != "impaired" for i in on_n3)

    fleet["n2"].start()  # joined already: no token
    wait_for(lambda: reachable(cloud) == ["n2", "n3"])
    assert nodes(cloud)["n2"]["state"] == "ENABLED"
    # the fake node kept nothing across its death: the cloud ends what it no longer runs
    for instance_id in on_n2:
        wait_state(ec2, instance_id, "terminated")
    again = ec2.run_instances(
        ImageId=image_id, MinCount=2, MaxCount=2, Placement={"AvailabilityZone": ZONE}
    )
    new_ids = [i["InstanceId"] for i in again["Instances"]]
    for instance_id in new_ids:
        wait_state(ec2, instance_id, "running")
    assert per_node(cloud) == {"n2": 1, "n3": 3}
    ec2.terminate_instances(InstanceIds=on_n3 + new_ids)
    for instance_id in on_n3 + new_ids:
        wait_state(ec2, instance_id, "terminated")
    assert per_node(cloud) == {"n2": 0, "n3": 0}
