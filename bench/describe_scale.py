"""DescribeInstances at 10,000 instances (issue 19), on SQLite and on PostgreSQL.

A real `karri up --node-driver fake` (no guests run: the API, database, filters and XML
rendering are the real ones) is filled through the API: RunInstances of ``--batch``
instances at a time (MinCount = MaxCount), each batch in a VPC of its own (a /20 subnet),
until ``--scale`` instances are ``running``; what the fill costs is reported (each
RunInstances' answer, the time until all are running, the controller's CPU).

Then, ``--calls`` times each, signed by botocore and timed to the last byte over HTTP:

- ``unpaginated``: one DescribeInstances without MaxResults, one answer listing all the
  instances (as AWS answers when MaxResults is absent);
- ``paginated``: the walk of MaxResults=1000 pages with their NextToken, as a paginator
  with ``PageSize: 1000`` makes it, timed whole;

and boto3's ``describe_instances()`` end to end (its XML parsing included) a few times.

``--work DIR`` keeps the filled cloud: a later run with the same ``--work`` starts a new
`karri up` on it (other code, same data) instead of filling again. The FakeNode forgets its
instances when `karri up` stops, so before that restart the instances are recorded as placed
on a node that is absent (``ABSENT_NODE``): a controller leaves such instances as they were
last observed (``cloud/instances/failover.py``), so DescribeInstances lists the same 10,000
``running`` instances. PostgreSQL is a cluster of the bench's own in ``DIR/pg`` (fsync
off, as the tests' ``tests/postgres.py``), left running for the next run (``--stop-pg``).

    .venv/bin/python bench/describe_scale.py [--db sqlite,postgresql] [--scale 10000]
        [--batch 1000] [--calls 20] [--walks 20] [--boto3-calls 5] [--work DIR] [--stop-pg] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from cluster import cpu_seconds, machine  # noqa: E402  (bench/cluster.py)

from karri.config import save_settings, saved_db_url  # noqa: E402
from tests import postgres  # noqa: E402
from tests.conftest import Karri, start_karri, stop_karri  # noqa: E402
from tests.integration.guests import tiny_image  # noqa: E402

BENCH_TYPE = "bench.fake"  # 1 vCPU, 1 MiB: ten thousand fit the fake node's report
ABSENT_NODE = "bench-absent-node"
FILLED = "filled.json"
SUBNETS = 4  # VPCs of the bench's own, a subnet each
PAGE = 1000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def figures(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 1),
        "p90_ms": round(percentile(values, 0.9), 1),
        "min_ms": round(min(values), 1),
        "max_ms": round(max(values), 1),
    }


class SignedCaller:
    """DescribeInstances over one keep-alive HTTP connection, each request signed by
    botocore (SigV4), timed from the request's first byte to the answer's last."""

    def __init__(self, karri: Karri) -> None:
        self.karri = karri
        self.creds = Credentials(karri.admin.access_key_id, karri.admin.secret_access_key)
        self.connection = http.client.HTTPConnection(urlsplit(karri.ec2_url).netloc, timeout=300)

    def call(self, params: dict[str, str]) -> tuple[float, bytes]:
        body = "&".join(f"{k}={v}" for k, v in {"Action": "DescribeInstances", **params}.items())
        body += "&Version=2016-11-15"
        request = AWSRequest(
            method="POST",
            url=self.karri.ec2_url + "/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        SigV4Auth(self.creds, "ec2", self.karri.region).add_auth(request)
        started = time.perf_counter()
        self.connection.request("POST", "/", body=body, headers=dict(request.headers))
        response = self.connection.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise SystemExit(f"DescribeInstances: HTTP {response.status}: {payload[:500]!r}")
        return elapsed, payload

    def unpaginated(self, at_least: int) -> float:
        elapsed, payload = self.call({})
        assert payload.count(b"<name>running</name>") >= at_least
        return elapsed

    def paginated(self, at_least: int) -> float:
        """The whole walk of MaxResults=1000 pages."""
        total, listed, token = 0.0, 0, None
        while True:
            params = {"MaxResults": str(PAGE)}
            if token:
                params["NextToken"] = token
            elapsed, payload = self.call(params)
            total += elapsed
            listed += payload.count(b"<instanceId>")
            found = re.search(rb"<nextToken>([^<]+)</nextToken>", payload)
            if found is None:
                break
            token = found.group(1).decode()
        assert listed >= at_least, listed
        return total


class Cloud:
    """A `karri up --node-driver fake` on a work dir of its own (SQLite or PostgreSQL)."""

    def __init__(self, work: Path, db: str, scale: int) -> None:
        self.data = work / db / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.db = db
        if db == "postgresql" and not saved_db_url(self.data):
            save_settings(self.data, db_url=new_pg_database(work))
        overcommit = str(scale // (os.cpu_count() or 1) + 8)  # the node reports its CPUs
        fake = ("--node-driver", "fake", "--cpu-overcommit", overcommit)
        self.karri = start_karri(self.data, *fake)
        try:
            sizes = ("--cpu", "1", "--memory", "1", "--disk", "1")
            self.karri.cli("vmtype", "set", BENCH_TYPE, *sizes)
            self.ec2 = self.karri.client("ec2")
        except BaseException:
            stop_karri(self.karri)
            raise

    @property
    def filled(self) -> dict | None:
        path = self.data.parent / FILLED
        return json.loads(path.read_text()) if path.exists() else None

    def fill(self, scale: int, batch: int) -> dict:
        """RunInstances of ``batch`` at a time until ``scale``, over subnets of
        ``SUBNETS`` VPCs in turn (an account has at most 5 VPCs, its default one
        included); the launches themselves are left undone (see ``close``)."""
        image_id = tiny_image(self.karri, self.ec2)
        subnets = [self.new_subnet() for _ in range(SUBNETS)]
        controller = self.karri.process.pid
        cpu_before, started = cpu_seconds(controller), time.perf_counter()
        answers: list[float] = []
        for n, launched in enumerate(range(0, scale, batch)):
            count = min(batch, scale - launched)
            call = time.perf_counter()
            self.ec2.run_instances(
                ImageId=image_id, MinCount=count, MaxCount=count, InstanceType=BENCH_TYPE,
                SubnetId=subnets[n % SUBNETS],
            )  # fmt: skip
            answers.append(time.perf_counter() - call)
            print(f"{self.db}: RunInstances of {count}: {answers[-1]:.1f} s", file=sys.stderr)
        result = {
            "instances": scale,
            "batch": batch,
            "run_instances_answer": figures([a * 1000 for a in answers]),
            "all_answered_s": round(time.perf_counter() - started, 1),
            "controller_cpu_s": round(cpu_seconds(controller) - cpu_before, 1),
            "load_at_end": [round(x, 2) for x in os.getloadavg()],
        }
        (self.data.parent / FILLED).write_text(json.dumps(result))
        return result

    def new_subnet(self) -> str:
        """A new VPC with a /20 subnet (4,091 addresses)."""
        vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/20")
        return subnet["Subnet"]["SubnetId"]

    def running(self) -> int:
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["running"]}],
            PaginationConfig={"PageSize": PAGE},
        )
        return sum(len(r["Instances"]) for p in pages for r in p["Reservations"])

    def wait_running(self, total: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (running := self.running()) < total:
            if time.monotonic() > deadline:
                raise SystemExit(f"{running} of {total} instances running after {timeout} s")
            time.sleep(2)

    def close(self) -> None:
        """Stop `karri up`, then record its instances as launched on a node that is absent
        (see the module's doc): what a launch records (``Reconciler._launch``'s ``mark``),
        without the launch."""
        stop_karri(self.karri)
        launched = (
            f"UPDATE instances SET node = '{ABSENT_NODE}', state = 'running', "
            "boot_count = boot_count + (CASE WHEN state = 'pending' THEN 1 ELSE 0 END) "
            "WHERE state IN ('pending', 'running')",
            "UPDATE network_interfaces SET attachment_status = 'attached' "
            "WHERE attachment_status = 'attaching'",
        )
        if self.db == "sqlite":
            with sqlite3.connect(self.data / "karri.db") as connection:
                for statement in launched:
                    connection.execute(statement)
        else:
            import psycopg

            with psycopg.connect(saved_db_url(self.data) or "", autocommit=True) as connection:
                for statement in launched:
                    connection.execute(statement)


def pg_command(work: Path, *command: object) -> list[str]:
    """A PostgreSQL server program, run as ``postgres`` when the bench runs as root."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return [*prefix, *map(str, command)]


