"""An elastic network interface in real guests (TCG, issue 16): created, attached to a
running guest, which sees a second NIC with the interface's MAC, gets the interface's
address from its VPC's DHCP server and finds the interface in its metadata; detached (the
guest sees it go) and attached to another running guest, which gets the same private
address; a secondary address assigned to it lets the guest send from that address (ARP
to the gateway), which it could not before."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Karri, start_karri
from tests.integration.guests import end_cloud, tiny_image, wait_console, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="guests need root (namespaces)")

# Runs at boot: waits for a second NIC, asks DHCP for its address (udhcpc prints the
# lease), then reports when it is gone; in the background, writing to the console itself
# (the boot waits for the script's own output to end).
SECONDARY = "172.31.15.200"  # in the zone's default subnet, 172.31.0.0/20
WATCH_ETH1 = """#!/bin/sh
printf '#!/bin/sh\\nexit 0\\n' > /tmp/noop; chmod +x /tmp/noop
MD=http://169.254.169.254/latest/meta-data
(
  while [ ! -e /sys/class/net/eth1 ]; do sleep 1; done
  echo "karri-test: eth1 $(cat /sys/class/net/eth1/address)"
  ip link set eth1 up
  ip addr add {secondary}/32 dev eth1  # the node lets it send from this once assigned
  arping -c 2 -w 5 -I eth1 -s {secondary} {gateway} >/dev/null 2>&1
  echo "karri-test: unassigned arp $?"
  udhcpc -i eth1 -n -q -t 10 -T 2 -s /tmp/noop 2>&1 | sed 's/^/karri-test: /'
  mac=$(cat /sys/class/net/eth1/address)
  for i in $(seq 30); do
    eni=$(wget -q -O - "$MD/network/interfaces/macs/$mac/interface-id") && break
    sleep 1
  done
  echo "karri-test: metadata $eni $(wget -q -O - "$MD/network/interfaces/macs/$mac/local-ipv4s")"
  while [ -e /sys/class/net/eth1 ]; do
    if wget -q -O - "$MD/network/interfaces/macs/$mac/local-ipv4s" | grep -qx {secondary}; then
      arping -c 2 -w 5 -I eth1 -s {secondary} {gateway} >/dev/null 2>&1
      echo "karri-test: secondary arp $?"
      break
    fi
    sleep 1
  done
  while [ -e /sys/class/net/eth1 ]; do sleep 1; done
  echo "karri-test: eth1 gone"
) >/dev/console 2>&1 &
"""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    karri = start_karri(tmp_path_factory.mktemp("eni-guests") / "data")
    try:
        yield karri
    finally:
        end_cloud(karri)


def attachment_status(ec2: Any, interface_id: str) -> str:
    found = ec2.describe_network_interfaces(NetworkInterfaceIds=[interface_id])
    seen = found["NetworkInterfaces"][0]
    return seen["Attachment"]["Status"] if "Attachment" in seen else "available"


def test_an_interface_hot_plugged_moves_between_guests(cloud: Karri) -> None:
    ec2 = cloud.client("ec2")
    image = tiny_image(cloud, ec2)
    script = WATCH_ETH1.replace("{secondary}", SECONDARY).replace("{gateway}", "172.31.0.1")
    run = ec2.run_instances(
        ImageId=image, MinCount=2, MaxCount=2, InstanceType="t1.micro", UserData=script
    )
    first, second = (i["InstanceId"] for i in run["Instances"])
    subnet_id = run["Instances"][0]["SubnetId"]
    for instance_id in (first, second):
        wait_console(ec2, instance_id, "karri-tiny: boot complete")
    eni = ec2.create_network_interface(SubnetId=subnet_id, Description="moves")
    eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
    mac = eni["NetworkInterface"]["MacAddress"]
    address = eni["NetworkInterface"]["PrivateIpAddress"]

    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=first, DeviceIndex=1
    )["AttachmentId"]
    wait_for("the attachment", lambda: attachment_status(ec2, eni_id) == "attached", 60)
    text = wait_console(ec2, first, f"karri-test: udhcpc: lease of {address} obtained")
    assert f"karri-test: eth1 {mac}" in text  # the guest's second NIC is the interface
    wait_console(ec2, first, f"karri-test: metadata {eni_id} {address}")  # under its MAC

    ec2.detach_network_interface(AttachmentId=attachment)
    wait_for("the detachment", lambda: attachment_status(ec2, eni_id) == "available", 90)
    wait_console(ec2, first, "karri-test: eth1 gone")

    ec2.attach_network_interface(NetworkInterfaceId=eni_id, InstanceId=second, DeviceIndex=1)
    wait_for("the new attachment", lambda: attachment_status(ec2, eni_id) == "attached", 60)
    text = wait_console(ec2, second, f"karri-test: udhcpc: lease of {address} obtained")
    assert f"karri-test: eth1 {mac}" in text
    assert "karri-test: unassigned arp 1" in text  # the node let no such frame out

    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=[SECONDARY])
    wait_console(ec2, second, "karri-test: secondary arp 0")
