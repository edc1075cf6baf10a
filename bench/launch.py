"""Instance launch benchmark (issue 5).

1. With real QEMU guests of the default image (TCG or KVM, as the node chose): the time
   RunInstances takes to answer, from the call to ``running``, and to the guest's
   ``karri-tiny: boot complete`` console marker, for 1 and for 10 instances at once.
2. DescribeInstances latency with 1,000 instances in the database. A thousand guests do not
   fit on a 2-core machine, so this one figure uses the FakeNode (``karri up --node-driver
   fake``), which runs no guests; the API, database and rendering are the real ones.

    .venv/bin/python bench/launch.py [--json] [--skip-guests] [--skip-describe]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import Karri, start_karri, stop_karri
from tests.integration.guests import console, tiny_image

BENCH_TYPE = "bench.tiny"  # 1 vCPU, 128 MiB: ten fit beside everything else on 2 cores


def launch_round(karri: Karri, image_id: str, count: int) -> dict[str, float]:
    ec2 = karri.client("ec2")
    started = time.perf_counter()
    reservation = ec2.run_instances(
        ImageId=image_id, MinCount=count, MaxCount=count, InstanceType=BENCH_TYPE
    )
    answered = time.perf_counter() - started
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    running: dict[str, float] = {}
    booted: dict[str, float] = {}
    deadline = time.monotonic() + 900
    while len(booted) < count and time.monotonic() < deadline:
        for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]:
            for i in r["Instances"]:
                if i["State"]["Name"] == "running" and i["InstanceId"] not in running:
                    running[i["InstanceId"]] = time.perf_counter() - started
        for instance_id in running.keys() - booted.keys():
            if "karri-tiny: boot complete" in console(ec2, instance_id):
                booted[instance_id] = time.perf_counter() - started
        time.sleep(0.05 if len(running) < count else 0.5)
    ec2.terminate_instances(InstanceIds=ids)
    while any(
        i["State"]["Name"] != "terminated"
        for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
        for i in r["Instances"]
    ):
        time.sleep(0.5)
    return {
        "instances": count,
        "run_instances_answer_ms": round(answered * 1000, 1),
        "to_running_s_max": round(max(running.values()), 2),
        "to_boot_complete_s_median": round(statistics.median(booted.values()), 1),
        "to_boot_complete_s_max": round(max(booted.values()), 1),
    }


def guests(work: Path) -> dict:
    # Ten 1-vCPU guests at once on 2 cores: allow 8 vCPUs per host CPU (the default is 4).
    karri = start_karri(work / "guests", "--stop-instances-on-exit", "--cpu-overcommit", "8")
    try:
        karri.cli("vmtype", "set", BENCH_TYPE, "--cpu", "1", "--memory", "128", "--disk", "1")
        image_id = tiny_image(karri, karri.client("ec2"))
        health = json.loads(_get(karri.ec2_url + "/karri/health"))
        launch_round(karri, image_id, 1)  # warms the node's image cache
        return {
            "accelerator": health.get("accelerator"),
            "rounds": [launch_round(karri, image_id, n) for n in (1, 10)],
        }
    finally:
        stop_karri(karri)


def _get(url: str) -> bytes:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    connection.request("GET", parts.path)
    return connection.getresponse().read()


def describe_at_scale(work: Path, count: int = 1000, calls: int = 30) -> dict:
    karri = start_karri(work / "fake", "--node-driver", "fake")
    try:
        ec2 = karri.client("ec2")
        image_id = tiny_image(karri, ec2)
        for _ in range(count // 100):
            ec2.run_instances(ImageId=image_id, MinCount=100, MaxCount=100, InstanceType="t1.micro")
        while True:
            pages = ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-state-name", "Values": ["running"]}]
            )
            if sum(len(r["Instances"]) for p in pages for r in p["Reservations"]) >= count:
                break
            time.sleep(0.5)
        raw = [signed_describe(karri, count) for _ in range(calls)]
        full = []
        for _ in range(calls // 3):
            started = time.perf_counter()
            ec2.describe_instances()
            full.append((time.perf_counter() - started) * 1000)
        return {
            "driver": "FakeNode (no guests; API, database and rendering are real)",
            "instances": count,
            "http_ms_p50": round(statistics.median(raw), 1),
            "http_ms_p99": round(sorted(raw)[int(len(raw) * 0.99) - 1], 1),
            "boto3_ms_p50": round(statistics.median(full), 1),
        }
    finally:
        stop_karri(karri)


def signed_describe(karri: Karri, at_least: int) -> float:
    """One DescribeInstances over HTTP (no MaxResults: all in one answer, as AWS does),
    signed by botocore, timed to the last byte; it must list ``at_least`` instances."""
    body = "Action=DescribeInstances&Version=2016-11-15"
    request = AWSRequest(
        method="POST",
        url=karri.ec2_url + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    creds = Credentials(karri.admin.access_key_id, karri.admin.secret_access_key)
    SigV4Auth(creds, "ec2", karri.region).add_auth(request)
    parts = urlsplit(karri.ec2_url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=60)
    started = time.perf_counter()
    connection.request("POST", "/", body=body, headers=dict(request.headers))
    response = connection.getresponse()
    payload = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status == 200 and payload.count(b"<instanceId>") >= at_least, response.status
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-guests", action="store_true")
    parser.add_argument("--skip-describe", action="store_true")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="karri-bench-launch-") as tmp:
        work = Path(tmp)
        if not args.skip_guests:
            results["guests"] = guests(work)
        if not args.skip_describe:
            results["describe_instances"] = describe_at_scale(work)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
