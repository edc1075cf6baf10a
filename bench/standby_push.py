"""How soon a network change made through a standby front end is on the node (issue 19,
many-hosts step 7: the standby asks the leader with PostgreSQL's NOTIFY).

Two `karri up --no-local-node` on one data dir and a throwaway PostgreSQL
(tests/postgres.py), a `karri node --node-driver fake` on 127.0.0.2 joined through the
second (the standby), two instances running on it. Each round, through the standby and
then through the leader: a security group rule authorized (AuthorizeSecurityGroupIngress,
a new port each time), and an elastic IP moved from one instance to the other
(AssociateAddress with AllowReassociation). Timed: the call itself ("call"), and from
its return until the node's agent itself says it has the change (the fake node's
``summary()`` lists the groups it was told; ``info()`` the public address it maps),
polled over one kept mTLS connection as fast as it answers: each figure includes up to
one poll's round trip (the leader's own calls, in force when they return, show what that
is).

    .venv/bin/python bench/standby_push.py [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from karri.cloud.nodes.remote import RemoteNode  # noqa: E402
from tests import postgres  # noqa: E402
from tests.conftest import save_settings, stop_karri  # noqa: E402
from tests.integration.guests import tiny_image, wait_state  # noqa: E402
from tests.integration.test_front_ends import agent_url, front_end, health, roles  # noqa: E402
from tests.integration.test_node_transport import cloud_tls  # noqa: E402
from tests.integration.test_nodes_failover import start_node  # noqa: E402
from tests.integration.test_nodes_join import token, wait_for  # noqa: E402

BOUND = 60.0  # seconds: a change not seen by then is reported as such


def seen_after(check: Callable[[], bool]) -> float:
    """Seconds until ``check()`` holds (polled at once and again as fast as it answers)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > BOUND:
            return float("inf")
    return time.monotonic() - start


def measure(rounds: int, work: Path) -> dict[str, Any]:
    data = work / "data"
    data.mkdir(parents=True)
    save_settings(data, db_url=postgres.cluster().new_database())
    leader = front_end(data)
    standby = front_end(data)
    node: subprocess.Popen | None = None
    remote: RemoteNode | None = None
    try:
        assert roles(leader, standby) == ["leader", "standby"]
        node = start_node(
            standby, work / "n1", "--cloud", standby.ec2_url, "--token", token(standby),
            "--name", "n1",
        )  # fmt: skip
        wait_for(lambda: health(leader).get("connected_nodes") == ["n1"])
        remote = RemoteNode("n1", agent_url(node), cloud_tls(leader), timeout=20)
        clients = {"standby": standby.client("ec2"), "leader": leader.client("ec2")}
        ec2 = clients["standby"]
        image_id = tiny_image(standby, ec2)
        run = ec2.run_instances(ImageId=image_id, MinCount=2, MaxCount=2, InstanceType="t1.micro")
        ids = [i["InstanceId"] for i in run["Instances"]]
        shown = wait_state(ec2, ids[0], "running")
        wait_state(ec2, ids[1], "running")
        vpc_id, group_id = shown["VpcId"], shown["SecurityGroups"][0]["GroupId"]
        eip = ec2.allocate_address(Domain="vpc")
        node_remote = remote

        def ports() -> set[int]:
            groups = node_remote.summary()["told"]["groups"].get(vpc_id, [])
            return {
                r["from_port"] for g in groups if g["group_id"] == group_id for r in g["ingress"]
            }

        timings: dict[str, dict[str, list[float]]] = {
            via: {k: [] for k in ("rule call", "rule", "address call", "address")}
            for via in clients
        }
        port, holder = 3000, 0
        for _ in range(rounds):
            for via, client in clients.items():
                port += 1
                called = time.monotonic()
                client.authorize_security_group_ingress(
                    GroupId=group_id, IpProtocol="tcp", FromPort=port, ToPort=port,
                    CidrIp="10.9.0.0/16",
                )  # fmt: skip
                timings[via]["rule call"].append(time.monotonic() - called)
                timings[via]["rule"].append(seen_after(lambda p=port: p in ports()))
                holder = 1 - holder
                called = time.monotonic()
                client.associate_address(
                    AllocationId=eip["AllocationId"], InstanceId=ids[holder],
                    AllowReassociation=True,
                )  # fmt: skip
                timings[via]["address call"].append(time.monotonic() - called)
                timings[via]["address"].append(
                    seen_after(
                        lambda h=holder: node_remote.info(ids[h]).public_ip == eip["PublicIp"]
                    )
                )
        return {
            "rounds": rounds,
            "seconds": timings,
            "median_ms": {
                via: {what: round(statistics.median(v) * 1000, 1) for what, v in kinds.items()}
                for via, kinds in timings.items()
            },
            "load_average": os.getloadavg(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }
    finally:
        if remote is not None:
            asyncio.run(remote.disconnect())
        if node is not None:
            node.terminate()
            node.wait(timeout=30)
        stop_karri(standby)
        stop_karri(leader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="karri-standby-push-") as work:
        result = measure(args.rounds, Path(work))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for via, kinds in result["seconds"].items():
        for what, values in kinds.items():
            shown = ", ".join(f"{v * 1000:.0f}" for v in values)
            median = statistics.median(values) * 1000
            print(f"through the {via:7s} {what:12s}: {shown} ms (median {median:.0f})")
    print(f"load average {result['load_average'][0]:.1f} on {result['cpus']} CPUs")


if __name__ == "__main__":
    main()
