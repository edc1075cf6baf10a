"""S3 benchmark: karri's Walrus side by side with ``rclone serve s3``, in the same run.

Both servers are started here on loopback (karri with a fresh data dir, rclone over a
temporary folder), or ``--endpoint`` benchmarks any S3 endpoint instead of karri. Each
figure is measured on both, interleaved (karri then rclone, ``--repeat`` rounds, the best
run counts, dirty pages flushed between runs), so the ratios survive a noisy machine:

- single-stream PUT of a 1 GiB object with boto3's defaults (signed payload over http,
  CRC32), and with UNSIGNED-PAYLOAD from an aiohttp client (no client-side hashing);
- single-stream GET of that object (aiohttp, bytes discarded);
- multipart PUT of 1 GiB in 16 MiB parts with 4 threads (boto3's transfer manager);
- 4 KiB PUT, GET, HEAD and DELETE at concurrency 16 (a lean asyncio client of raw
  HTTP/1.1 over keep-alive connections, bench/leanhttp.py; SigV4 per request);
- a full ListObjectsV2 of a 10,000-key bucket.

It also measures the machine's limits: sequential write with fsync on the data dir's disk,
and a plain loopback HTTP download (sendfile from a file in the page cache).

    .venv/bin/python bench/s3.py [--size-mib 1024] [--ops 2000] [--keys 10000] [--json]
    .venv/bin/python bench/s3.py --s3-processes 1   # karri with one S3 process
    .venv/bin/python bench/s3.py --endpoint URL --access-key K --secret-key S [--no-peer]
    .venv/bin/python bench/s3.py --rados --no-peer --size-mib 256   # files vs RADOS

``--rados`` adds a column: a second karri whose object bytes live in RADOS (a pool of the
cluster ``--ceph-conf`` names, else of a throwaway one-host cluster, tests/ceph.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import aiohttp
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from leanhttp import Connection  # bench/leanhttp.py
from servers import free_port, wait_for  # bench/servers.py (the script's own folder)

BIN = Path(sys.executable).parent
MiB = 1024 * 1024
CHUNK = 1 * MiB
PART = 16 * MiB
PARTS_IN_FLIGHT = 4


@dataclass
class Endpoint:
    name: str
    url: str
    region: str
    access_key: str
    secret_key: str

    def boto3(self, **s3_config):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                retries={"max_attempts": 1},
                s3={"addressing_style": "path", **s3_config},
                max_pool_connections=32,
            ),
        )

    def sign(self, method: str, path: str, query: str = "", payload: str = "UNSIGNED-PAYLOAD"):
        """SigV4 headers for a path-style request (path already URI-encoded)."""
        now = datetime.now(UTC)
        stamp, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        host = self.url.split("://", 1)[1]
        headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": stamp}
        names = ";".join(sorted(headers))
        canonical = "\n".join(
            (method, path, query, "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
             names, payload)
        )  # fmt: skip
        scope = f"{date}/{self.region}/s3/aws4_request"
        text = (
            f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        key = signing_key(self.secret_key, date, self.region)
        signature = hmac.new(key, text.encode(), "sha256").hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        del headers["host"]
        return headers

    def raw(self, method: str, path: str, body: bytes = b"", payload: str = "UNSIGNED-PAYLOAD"):
        """A whole signed HTTP/1.1 request as bytes, for the lean client."""
        headers = self.sign(method, path, payload=payload)
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        host = self.url.split("://", 1)[1]
        length = f"content-length: {len(body)}\r\n" if body or method == "PUT" else ""
        return f"{method} {path} HTTP/1.1\r\nhost: {host}\r\n{lines}{length}\r\n".encode() + body

    def address(self) -> tuple[str, int]:
        host, port = self.url.split("://", 1)[1].rsplit(":", 1)
        return host, int(port)


@functools.lru_cache(maxsize=8)
def signing_key(secret_key: str, date: str, region: str) -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), "sha256").digest()
    return key


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def karri(
    workdir: Path, s3_processes: int | None = None, name: str = "karri", *extra: str
) -> Iterator[tuple[Endpoint, subprocess.Popen]]:
    data = workdir / name
    ec2, s3 = free_port(), free_port()
    log = open(workdir / f"{name}.out", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "karri"), "up", "--data-dir", str(data), "--ec2-port", str(ec2),
         "--s3-port", str(s3), "--no-default-images",
         *(["--s3-processes", str(s3_processes)] if s3_processes else []), *extra],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{ec2}/karri/health", process, "karri")
        rc = dict(
            line.removeprefix("export ").split("=", 1)
            for line in (data / "karrirc").read_text().splitlines()
            if line.startswith("export ")
        )
        yield (
            Endpoint(
                name, f"http://127.0.0.1:{s3}", rc["AWS_DEFAULT_REGION"],
                rc["AWS_ACCESS_KEY_ID"], rc["AWS_SECRET_ACCESS_KEY"],
            ),
            process,
        )  # fmt: skip
    finally:
        stop(process)


@contextmanager
def karri_on_rados(
    workdir: Path, s3_processes: int | None, ceph_conf: str | None
) -> Iterator[tuple[Endpoint, subprocess.Popen]]:
    """karri with its object bytes in RADOS: in the pool ``karri-bench-<pid>`` of the
    cluster ``ceph_conf`` names, else of a throwaway one-host cluster (tests/ceph.py)."""
    cluster = None
    if ceph_conf is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests import ceph  # the repository's test fixture

        cluster = ceph.cluster()
        ceph_conf = str(cluster.conf)
    flags = ["--walrus-backend", "rados", "--ceph-conf", ceph_conf]
    flags += ["--rados-pool", f"karri-bench-{os.getpid()}"]
    try:
        with karri(workdir, s3_processes, "karri-rados", *flags) as running:
            yield running
    finally:
        if cluster is not None:
            cluster.destroy()


@contextmanager
def rclone(workdir: Path) -> Iterator[tuple[Endpoint, subprocess.Popen]]:
    root = workdir / "rclone"
    root.mkdir()
    port = free_port()
    key, secret = "BENCHKEY", "bench-secret-key"
    log = open(workdir / "rclone.out", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "rclone"), "serve", "s3", "--addr", f"127.0.0.1:{port}",
         "--auth-key", f"{key},{secret}", "--config", "/dev/null", str(root)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/", process, "rclone")
        yield Endpoint("rclone", f"http://127.0.0.1:{port}", "us-east-1", key, secret), process
    finally:
        stop(process)


# -- the measurements --------------------------------------------------------------------


def put_boto3_defaults(endpoint: Endpoint, bucket: str, source: Path) -> float:
    client = endpoint.boto3()
    started = time.perf_counter()
    with source.open("rb") as body:
        client.put_object(Bucket=bucket, Key="big-boto3", Body=body)
    return time.perf_counter() - started


async def put_unsigned(endpoint: Endpoint, bucket: str, key: str, source: Path) -> float:
    size = source.stat().st_size
    headers = endpoint.sign("PUT", f"/{bucket}/{key}")
    headers["content-length"] = str(size)

    async def body():
        with source.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.put(f"{endpoint.url}/{bucket}/{key}", data=body(), headers=headers) as r:
            await r.read()
            assert r.status == 200, (r.status, await r.text())
        return time.perf_counter() - started


async def get_stream(endpoint: Endpoint, bucket: str, key: str, size: int) -> float:
    headers = endpoint.sign("GET", f"/{bucket}/{key}")
    async with aiohttp.ClientSession(read_bufsize=4 * MiB) as session:
        started = time.perf_counter()
        async with session.get(f"{endpoint.url}/{bucket}/{key}", headers=headers) as response:
            assert response.status == 200, response.status
            received = 0
            async for chunk in response.content.iter_chunked(4 * MiB):
                received += len(chunk)
        elapsed = time.perf_counter() - started
    assert received == size, (received, size)
    return elapsed


def put_multipart(endpoint: Endpoint, bucket: str, source: Path) -> float:
    client = endpoint.boto3()
    config = TransferConfig(
        multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=PARTS_IN_FLIGHT,
        use_threads=True,
    )  # fmt: skip
    started = time.perf_counter()
    client.upload_file(str(source), bucket, "big-multipart", Config=config)
    return time.perf_counter() - started


async def put_multipart_unsigned(endpoint: Endpoint, bucket: str, source: Path) -> float:
    """The multipart upload with a client that is not the bottleneck (boto3's threads
    cannot send faster than ~120-200 MiB/s here, whatever the server): the same 16 MiB
    parts, four in flight, each streamed from the file with UNSIGNED-PAYLOAD."""
    size = source.stat().st_size
    path = f"/{bucket}/big-multipart-unsigned"
    url = f"{endpoint.url}{path}"

    async def part_body(offset: int):
        with source.open("rb") as handle:
            handle.seek(offset)
            left = min(PART, size - offset)
            while left and (chunk := handle.read(min(CHUNK, left))):
                left -= len(chunk)
                yield chunk

    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        headers = endpoint.sign("POST", path, "uploads=")
        async with session.post(f"{url}?uploads", headers=headers) as r:
            text = await r.text()
            assert r.status == 200, text
        upload_id = re.search(r"<UploadId>([^<]+)</UploadId>", text).group(1)
        upload = quote(upload_id, safe="-_.~")
        numbers = iter(range(1, -(-size // PART) + 1))
        etags: dict[int, str] = {}

        async def uploader() -> None:
            for number in numbers:
                query = f"partNumber={number}&uploadId={upload}"
                offset = (number - 1) * PART
                headers = endpoint.sign("PUT", path, query)
                headers["content-length"] = str(min(PART, size - offset))
                async with session.put(
                    f"{url}?{query}", data=part_body(offset), headers=headers
                ) as r:
                    assert r.status == 200, await r.text()
                    etags[number] = r.headers["ETag"]

        await asyncio.gather(*(uploader() for _ in range(PARTS_IN_FLIGHT)))
        listed = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{etags[n]}</ETag></Part>"
            for n in sorted(etags)
        )
        query = f"uploadId={upload}"
        headers = endpoint.sign("POST", path, query)
        document = f"<CompleteMultipartUpload>{listed}</CompleteMultipartUpload>"
        async with session.post(f"{url}?{query}", data=document, headers=headers) as r:
            text = await r.text()
            assert r.status == 200 and "<Error>" not in text, text
        return time.perf_counter() - started


async def small_ops(endpoint: Endpoint, bucket: str, count: int, concurrency: int) -> dict:
    """ops/s of 4 KiB PUT, then GET, HEAD and DELETE of the same keys (lean client)."""
    payload = os.urandom(4096)
    digest = hashlib.sha256(payload).hexdigest()
    keys = [f"small/{i:06d}" for i in range(count)]
    results = {}
    for method in ("PUT", "GET", "HEAD", "DELETE"):
        body = payload if method == "PUT" else b""
        signed = digest if method == "PUT" else "UNSIGNED-PAYLOAD"
        requests = (endpoint.raw(method, f"/{bucket}/{key}", body, signed) for key in keys)
        started = time.perf_counter()
        await run_requests(endpoint, requests, concurrency, head=method == "HEAD")
        results[method] = count / (time.perf_counter() - started)
    return results


# Requests answered 5xx and sent again, by endpoint: rclone serve s3 now and then answers
# a 4 KiB PUT with 500 InternalError (seen in its second round); SDKs retry those too.
RETRIED_5XX: Counter[str] = Counter()
RETRIES = 3


async def run_requests(endpoint: Endpoint, requests, concurrency: int, head: bool = False):
    """Send raw requests over ``concurrency`` keep-alive connections; all must succeed
    (a 5xx is sent again, at most ``RETRIES`` times, and counted in ``RETRIED_5XX``)."""
    connections = [await Connection.open(*endpoint.address()) for _ in range(concurrency)]

    async def worker(connection: Connection) -> None:
        for raw in requests:
            for attempt in range(RETRIES + 1):
                status, body = await connection.request(raw, head=head)
                if status < 500 or attempt == RETRIES:
                    break
                RETRIED_5XX[endpoint.name] += 1
            if status >= 300:
                line = raw.split(b"\r\n", 1)[0]
                raise RuntimeError(f"{line!r}: {status} {body[:300]!r}")

    try:
        await asyncio.gather(*(worker(connection) for connection in connections))
    finally:
        for connection in connections:
            connection.close()


async def fill(endpoint: Endpoint, bucket: str, count: int, concurrency: int = 16) -> None:
    digest = hashlib.sha256(b"").hexdigest()
    requests = (
        endpoint.raw("PUT", f"/{bucket}/list/{i % 100:02d}/{i:06d}", b"", digest)
        for i in range(count)
    )
    await run_requests(endpoint, requests, concurrency)


async def list_all(endpoint: Endpoint, bucket: str) -> tuple[float, int]:
    token = None
    found = 0
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        while True:
            params = [("list-type", "2")]
            if token:
                params.append(("continuation-token", token))
            query = "&".join(
                f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params)
            )
            headers = endpoint.sign("GET", f"/{bucket}", query)
            async with session.get(f"{endpoint.url}/{bucket}?{query}", headers=headers) as r:
                text = await r.text()
                assert r.status == 200, text
            found += text.count("<Key>")
            match = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", text)
            if not match:
                break
            token = match.group(1).replace("&amp;", "&")
        return time.perf_counter() - started, found


def settle() -> None:
    """Let the previous measurement's dirty pages reach the disk before the next one."""
    os.sync()
    time.sleep(0.5)


