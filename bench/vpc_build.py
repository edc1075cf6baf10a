"""VPC benchmark (issue 16): the time to build a two-tier VPC through the EC2 API with
boto3 — CreateVpc, a public and a private subnet, an internet gateway created and
attached, a route table with 0.0.0.0/0 to it, associated with the public subnet — and to
tear it down again in AWS's order. The cloud's model only: a `karri up` with the fake
node driver is started here (no guests; the issue's throughput figures across subnets
and through NAT are bench/network.py's).

``--guests`` builds the whole two-tier VPC of issue 16 on a `karri up` with real QEMU
guests: the same calls, then a NAT gateway (an elastic IP, CreateNatGateway in the public
subnet, 0.0.0.0/0 of the private subnet's main table to it) and two instances of the
default tiny image, one per subnet; timed until the gateway is ``available`` and both
instances ``running`` (the state karri reports once their QEMU runs). Each run leaves
its VPC and elastic IP, so at most 4 runs fit an account's limits (5 of each).

    .venv/bin/python bench/vpc_build.py [--runs 20] [--json]
    .venv/bin/python bench/vpc_build.py --guests [--runs 1] [--json]
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
from tests.integration.guests import terminate_all, tiny_image, wait_for  # noqa: E402


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


def build_with_guests(ec2: Any, image_id: str) -> dict[str, float]:
    """The two-tier VPC with a NAT gateway and an instance per subnet: seconds until the
    calls returned, the gateway was available and both instances ran."""
    start = time.perf_counter()
    made = build(ec2)
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    gateway = ec2.create_nat_gateway(SubnetId=made["public"], AllocationId=allocation)
    gateway_id = gateway["NatGateway"]["NatGatewayId"]
    (main_table,) = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [made["vpc"]]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"]
    ec2.create_route(
        RouteTableId=main_table["RouteTableId"],
        DestinationCidrBlock="0.0.0.0/0",
        NatGatewayId=gateway_id,
    )
    instances = [
        ec2.run_instances(
            ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t1.micro", SubnetId=subnet
        )["Instances"][0]["InstanceId"]
        for subnet in (made["public"], made["private"])
    ]
    calls = time.perf_counter() - start
    ec2.get_waiter("nat_gateway_available").wait(
        NatGatewayIds=[gateway_id], WaiterConfig={"Delay": 0.2, "MaxAttempts": 3000}
    )
    gateway_ready = time.perf_counter() - start

    def running() -> bool:
        reservations = ec2.describe_instances(InstanceIds=instances)["Reservations"]
        states = [i["State"]["Name"] for r in reservations for i in r["Instances"]]
        return states == ["running"] * len(instances)

    wait_for("both instances running", running, 600)
    return {
        "calls_s": round(calls, 2),
        "nat_gateway_available_s": round(gateway_ready, 2),
        "instances_running_s": round(time.perf_counter() - start, 2),
    }


def guests_run(runs: int) -> dict[str, Any]:
    """``runs`` two-tier VPCs with guests in one cloud, their instances ended between runs."""
    figures: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="karri-bench-vpc-") as tmp:
        karri = start_karri(Path(tmp) / "data")
        try:
            ec2 = karri.client("ec2")
            image_id = tiny_image(karri, ec2)
            for _ in range(runs):
                figures.append(build_with_guests(ec2, image_id))
                terminate_all(ec2, wait=True)
        finally:
            stop_karri(karri)
    return {
        "runs": runs,
        **{
            f"{key}_median": round(statistics.median(f[key] for f in figures), 2)
            for key in figures[0]
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--guests", action="store_true", help="with a NAT gateway and guests")
    args = parser.parse_args()
    if args.guests:
        if args.runs > 4 and args.runs != 20:
            parser.error("--guests: at most 4 runs (an account's 5 VPCs and elastic IPs)")
        report(guests_run(args.runs if args.runs != 20 else 1), args.json)
        return
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
    report(result, args.json)


def report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
