"""`karri up --public-interface IF --public-pool CIDR` from a real client: an instance
launched with boto3 fetches a page from "the outside" (a test namespace behind a veth
whose host end is IF), and the outside's server sees the instance's public IP; one
launched without a public IP is seen as its VPC's masquerade address (another address of
the pool)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.guests import cloud_behind_uplink, tiny_image, wait_console, wait_for
from tests.node.vpcnet import OUTSIDE

SCRIPT = f"""#!/bin/sh
(
i=0; while [ $i -lt 60 ]; do
  out=$(timeout 5 wget -q -O - http://{OUTSIDE}:8080/) && break; i=$((i+1)); sleep 2
done
echo "karri-test: outside [$out]"
) </dev/null >/dev/console 2>&1 &
"""


def test_instances_go_out_as_their_public_ip_or_the_vpcs_masquerade(tmp_path: Path) -> None:
    with cloud_behind_uplink(tmp_path / "data", "upi") as cloud:
        karri = cloud.karri
        ec2 = karri.client("ec2")
        reservation = ec2.run_instances(
            ImageId=tiny_image(karri, ec2),
            MinCount=1,
            MaxCount=1,
            InstanceType="t1.micro",
            UserData=SCRIPT,  # boto3 encodes it
        )
        instance_id = reservation["Instances"][0]["InstanceId"]
        (subnet,) = ec2.describe_subnets()["Subnets"]
        private = ec2.run_instances(
            ImageId=tiny_image(karri, ec2),
            MinCount=1,
            MaxCount=1,
            InstanceType="t1.micro",
            UserData=SCRIPT,
            NetworkInterfaces=[
                {
                    "DeviceIndex": 0,
                    "SubnetId": subnet["SubnetId"],
                    "AssociatePublicIpAddress": False,
                }
            ],
        )["Instances"][0]["InstanceId"]

        def public_ip() -> str | None:
            (r,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
            return r["Instances"][0].get("PublicIpAddress")

        address = wait_for("a public IP", public_ip)
        assert address.startswith("198.51.100.")
        wait_console(ec2, instance_id, f"outside [{address}]")
        text = wait_console(ec2, private, "outside [198.51.100.")
        masquerade = re.findall(r"outside \[([0-9.]+)\]", text)[-1]
        (r,) = ec2.describe_instances(InstanceIds=[private])["Reservations"]
        assert "PublicIpAddress" not in r["Instances"][0]
        assert masquerade != address  # the VPC's own address, not an instance's
        elastic = ec2.allocate_address(Domain="vpc")["PublicIp"]
        assert elastic not in (masquerade, address)  # never handed out