def start_pg(work: Path) -> None:
    """The bench's PostgreSQL cluster in ``work/pg`` (made at first use), running."""
    data = work / "pg" / "data"
    if (data / "postmaster.pid").exists():
        return
    if not data.exists():
        data.mkdir(parents=True)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres:postgres", str(work / "pg")], check=True)
        initdb = (postgres.PG_BIN / "initdb", "-D", data, "-U", postgres.USER, "-A", "trust")
        subprocess.run(pg_command(work, *initdb, "-E", "UTF8", "--no-sync"), check=True)
    options = (
        f"-c listen_addresses='' -c unix_socket_directories='{work / 'pg'}' "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    log = work / "pg" / "log"
    start = (postgres.PG_BIN / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start")
    subprocess.run(pg_command(work, *start), check=True)


def new_pg_database(work: Path) -> str:
    import psycopg

    url = f"postgresql://{postgres.USER}@/{{}}?host={work / 'pg'}"
    with psycopg.connect(url.format("postgres"), autocommit=True) as connection:
        connection.execute("CREATE DATABASE karri_bench")
    return url.format("karri_bench")


def stop_pg(work: Path) -> None:
    if (work / "pg" / "data" / "postmaster.pid").exists():
        stop = (postgres.PG_BIN / "pg_ctl", "-D", work / "pg" / "data", "-m", "fast", "stop")
        subprocess.run(pg_command(work, *stop), check=False)


def timed(cloud: Cloud, calls: int, call: Callable[[], float]) -> dict[str, float]:
    """``calls`` calls' latency figures, and the controller's CPU per call (user +
    system: what the server spent, less sensitive to the machine's load than latency)."""
    if not calls:
        return {}
    controller = cloud.karri.process.pid
    cpu_before = cpu_seconds(controller)
    latencies = [call() for _ in range(calls)]
    cpu = (cpu_seconds(controller) - cpu_before) / calls
    return {**figures(latencies), "server_cpu_ms_per_call": round(cpu * 1000, 1)}


def measure(cloud: Cloud, scale: int, calls: int, walks: int, boto3_calls: int) -> dict:
    time.sleep(6)  # a reconciler pass (5 s) after the start: its steady state
    load = [round(x, 2) for x in os.getloadavg()]
    caller = SignedCaller(cloud.karri)
    caller.unpaginated(scale)  # warm-up (compiled queries, the model's writers); all running

    def boto3_call() -> float:
        started = time.perf_counter()
        answer = cloud.ec2.describe_instances()
        assert sum(len(r["Instances"]) for r in answer["Reservations"]) >= scale
        return (time.perf_counter() - started) * 1000

    return {
        "instances": scale,
        "calls": calls,
        "load_before": load,
        "unpaginated": timed(cloud, calls, lambda: caller.unpaginated(scale)),
        f"paginated_{PAGE}_walk": timed(cloud, walks, lambda: caller.paginated(scale)),
        "boto3_unpaginated": timed(cloud, boto3_calls, boto3_call),
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--scale", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=20, help="unpaginated calls")
    parser.add_argument("--walks", type=int, default=20, help="walks of MaxResults pages")
    parser.add_argument("--boto3-calls", type=int, default=5)
    parser.add_argument("--work", type=Path, help="keep the filled clouds here, for reruns")
    parser.add_argument("--stop-pg", action="store_true", help="stop --work's PostgreSQL")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="karri-bench-describe-") as tmp:
        work = args.work or Path(tmp)
        try:
            for db in filter(None, args.db.split(",")):
                if db == "postgresql":
                    start_pg(work)
                cloud = Cloud(work, db, args.scale)
                try:
                    filled = cloud.filled
                    if filled is None:  # filled, then started anew on the filled data
                        filled = {**cloud.fill(args.scale, args.batch), "now": True}
                        cloud.close()
                        cloud = Cloud(work, db, args.scale)
                    results[db] = {"fill": filled}
                    results[db]["describe"] = measure(
                        cloud, args.scale, args.calls, args.walks, args.boto3_calls
                    )
                    print(json.dumps({db: results[db]}), file=sys.stderr, flush=True)
                finally:
                    cloud.close()
        finally:
            if args.stop_pg or args.work is None:
                stop_pg(work)
    results["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
