"""A NAT gateway with a real guest, from a real client: `karri up --public-interface IF
--public-pool CIDR`, a VPC with a public subnet (0.0.0.0/0 → an internet gateway) holding
a NAT gateway and a private subnet whose 0.0.0.0/0 goes to it. A guest of the private
subnet (no public IP) fetches a page from "the outside" (a test namespace behind a veth
whose host end is IF) every few seconds; the outside's server answers the source address
it saw. It sees the NAT gateway's elastic IP; after DeleteRoute the guest reaches
nothing; with the route again it does; after DeleteNatGateway nothing again. It goes on
going out with karri SIGKILLed, and the restarted karri adopts the gateway."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

from tests.integration.guests import cloud_behind_uplink, console, state, tiny_image, wait_for
from tests.integration.test_nat_gateways import public_vpc
from tests.node.vpcnet import OUTSIDE

SCRIPT = f"""#!/bin/sh
(
i=0; while [ $i -lt 400 ]; do
  out=$(timeout 4 wget -q -O - http://{OUTSIDE}:8080/)
  echo "karri-test: try $i outside [$out]"; i=$((i+1)); sleep 2
done
) </dev/null >/dev/console 2>&1 &
"""
TRY = re.compile(r"karri-test: try (\d+) outside \[([0-9.]*)\]")


def tries(ec2: Any, instance_id: str) -> list[tuple[int, str]]:
    return [(int(n), seen) for n, seen in TRY.findall(console(ec2, instance_id))]


def next_try(ec2: Any, instance_id: str, after: int, seen: str) -> int:
    """The number of the first try past ``after`` whose fetch saw ``seen`` ("" none)."""
    found = wait_for(  # a tuple: try 0 is a number wait_for would take for "not yet"
        f"a try past {after} seeing [{seen}]",
        lambda: next(((n,) for n, s in tries(ec2, instance_id) if n > after and s == seen), None),
        600,
    )
    return found[0]


def last_try(ec2: Any, instance_id: str) -> int:
    return max((n for n, _ in tries(ec2, instance_id)), default=-1)


def test_a_private_guest_goes_out_as_its_nat_gateway_until_the_route_or_gateway_goes(
    tmp_path: Path,
) -> None:
    with cloud_behind_uplink(tmp_path / "data", "nat") as cloud:
        karri = cloud.karri
        ec2 = karri.client("ec2")
        _vpc_id, public, private, table = public_vpc(ec2)
        eip = ec2.allocate_address(Domain="vpc")
        gateway_id = ec2.create_nat_gateway(SubnetId=public, AllocationId=eip["AllocationId"])[
            "NatGateway"
        ]["NatGatewayId"]
        ec2.get_waiter("nat_gateway_available").wait(
            NatGatewayIds=[gateway_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300}
        )
        ec2.create_route(
            RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=gateway_id
        )
        instance_id = ec2.run_instances(
            ImageId=tiny_image(karri, ec2),
            MinCount=1,
            MaxCount=1,
            InstanceType="t1.micro",
            UserData=SCRIPT,
            SubnetId=private,
        )["Instances"][0]["InstanceId"]
        (r,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        assert "PublicIpAddress" not in r["Instances"][0]

        elastic = eip["PublicIp"]
        first = next_try(ec2, instance_id, -1, elastic)  # out as the NAT gateway's address

        # the kernel keeps it with no karri running, and a restarted karri adopts it
        karri.process.send_signal(signal.SIGKILL)
        karri.process.wait()
        log = next(Path(karri.data_dir, "node", "instances").glob("i-*/console.log"))
        done = len(TRY.findall(log.read_text(errors="replace")))
        wait_for(
            "a try with no karri running",
            lambda: (
                len(found := TRY.findall(log.read_text(errors="replace"))) > done + 1
                and found[-1][1] == elastic
            ),
            120,
        )
        karri = cloud.start()
        ec2 = karri.client("ec2")
        wait_for("the instance running", lambda: state(ec2, instance_id) == "running")
        before = int(TRY.findall(log.read_text(errors="replace"))[-1][0])  # (no API then)
        seen = next_try(ec2, instance_id, before, elastic)
        assert seen > first
        assert (
            ec2.describe_nat_gateways(NatGatewayIds=[gateway_id])["NatGateways"][0]["State"]
            == "available"
        )
        ec2.delete_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0")
        after = last_try(ec2, instance_id)  # a try may have begun before the call
        cut = next_try(ec2, instance_id, after, "")
        assert all(s == "" for n, s in tries(ec2, instance_id) if n >= cut)
        ec2.create_route(
            RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=gateway_id
        )
        again = next_try(ec2, instance_id, cut, elastic)
        assert again > cut > seen
        ec2.delete_nat_gateway(NatGatewayId=gateway_id)
        ec2.get_waiter("nat_gateway_deleted").wait(
            NatGatewayIds=[gateway_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300}
        )
        after = last_try(ec2, instance_id)
        gone = next_try(ec2, instance_id, after, "")
        assert all(s == "" for n, s in tries(ec2, instance_id) if n >= gone)
        (route,) = [
            x
            for x in ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
            if x["DestinationCidrBlock"] == "0.0.0.0/0"
        ]
        assert route["State"] == "blackhole"
