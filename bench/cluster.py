"""Many-hosts benchmark (issue 19): a cloud with four joined nodes.

A real `karri up` (``--node-driver fake --node-port``) and four real `karri node
--node-driver fake` processes named ``fake-node-1`` … ``fake-node-4`` (agents on
127.0.0.2 to .5, joined with tokens, in a zone of their own so that the cloud's own node
takes none of the instances). The fake driver runs no guests: what is timed is the API,
the scheduler, the database, the reconciler and the calls to the nodes' agents over mTLS.

1. launch: one RunInstances of 200 instances (MaxCount=MinCount=200, round robin over the
   four nodes) — its answer, and the time from the call until DescribeInstances shows all
   200 ``running``; the controller's (the `karri up` process's) CPU seconds over that
   window, and the four node processes' together.
2. describe: the cloud filled to 10,000 instances (RunInstances of 500 at a time, each
   in a VPC of its own, until all are ``running``), then DescribeInstances without
   MaxResults — one answer listing all of them, as AWS gives — signed by botocore and
   timed to its last byte over HTTP (p50, p99), and boto3's ``describe_instances()`` end
   to end (its XML parsing included).

Both on SQLite and on PostgreSQL (``--db``; a throwaway cluster, tests/postgres.py).

3. nbd: a volume's bytes read and written whole by ``qemu-img convert`` through the very
   block nodes a node opens (``node.disks.blockdev``): the volume's local file, against the
   same file over NBD with TLS from the cloud's export (``VolumeExports``, a
   ``qemu-storage-daemon``), directly over TCP and through a node's relay (``NbdRelays``:
   the unix socket a guest's QEMU uses from its VPC's namespace). Same run, same file,
   in turn each round; the file is opened with the page cache on both sides, as a node and
   the export open it. (No guest: under TCG a guest's own I/O path would be the limit.)

    .venv/bin/python bench/cluster.py [--db sqlite,postgresql] [--count 200]
        [--scale 10000] [--skip-nbd] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from launch import signed_describe  # noqa: E402  (bench/launch.py, the script's own folder)

from karri.cloud.nodes.ca import NodeCA  # noqa: E402
from karri.cloud.volumes.targets import VolumeExports  # noqa: E402
from karri.node.disks import NBD_TLS, blockdev  # noqa: E402
from karri.node.nbdrelay import NbdRelays  # noqa: E402
from karri.node.spec import VolumeTarget  # noqa: E402
from karri.storage import LocalFileStorage  # noqa: E402
from tests import postgres  # noqa: E402
from tests.conftest import KARRI, Karri, free_port, save_settings, start_karri, stop_karri  # noqa: E402
from tests.integration.guests import tiny_image  # noqa: E402
from tests.integration.test_nbd_exports import client_files  # noqa: E402
from tests.integration.test_nodes_placement import start_agents, stop_agents  # noqa: E402

ZONE = "eucalyptus-1b"  # the joined nodes' zone: the cloud's own node is in eucalyptus-1a
NODES = {f"fake-node-{n}": (f"127.0.0.{n + 1}", ZONE) for n in range(1, 5)}
BENCH_TYPE = "bench.fake"  # 1 vCPU, 1 MiB: 2,500 per node fit the nodes' reported memory
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_of(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


class Cloud:
    """A `karri up` with its four joined fake nodes, on SQLite or PostgreSQL."""

    def __init__(self, work: Path, db: str, count: int, scale: int) -> None:
        data = work / db / "data"
        data.mkdir(parents=True)
        if db == "postgresql":
            save_settings(data, db_url=postgres.cluster().new_database())
        subprocess.run([KARRI, "zone", "create", ZONE, "--data-dir", str(data)], check=True)
        # each node reports its host's CPUs: over-commit them enough for `count` and for
        # `scale` 1-vCPU instances over the four nodes
        overcommit = str(max(4, -(-max(scale, count) // (4 * (os.cpu_count() or 1))) + 1))
        self.karri: Karri = start_karri(
            data, "--node-driver", "fake", "--node-port", str(free_port()),
            "--scheduler", "roundrobin", "--cpu-overcommit", overcommit,
        )  # fmt: skip
        self.processes: list[subprocess.Popen] = []
        try:
            sizes = ("--cpu", "1", "--memory", "1", "--disk", "1")
            self.karri.cli("vmtype", "set", BENCH_TYPE, *sizes)
            (work / db / "nodes").mkdir()
            self.processes, _urls = start_agents(self.karri, work / db / "nodes", NODES, "2")
            self.ec2 = self.karri.client("ec2")
            self.image_id = tiny_image(self.karri, self.ec2)
            self.subnet_id = self.new_subnet()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        stop_agents(self.processes)
        stop_karri(self.karri)

    def new_subnet(self) -> str:
        """A new VPC with a /20 subnet in the nodes' zone (4,091 addresses)."""
        vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/20", AvailabilityZone=ZONE)
        return subnet["Subnet"]["SubnetId"]

    def run(self, count: int, subnet_id: str | None = None) -> list[str]:
        reservation = self.ec2.run_instances(
            ImageId=self.image_id, MinCount=count, MaxCount=count, InstanceType=BENCH_TYPE,
            SubnetId=subnet_id or self.subnet_id,
        )  # fmt: skip
        return [i["InstanceId"] for i in reservation["Instances"]]

    def running(self) -> int:
        """How many instances DescribeInstances lists as ``running`` (all pages)."""
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["running"]}],
            PaginationConfig={"PageSize": 1000},
        )
        return sum(len(r["Instances"]) for p in pages for r in p["Reservations"])

    def wait_running(self, total: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.running() < total:
            if time.monotonic() > deadline:
                raise SystemExit(f"{total} instances were not running after {timeout} s")
            time.sleep(0.1)

    def per_node(self) -> dict[str, int]:
        listed = json.loads(self.karri.cli("node", "list", "--json").stdout)
        return {n["name"]: n["instances"] for n in listed}


def launch(cloud: Cloud, count: int) -> dict:
    controller, nodes = cloud.karri.process.pid, [p.pid for p in cloud.processes]
    cpu_before, nodes_before = cpu_seconds(controller), cpu_of(nodes)
    started = time.perf_counter()
    ids = cloud.run(count)
    answered = time.perf_counter() - started
    left = set(ids)
    while left:
        for reservation in cloud.ec2.describe_instances(InstanceIds=sorted(left))["Reservations"]:
            for i in reservation["Instances"]:
                if i["State"]["Name"] == "running":
                    left.discard(i["InstanceId"])
        if left:
            if time.perf_counter() - started > 600:
                raise SystemExit(f"{len(left)} of {count} instances not running after 600 s")
            time.sleep(0.1)
    elapsed = time.perf_counter() - started
    return {
        "instances": count,
        "run_instances_answer_s": round(answered, 2),
        "call_to_all_running_s": round(elapsed, 2),
        "controller_cpu_s": round(cpu_seconds(controller) - cpu_before, 2),
        "nodes_cpu_s": round(cpu_of(nodes) - nodes_before, 2),
        "per_node": cloud.per_node(),
    }


def describe(cloud: Cloud, scale: int, batch: int, calls: int) -> dict:
    total = cloud.running()
    fill_started = time.perf_counter()
    while total < scale:  # each batch in a VPC of its own: a launch's pushes go over the
        cloud.run(min(batch, scale - total), cloud.new_subnet())  # VPC's instances
        total = min(scale, total + batch)
        cloud.wait_running(total, 600)
    filled = time.perf_counter() - fill_started
    time.sleep(6)  # a reconciler pass (5 s) after the last launch: its steady state
    load = os.getloadavg()
    controller = cloud.karri.process.pid
    cpu_before, idle_started = cpu_seconds(controller), time.perf_counter()
    time.sleep(10)
    idle_cpu = (cpu_seconds(controller) - cpu_before) / (time.perf_counter() - idle_started)
    raw = sorted(signed_describe(cloud.karri, scale) for _ in range(calls))
    full = []
    for _ in range(max(3, calls // 5)):
        started = time.perf_counter()
        answer = cloud.ec2.describe_instances()
        full.append((time.perf_counter() - started) * 1000)
        assert sum(len(r["Instances"]) for r in answer["Reservations"]) >= scale
    return {
        "instances": scale,
        "fill_s": round(filled, 1),
        "controller_cpu_idle_share": round(idle_cpu, 3),
        "load_before": [round(x, 2) for x in load],
        "http_ms_p50": round(statistics.median(raw), 1),
        "http_ms_p99": round(raw[max(0, int(len(raw) * 0.99) - 1)], 1),
        "http_ms_min": round(raw[0], 1),
        "calls": calls,
        "boto3_ms_p50": round(statistics.median(full), 1),
        "per_node": cloud.per_node(),
    }


def convert(tls: Path, target: Path | VolumeTarget, kind: str, source: Path, size: int) -> float:
    """MiB/s of one ``qemu-img convert`` (its 8 coroutines in flight, no zero detection)
    through the block nodes a node opens for the volume: ``read`` the whole volume into a
    null device, ``write`` it whole from ``source`` (in memory), ``write+flush`` as well
    with the flush at the end that makes it durable (the page cache's write-back to the
    disk included)."""
    options = blockdev("vol", target, "raw", read_only=kind == "read")
    options.pop("node-name")
    volume = f"json:{json.dumps(options)}"
    null = json.dumps({"driver": "raw", "file": {"driver": "null-co", "size": size}})
    ends = [volume, f"json:{null}"] if kind == "read" else ["-f", "raw", str(source), volume]
    cache = ["-t", "writeback"] if kind == "write+flush" else []  # else "unsafe": no flush
    command = [
        "qemu-img", "convert", "--object",
        f"tls-creds-x509,id={NBD_TLS},dir={tls},endpoint=client", "-n", "-S", "0", *cache, *ends,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"qemu-img convert failed: {done.stderr.strip()}")
    return size / (1 << 20) / seconds


def nbd(work: Path, size_mib: int, rounds: int) -> dict:
    volume_id, size = "vol-0bec0000000000001", size_mib << 20
    volumes = work / "nbd" / "volumes"
    volumes.mkdir(parents=True)
    source = Path("/dev/shm") / f"karri-bench-cluster-{os.getpid()}.raw"
    for path in (volumes / f"{volume_id}.raw", source):  # every byte written: no holes
        with open(path, "wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
    ca = NodeCA(work / "nbd" / "cloud")
    exports = VolumeExports(LocalFileStorage(volumes), ca, work / "nbd" / "exports", "127.0.0.1")
    relays = NbdRelays(work / "nbd" / "relays")
    local = exports.target(volume_id).path  # type: ignore[union-attr]
    kinds = ("read", "write", "write+flush")
    figures: dict[tuple[str, str], list[float]] = {}

    def measure(name: str, target: Path | VolumeTarget) -> None:
        for kind in kinds:
            speed = convert(tls, target, kind, source, size)
            figures.setdefault((name, kind), []).append(speed)

    try:
        tls = client_files(work / "nbd" / "node", ca, "fake-node-1")
        for _ in range(rounds):  # the paths in turn each round: the same load for each
            # the export holds the file's write lock: it runs only while it is measured
            measure("local file", local)
            direct = exports.target(volume_id, "fake-node-1")
            measure("NBD+TLS over TCP", direct)
            measure("NBD+TLS through the node's relay", relays.local(volume_id, direct))
            relays.end(volume_id)
            exports.release(volume_id)
        results: dict[str, dict[str, float]] = {}
        for (name, kind), speeds in figures.items():
            median = statistics.median(speeds)
            results.setdefault(name, {})[f"{kind}_mib_s"] = round(median, 1)
            local = statistics.median(figures[("local file", kind)])
            if name != "local file":
                results[name][f"{kind}_of_local"] = round(median / local, 2)
        return {"volume_mib": size_mib, "rounds": rounds, **results}
    finally:
        source.unlink(missing_ok=True)
        relays.end(volume_id)
        exports.release(volume_id)


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--scale", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--skip-nbd", action="store_true")
    parser.add_argument("--nbd-mib", type=int, default=512)
    parser.add_argument("--nbd-rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--work", type=Path, help="keep the clouds' data and logs here")
    args = parser.parse_args()
    results: dict = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="karri-bench-cluster-") as tmp:
        work = args.work or Path(tmp)
        for db in filter(None, args.db.split(",")):
            cloud = Cloud(work, db, args.count, args.scale)
            try:
                results[db] = {"launch": launch(cloud, args.count)}
                print(json.dumps({db: results[db]}), file=sys.stderr, flush=True)
                if args.scale:
                    results[db]["describe"] = describe(cloud, args.scale, args.batch, args.calls)
                print(json.dumps({db: results[db]}), file=sys.stderr, flush=True)
            finally:
                cloud.close()
        if not args.skip_nbd:
            results["nbd"] = nbd(work, args.nbd_mib, args.nbd_rounds)
    results["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