def best(values: list[float], lower_is_better: bool = False) -> float:
    return min(values) if lower_is_better else max(values)


def bench_all(endpoints: list[Endpoint], source: Path, args) -> dict[str, dict[str, float]]:
    """Every figure on every endpoint, interleaved (karri, then the peer, then again) so
    that both see the same machine; each figure is the best of ``args.repeat`` runs."""
    size = source.stat().st_size
    mib = size / MiB
    buckets = {}
    for endpoint in endpoints:
        bucket = f"bench-{os.getpid()}-{endpoint.name}"
        endpoint.boto3().create_bucket(Bucket=bucket)
        buckets[endpoint.name] = bucket
    runs: dict[str, dict[str, list[float]]] = {e.name: {} for e in endpoints}

    def record(endpoint: Endpoint, name: str, value: float) -> None:
        runs[endpoint.name].setdefault(name, []).append(value)

    for round_ in range(args.repeat):
        for endpoint in endpoints:
            bucket = buckets[endpoint.name]
            print(f"[{endpoint.name}] round {round_ + 1}: 4 KiB ops x{args.ops}", flush=True)
            settle()
            for method, rate in asyncio.run(small_ops(endpoint, bucket, args.ops, 16)).items():
                record(endpoint, f"{method.lower()}_4k_ops_s", rate)
            print(f"[{endpoint.name}] round {round_ + 1}: 1 GiB PUT, GET, multipart", flush=True)
            settle()
            record(endpoint, "put_boto3_mib_s", mib / put_boto3_defaults(endpoint, bucket, source))
            settle()
            seconds = asyncio.run(put_unsigned(endpoint, bucket, "big", source))
            record(endpoint, "put_unsigned_mib_s", mib / seconds)
            settle()
            asyncio.run(get_stream(endpoint, bucket, "big", size))  # both from the page cache
            record(
                endpoint, "get_mib_s", mib / asyncio.run(get_stream(endpoint, bucket, "big", size))
            )
            settle()
            record(endpoint, "put_multipart_mib_s", mib / put_multipart(endpoint, bucket, source))
            settle()
            seconds = asyncio.run(put_multipart_unsigned(endpoint, bucket, source))
            record(endpoint, "put_multipart_unsigned_mib_s", mib / seconds)
            client = endpoint.boto3()
            for key in ("big", "big-boto3", "big-multipart", "big-multipart-unsigned"):
                client.delete_object(Bucket=bucket, Key=key)
    for endpoint in endpoints:
        print(f"[{endpoint.name}] ListObjectsV2 of {args.keys} keys", flush=True)
        listing = f"{buckets[endpoint.name]}-list"
        endpoint.boto3().create_bucket(Bucket=listing)
        asyncio.run(fill(endpoint, listing, args.keys))
    for _round in range(args.repeat + 1):
        for endpoint in endpoints:
            settle()
            seconds, found = asyncio.run(list_all(endpoint, f"{buckets[endpoint.name]}-list"))
            assert found == args.keys, found
            record(endpoint, "list_10k_ms", seconds * 1000)
    return {
        name: {key: best(values, key.endswith("_ms")) for key, values in figures.items()}
        for name, figures in runs.items()
    }


