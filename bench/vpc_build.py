"""VPC benchmark (issue 16): the time to build a two-tier VPC through the EC2 API with
boto3 — CreateVpc, a public and a private subnet, an internet gateway created and
attached, a route table with 0.0.0.0/0 to it, associated with the public subnet — and to
tear it down again in AWS's order. The cloud's model only: a `karri up` with the fake
node driver is started here (no guests; the issue's throughput figures across subnets
and through NAT are bench/network.py's).

    .venv/bin/python bench/vpc_build.py [--runs 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import start_karri, stop_karri  # noqa: E402


def build(ec2: Any) -> dict[str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    association = ec2.associate_route_table(RouteTableId=table, SubnetId=public)
    return {
        "vpc": vpc,
        "public": public,
        "private": private,
        "gateway": gateway,
        "table": table,
        "association": association["AssociationId"],
    }


def tear_down(ec2: Any, made: dict[str, str]) -> None:
    ec2.disassociate_route_table(AssociationId=made["association"])
    ec2.delete_route_table(RouteTableId=made["table"])
    ec2.detach_internet_gateway(InternetGatewayId=made["gateway"], VpcId=made["vpc"])
    ec2.delete_internet_gateway(InternetGatewayId=made["gateway"])
    ec2.delete_subnet(SubnetId=made["public"])
    ec2.delete_subnet(SubnetId=made["private"])
    ec2.delete_vpc(VpcId=made["vpc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="karri-bench-vpc-") as tmp:
        karri = start_karri(Path(tmp) / "data", "--node-driver", "fake")
        try:
            ec2 = karri.client("ec2")
            tear_down(ec2, build(ec2))  # warm up
            builds, teardowns = [], []
            for _ in range(args.runs):
                start = time.perf_counter()
                made = build(ec2)
                builds.append(time.perf_counter() - start)
                start = time.perf_counter()
                tear_down(ec2, made)
                teardowns.append(time.perf_counter() - start)
        finally:
            stop_karri(karri)
    result = {
        "runs": args.runs,
        "build_ms_median": round(statistics.median(builds) * 1000, 1),
        "build_ms_max": round(max(builds) * 1000, 1),
        "build_calls": 8,
        "teardown_ms_median": round(statistics.median(teardowns) * 1000, 1),
        "teardown_calls": 7,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:20} {value}")


if __name__ == "__main__":
    main()
