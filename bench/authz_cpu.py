"""What authorization costs in CPU per EC2 call: the same signed call, in process (no HTTP,
no other process), from the account's root keys and from an IAM user whose policies have
10 statements with conditions (bench/authz_server.py). CPU time, not wall time, so other
work on the machine skews it less than request rates.

    .venv/bin/python bench/authz_cpu.py [--calls 3000] [--rounds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

from authz_server import bench_cloud  # bench/ (the script's own folder)
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.requests import Request

from karri.api.ec2.app import Ec2Api

CALLS = {
    "DescribeKeyPairs": "Action=DescribeKeyPairs&Version=2016-11-15",
    "DescribeRegions": "Action=DescribeRegions&Version=2016-11-15",
}


def scope(key: str, secret: str, region: str, body: str) -> dict:
    aws = AWSRequest(
        method="POST",
        url="http://127.0.0.1/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(key, secret), "ec2", region).add_auth(aws)
    headers = [*aws.headers.items(), ("host", "127.0.0.1")]
    return {
        "type": "http",
        "method": "POST",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "scheme": "http",
        "client": ("127.0.0.1", 50000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }


async def cpu_per_call(api: Ec2Api, request_scope: dict, body: str, calls: int) -> float:
    async def receive() -> dict:
        return {"type": "http.request", "body": body.encode(), "more_body": False}

    started = time.process_time()
    for _ in range(calls):
        response = await api.handle(Request(request_scope, receive))
        assert response.status_code == 200, response.body
    return (time.process_time() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the request log is not what is measured
    with tempfile.TemporaryDirectory(prefix="karri-bench-") as tmp:
        bench = bench_cloud(Path(tmp))
        api = bench.ec2_api()
        region, secret = bench.cloud.settings.region, bench.root.secret_access_key
        for name, body in CALLS.items():
            root = scope(bench.root.access_key_id, secret, region, body)
            user = scope(*bench.user, region, body)
            root_us, user_us = [], []
            for _ in range(args.rounds):  # interleaved, so that other work skews both alike
                root_us.append(asyncio.run(cpu_per_call(api, root, body, args.calls)))
                user_us.append(asyncio.run(cpu_per_call(api, user, body, args.calls)))
            r, u = statistics.median(root_us), statistics.median(user_us)
            print(
                f"{name:18} root {r:6.1f} µs  user {u:6.1f} µs  authorization {u - r:5.1f} µs "
                f"per call ({(u - r) / u:.1%} of the user's; medians of {args.rounds} rounds)",
                flush=True,
            )


if __name__ == "__main__":
    main()