# -- the machine's limits -------------------------------------------------------------------


def disk_write_mib_s(directory: Path, size: int) -> float:
    path = directory / "disk-probe"
    block = os.urandom(4 * MiB)
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < size:
            written += os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - started
    path.unlink()
    return size / MiB / elapsed


def loopback_download_mib_s(source: Path) -> float:
    """A plain HTTP server sending the file with sendfile; the same aiohttp reader."""
    size = source.stat().st_size

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            with source.open("rb") as handle:
                self.wfile.flush()
                os.sendfile(self.connection.fileno(), handle.fileno(), 0, size)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = Endpoint("plain", f"http://127.0.0.1:{server.server_port}", "x", "x", "x")
    try:
        asyncio.run(get_stream(endpoint, "b", "k", size))
        return size / MiB / asyncio.run(get_stream(endpoint, "b", "k", size))
    finally:
        server.shutdown()


class _NullS3(BaseHTTPRequestHandler):
    """Accepts S3 uploads and throws the bytes away: how fast the clients can send."""

    protocol_version = "HTTP/1.1"

    def _drain(self) -> None:
        remaining = int(self.headers.get("content-length", "0"))
        while remaining > 0:
            remaining -= len(self.rfile.read(min(remaining, 4 * MiB)))

    def _answer(self, body: bytes = b"") -> None:
        self.send_response(200)
        self.send_header("ETag", '"00000000000000000000000000000000"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        self._drain()
        self._answer()

    def do_POST(self) -> None:
        self._drain()
        bucket, _, key = self.path.lstrip("/").split("?", 1)[0].partition("/")
        if self.path.endswith("?uploads") or "?uploads&" in self.path:
            root, inner = "InitiateMultipartUploadResult", "<UploadId>null-upload</UploadId>"
        else:
            root, inner = "CompleteMultipartUploadResult", '<ETag>"0-1"</ETag>'
        self._answer(
            f'<?xml version="1.0" encoding="UTF-8"?><{root}><Bucket>{bucket}</Bucket>'
            f"<Key>{key}</Key>{inner}</{root}>".encode()
        )

    def log_message(self, *args) -> None:
        pass


def client_limits(source: Path) -> dict[str, float]:
    """The upload figures against a server that discards the bytes: the clients' own
    ceiling on this machine (boto3 hashes the body before sending it over http)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NullS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = Endpoint("null", f"http://127.0.0.1:{server.server_port}", "x", "x", "x")
    mib = source.stat().st_size / MiB
    try:
        return {
            "put_boto3_mib_s": mib / put_boto3_defaults(endpoint, "null", source),
            "put_unsigned_mib_s": mib / asyncio.run(put_unsigned(endpoint, "null", "k", source)),
            "put_multipart_mib_s": mib / put_multipart(endpoint, "null", source),
            "put_multipart_unsigned_mib_s": mib
            / asyncio.run(put_multipart_unsigned(endpoint, "null", source)),
        }
    finally:
        server.shutdown()


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, Linux {platform.release()}"


LABELS = {
    "put_boto3_mib_s": ("PUT 1 GiB, boto3 defaults", "MiB/s"),
    "put_unsigned_mib_s": ("PUT 1 GiB, UNSIGNED-PAYLOAD", "MiB/s"),
    "get_mib_s": ("GET 1 GiB", "MiB/s"),
    "put_multipart_mib_s": ("multipart PUT 1 GiB (16 MiB x 4 threads), boto3", "MiB/s"),
    "put_multipart_unsigned_mib_s": ("multipart PUT 1 GiB (16 MiB x 4), UNSIGNED", "MiB/s"),
    "put_4k_ops_s": ("PUT 4 KiB, concurrency 16", "ops/s"),
    "get_4k_ops_s": ("GET 4 KiB, concurrency 16", "ops/s"),
    "head_4k_ops_s": ("HEAD, concurrency 16", "ops/s"),
    "delete_4k_ops_s": ("DELETE, concurrency 16", "ops/s"),
    "list_10k_ms": ("ListObjectsV2, 10,000 keys", "ms"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--endpoint", help="benchmark this S3 endpoint instead of starting karri")
    parser.add_argument("--access-key")
    parser.add_argument("--secret-key")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--no-peer", action="store_true", help="skip rclone serve s3")
    parser.add_argument(
        "--rados", action="store_true", help="add karri with its object bytes in RADOS"
    )
    parser.add_argument("--ceph-conf", help="the cluster for --rados (default: a throwaway one)")
    parser.add_argument("--s3-processes", type=int, help="karri's S3 processes (its default)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the best counts")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="karri-s3-bench-") as tmp:
        workdir = Path(tmp)
        source = workdir / "source.bin"
        with source.open("wb") as handle:
            for _ in range(args.size_mib):
                handle.write(os.urandom(MiB))
        report: dict = {
            "machine": machine(),
            "size_mib": args.size_mib,
            "s3_processes": args.s3_processes or "karri's default",
            "results": {},
        }
        report["disk_write_fsync_mib_s"] = disk_write_mib_s(workdir, args.size_mib * MiB)
        report["loopback_http_mib_s"] = loopback_download_mib_s(source)
        report["client_limits"] = client_limits(source)
        with contextlib.ExitStack() as stack:
            if args.endpoint:
                endpoints = [
                    Endpoint("endpoint", args.endpoint.rstrip("/"), args.region,
                             args.access_key or "", args.secret_key or "")
                ]  # fmt: skip
            else:
                endpoints = [stack.enter_context(karri(workdir, args.s3_processes))[0]]
                if args.rados:
                    rados = karri_on_rados(workdir, args.s3_processes, args.ceph_conf)
                    endpoints.append(stack.enter_context(rados)[0])
            if not args.no_peer:
                endpoints.append(stack.enter_context(rclone(workdir))[0])
            report["results"] = bench_all(endpoints, source, args)
            report["retried_after_5xx"] = dict(RETRIED_5XX)
    print_report(report)
    if args.json:
        print(json.dumps(report, indent=2))


def print_report(report: dict) -> None:
    results = report["results"]
    names = list(results)
    print(f"\nmachine: {report['machine']}; karri's S3 processes: {report['s3_processes']}")
    print(f"disk sequential write + fsync: {report['disk_write_fsync_mib_s']:.0f} MiB/s")
    print(f"plain loopback HTTP download (sendfile): {report['loopback_http_mib_s']:.0f} MiB/s")
    limits = report["client_limits"]
    print(
        "the clients into a server that discards the bytes: "
        + ", ".join(f"{LABELS[k][0]} {v:.0f} MiB/s" for k, v in limits.items())
        + "\n"
    )
    width = max(len(f"{label} ({unit})") for label, unit in LABELS.values()) + 1
    header = " " * width + "".join(f"{n:>12}" for n in names)
    if len(names) == 2:
        header += f"{'ratio':>8}"
    print(header)
    for key, (label, unit) in LABELS.items():
        values = [results[n].get(key) for n in names]
        line = f"{label} ({unit})".ljust(width) + "".join(f"{v:>12.1f}" for v in values)
        if len(names) == 2 and all(values):
            ratio = values[0] / values[1] if unit != "ms" else values[1] / values[0]
            line += f"{ratio:>7.2f}x"
        print(line)


if __name__ == "__main__":
    main()
