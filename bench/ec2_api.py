"""EC2 API benchmark: concurrent signed clients against karri and, as the peer, moto's server.

Both servers are started here on free loopback ports, given the same few key pairs, then
driven by ``--clients`` concurrent keep-alive connections for ``--seconds`` per action
(DescribeKeyPairs and DescribeRegions). Every request carries a real SigV4 signature made by
botocore's signer (karri verifies it; moto does not check). Signing is done once per second
and per action and shared by the clients, so the client stays cheap and is not what limits
the rate. Prints requests/s, p50 and p99 latency, the client's own CPU use and the
karri/moto ratio.

    .venv/bin/python bench/ec2_api.py [--seconds 10] [--clients 16] [--json]

``--authorization`` measures instead what the policy engine costs: the same calls from the
account's root keys (never evaluated) and from an IAM user whose policies have 10
statements with conditions, against one server (bench/authz_server.py), alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import uvloop
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from servers import free_port, wait_for  # bench/servers.py (the script's own folder)

BIN = Path(sys.executable).parent
ACTIONS = {
    "DescribeKeyPairs": "Action=DescribeKeyPairs&Version=2016-11-15",
    "DescribeRegions": "Action=DescribeRegions&Version=2016-11-15",
}
KEY_PAIRS = 10


@dataclass
class Server:
    name: str
    url: str
    region: str
    access_key: str
    secret_key: str
    process: subprocess.Popen
    signers: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)

    def headers(self, body: str) -> dict[str, str]:
        """SigV4 headers for ``body``, signed again each second (X-Amz-Date has seconds)."""
        now = int(time.time())
        cached = self.signers.get(body)
        if cached and cached[0] == now:
            return cached[1]
        request = AWSRequest(
            method="POST",
            url=self.url + "/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        credentials = Credentials(self.access_key, self.secret_key)
        SigV4Auth(credentials, "ec2", self.region).add_auth(request)
        headers = dict(request.headers.items())
        self.signers[body] = (now, headers)
        return headers

    def client(self):
        return boto3.client(
            "ec2",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(retries={"max_attempts": 1}),
        )


@contextmanager
def karri(workdir: Path) -> Iterator[Server]:
    data = workdir / "karri"
    port = free_port()
    log = open(workdir / "karri.out", "wb")  # noqa: SIM115
    command = [str(BIN / "karri"), "up", "--data-dir", str(data), "--ec2-port", str(port)]
    command += ["--no-default-images"]  # the API alone is measured: no image builds behind it
    process = subprocess.Popen(
        [*command, "--s3-port", str(free_port())], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/karri/health", process, "karri")
        rc = dict(
            line.removeprefix("export ").split("=", 1)
            for line in (data / "karrirc").read_text().splitlines()
            if line.startswith("export ")
        )
        yield Server(
            "karri",
            url,
            rc["AWS_DEFAULT_REGION"],
            rc["AWS_ACCESS_KEY_ID"],
            rc["AWS_SECRET_ACCESS_KEY"],
            process,
        )
    finally:
        stop(process)


@contextmanager
def moto(workdir: Path) -> Iterator[Server]:
    port = free_port()
    log = open(workdir / "moto.out", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "python"), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/moto-api/", process, "moto")
        yield Server("moto", url, "us-east-1", "AKIAIOSFODNN7EXAMPLE", "bench-secret", process)
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection with one request in flight: the least a client can do per
    request (no header objects, no URL parsing), so the server is what is measured. It is
    kept alive unless the server closes it (moto's server answers ``Connection: close``).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.open = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        length = None
        for line in bytes(self.buffer[:head_end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                self.open = False
        if length is None:
            raise RuntimeError("the bench client reads only answers with a Content-Length")
        if len(self.buffer) < head_end + 4 + length:
            return
        status = int(self.buffer[9:12])
        del self.buffer[: head_end + 4 + length]
        if self.waiter and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("closed"))

    async def request(self, payload: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(payload)
        return await self.waiter


def wire_request(server: Server, body: str) -> bytes:
    """The whole request as bytes: signed headers (renewed each second) and the form body."""
    host = server.url.removeprefix("http://")
    headers = {k: v for k, v in server.headers(body).items() if k.lower() != "host"}
    lines = ["POST / HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


async def drive(
    server: Server, body: str | Callable[[], str], clients: int, seconds: float
) -> dict:
    """``clients`` connections sending ``body`` back to back; latencies of the measured part.
    A callable ``body`` gives each request its own (signed for each request)."""
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    host, port = server.url.removeprefix("http://").split(":")
    signed: list = [0, b""]

    def payload() -> bytes:
        if callable(body):
            return wire_request(server, body())
        now = int(time.time())
        if signed[0] != now:
            signed[:] = [now, wire_request(server, body)]
        return signed[1]

    connections: list[Connection] = []

    async def worker(slot: int, until: float, record: bool) -> None:
        nonlocal errors
        while time.perf_counter() < until:
            started = time.perf_counter()
            if not connections[slot].open:  # reconnecting is part of the request's time
                connections[slot] = (await loop.create_connection(Connection, host, int(port)))[1]
            status = await connections[slot].request(payload())
            if not record:
                continue
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    for _ in range(clients):
        connections.append((await loop.create_connection(Connection, host, int(port)))[1])
    warm_until = time.perf_counter() + 1.0
    await asyncio.gather(*(worker(i, warm_until, False) for i in range(clients)))
    load = os.getloadavg()[0]  # other work on the machine skews every figure: say so
    server_cpu, client_cpu = cpu_seconds(server.process.pid), time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker(i, started + seconds, True) for i in range(clients)))
    wall = time.perf_counter() - started
    server_cpu = cpu_seconds(server.process.pid) - server_cpu
    client_cpu = time.process_time() - client_cpu
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    latencies.sort()

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / wall,
        "p50_ms": percentile(0.50) if latencies else None,
        "p99_ms": percentile(0.99) if latencies else None,
        "server_cpu": server_cpu / wall,
        "client_cpu": client_cpu / wall,
        "load_before": load,
    }


def prepare(server: Server) -> None:
    """The same key pairs on both servers, so DescribeKeyPairs returns the same list."""
    ec2 = server.client()
    for i in range(KEY_PAIRS):
        ec2.create_key_pair(KeyName=f"bench-{i:02d}")
    assert len(ec2.describe_key_pairs()["KeyPairs"]) == KEY_PAIRS


def settle(server: Server, limit: float = 120.0) -> None:
    """Wait until the server is idle: karri's first start builds and bundles default images."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(server.process.pid)
        time.sleep(1.0)
        if cpu_seconds(server.process.pid) - before < 0.05:
            return


