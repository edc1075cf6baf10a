"""Private addresses for instances: the lowest free IP of the cloud's subnet, and its MAC."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def gateway(subnet: str) -> str:
    """The bridge's address: the subnet's first host."""
    return str(next(ipaddress.ip_network(subnet).hosts()))


def next_private_ip(subnet: str, taken: Iterable[str]) -> str | None:
    """The lowest free host address, leaving the first ten for the cloud's own use."""
    used = set(taken)
    for index, host in enumerate(ipaddress.ip_network(subnet).hosts()):
        if index < 10:
            continue
        if str(host) not in used:
            return str(host)
    return None


def mac_for(ip: str) -> str:
    """Eucalyptus's MAC scheme: ``d0:0d`` followed by the IPv4 address's four bytes."""
    return "d0:0d:" + ":".join(f"{int(octet):02x}" for octet in ip.split("."))


def private_dns_name(ip: str, region: str) -> str:
    return f"ip-{ip.replace('.', '-')}.{region}.compute.internal"


def public_dns_name(ip: str, region: str) -> str:
    return f"euca-{ip.replace('.', '-')}.{region}.compute.karri"
