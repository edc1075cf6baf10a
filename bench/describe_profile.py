"""Where a DescribeInstances call's server time goes: the call in process (no HTTP), on
the data dir of a stopped cloud (``bench/describe_scale.py --work DIR`` leaves one), signed
with the cloud's admin keys, through the EC2 API's own handler (``Ec2Api.handle``: the
signature check, the action, the rendering of the XML).

    .venv/bin/python bench/describe_profile.py DATA_DIR [--calls 5] [--max-results N]
        [--profile] [--top 30]

Prints the CPU time per call (``time.process_time``), the first call's apart (a new
front end renders every instance's XML then, and keeps it), and, with ``--profile``, cProfile's
costliest functions (cumulative and own time) over the calls.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from authz_cpu import scope  # noqa: E402  (bench/authz_cpu.py)
from starlette.requests import Request  # noqa: E402

from karri.api.auth.credentials import account_keys  # noqa: E402
from karri.api.ec2.app import Ec2Api  # noqa: E402
from karri.config import Settings, saved_db_url  # noqa: E402
from karri.serving import settle_memory  # noqa: E402
from karri.up import open_cloud  # noqa: E402
from tests.conftest import read_rc  # noqa: E402


async def call(api: Ec2Api, request_scope: dict, body: str) -> int:
    async def receive() -> dict:
        return {"type": "http.request", "body": body.encode(), "more_body": False}

    response = await api.handle(Request(request_scope, receive))
    assert response.status_code == 200, response.body[:500]
    return response.body.count(b"<instanceId>")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--max-results", type=int)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the request log is not what is measured
    cloud = open_cloud(Settings(data_dir=args.data_dir, db_url=saved_db_url(args.data_dir)))
    api = Ec2Api(cloud, account_keys(cloud.iam.keys, cloud.iam.generation), cloud.iam)
    api._on_loop = {*api._on_loop, "DescribeInstances"}  # one thread: cProfile sees it all
    rc = read_rc(args.data_dir / "karrirc")
    body = "Action=DescribeInstances&Version=2016-11-15"
    if args.max_results:
        body += f"&MaxResults={args.max_results}"
    key, secret = rc["AWS_ACCESS_KEY_ID"], rc["AWS_SECRET_ACCESS_KEY"]
    request_scope = scope(key, secret, cloud.settings.region, body)
    started = time.process_time()
    listed = asyncio.run(call(api, request_scope, body))  # warm-up: renders what it keeps
    first = (time.process_time() - started) * 1000
    settle_memory()  # the collector as `karri up` sets it
    profile = cProfile.Profile() if args.profile else None
    cpu = []
    for _ in range(args.calls):
        started = time.process_time()
        if profile:
            profile.enable()
        asyncio.run(call(api, request_scope, body))
        if profile:
            profile.disable()
        cpu.append((time.process_time() - started) * 1000)
    print(f"{listed} instances listed; CPU per call: p50 {statistics.median(cpu):.1f} ms, "
          f"min {min(cpu):.1f} ms over {args.calls} calls; the first call "
          f"(every instance rendered, compiled queries): {first:.1f} ms")  # fmt: skip
    if profile:
        stats = pstats.Stats(profile).strip_dirs()
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