def run(args: argparse.Namespace) -> dict:
    results: dict = {"clients": args.clients, "seconds": args.seconds, "servers": {}}
    with tempfile.TemporaryDirectory(prefix="karri-bench-") as tmp:
        for start in (karri, moto):
            if args.only and start.__name__ != args.only:
                continue
            with start(Path(tmp)) as server:
                prepare(server)
                settle(server)
                figures = {}
                for action, body in ACTIONS.items():
                    figures[action] = uvloop.run(drive(server, body, args.clients, args.seconds))
                    report_line(server.name, action, figures[action])
                results["servers"][server.name] = figures
    servers = results["servers"]
    if "karri" in servers and "moto" in servers:
        results["ratio"] = {
            action: servers["karri"][action]["rps"] / servers["moto"][action]["rps"]
            for action in ACTIONS
        }
    return results


AUTHORIZED_ACTIONS = {
    **ACTIONS,
    "DescribeInstances": "Action=DescribeInstances&Version=2016-11-15",
}


@contextmanager
def authz_server(workdir: Path) -> Iterator[tuple[Server, Server]]:
    """bench/authz_server.py: (root, user) clients of one server."""
    data = workdir / "authz"
    data.mkdir()
    port = free_port()
    log = open(workdir / "authz.out", "wb")  # noqa: SIM115
    script = Path(__file__).with_name("authz_server.py")
    command = [str(BIN / "python"), str(script), "--data-dir", str(data), "--port", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/karri/health", process, "authz_server")
        keys = json.loads((data / "bench.json").read_text())
        region = keys["region"]
        yield (
            Server("root", url, region, *keys["root"], process),
            Server("user", url, region, *keys["user"], process),
        )
    finally:
        stop(process)


def run_authorization(args: argparse.Namespace) -> dict:
    results: dict = {"clients": args.clients, "seconds": args.seconds, "rounds": []}
    with (
        tempfile.TemporaryDirectory(prefix="karri-bench-") as tmp,
        authz_server(Path(tmp)) as (root, user),
    ):
        prepare(root)
        for _ in range(args.rounds):
            figures: dict = {}
            for action, body in AUTHORIZED_ACTIONS.items():
                for server in (root, user):
                    f = uvloop.run(drive(server, body, args.clients, args.seconds))
                    figures.setdefault(action, {})[server.name] = f
                    report_line(server.name, action, f)
                root_f, user_f = figures[action]["root"], figures[action]["user"]
                cost = 1 - user_f["rps"] / root_f["rps"]
                # Per CPU second of the server: less skewed when other work takes the CPU.
                per_cpu = 1 - (user_f["rps"] / user_f["server_cpu"]) / (
                    root_f["rps"] / root_f["server_cpu"]
                )
                print(
                    f"       {action:18} authorization costs {cost:5.1%} of the rate, "
                    f"{per_cpu:5.1%} of the rate per server CPU"
                )
            results["rounds"].append(figures)
    return results


def report_line(name: str, action: str, f: dict) -> None:
    print(
        f"{name:6} {action:18} {f['rps']:8.0f} req/s  p50 {f['p50_ms']:6.2f} ms  "
        f"p99 {f['p99_ms']:6.2f} ms  errors {f['errors']}  "
        f"server cpu {f['server_cpu']:4.0%}  client cpu {f['client_cpu']:4.0%}  "
        f"load {f['load_before']:.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--only", choices=("karri", "moto"))
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--authorization", action="store_true", help="root against a user")
    parser.add_argument("--rounds", type=int, default=2, help="with --authorization")
    args = parser.parse_args()
    results = run_authorization(args) if args.authorization else run(args)
    for action, ratio in results.get("ratio", {}).items():
        print(f"karri/moto {action}: {ratio:.1f}x")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
