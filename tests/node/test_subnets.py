"""A VPC namespace's bridges as subnets come and go (network.py), with plain taps for
instances (no QEMU): a subnet deleted and made again over the same addresses with another
prefix gets a bridge of its own, the old one (no port left on it) goes first, while
another subnet's instance keeps running. And the uplink table of routing.py is loaded."""

from __future__ import annotations

import json
import subprocess
from ipaddress import IPv4Network
from pathlib import Path

from karri.node.network import Port, VpcNetwork, bridge_name

from .conftest import LoopThread, needs_root

pytestmark = needs_root


def port(instance_id: str, ip: str, subnet: str, mac: str) -> Port:
    return Port(instance_id, f"kt{instance_id[2:]}", mac, ip, subnet)


def addresses(net: VpcNetwork) -> dict[str, list[str]]:
    out = subprocess.run(
        ["ip", "-n", net.ns.name, "-j", "address", "show"], capture_output=True, text=True
    ).stdout
    return {
        link["ifname"]: [f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]]
        for link in json.loads(out)
        if link["ifname"].startswith("br")
    }


def test_a_subnet_made_again_with_another_prefix_gets_a_bridge_of_its_own(
    loop: LoopThread, tmp_path: Path
) -> None:
    net = VpcNetwork(tmp_path / "data", tmp_path / "state", "vpc-0123456789abcdef0")
    try:
        loop.run(net.start([], [], {}, ["10.0.1.0/24"]), 60)
        loop.run(net.plug(port("i-00000001", "10.0.0.4", "10.0.0.0/24", "0e:00:00:00:00:01")), 30)
        loop.run(net.plug(port("i-00000002", "10.0.1.4", "10.0.1.0/24", "0e:00:00:00:00:02")), 30)
        loop.run(net.unplug("i-00000001"), 30)  # its subnet deleted, then made again as a /25
        loop.run(net.plug(port("i-00000003", "10.0.0.5", "10.0.0.0/25", "0e:00:00:00:00:03")), 30)
        assert addresses(net) == {
            bridge_name(IPv4Network("10.0.1.0/24")): ["10.0.1.1/24"],
            bridge_name(IPv4Network("10.0.0.0/25")): ["10.0.0.1/25"],
        }
        ruleset = subprocess.run(
            ["ip", "netns", "exec", net.ns.name, "nft", "list", "ruleset"],
            capture_output=True,
            text=True,
        ).stdout
        assert bridge_name(IPv4Network("10.0.0.0/24")) not in ruleset  # nor in the groups' set
        assert "elements = { 10.0.1.0/24 }" in ruleset  # only it reaches the uplink
    finally:
        loop.run(net.close(delete_namespace=True), 60)
