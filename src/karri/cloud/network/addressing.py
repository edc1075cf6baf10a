"""Private addresses within a subnet, by AWS's rules: the network address and the first
three hosts (the VPC router, its DNS server, one kept for later) and the broadcast
address are never an interface's. The node puts its gateway on the first host, the
VPC router's address. Each interface gets a fresh MAC."""

from __future__ import annotations

import ipaddress
import itertools
import secrets
from collections.abc import Callable, Collection

from karri.errors import invalid_value
from karri.ids import fresh

RESERVED_HOSTS = 3  # the first hosts of every subnet: router, DNS, future use
RESERVED_PER_SUBNET = RESERVED_HOSTS + 2  # with the network and broadcast addresses


def usable_addresses(cidr: str) -> int:
    """How many addresses of the subnet interfaces may have (AWS's /20: 4091)."""
    return ipaddress.IPv4Network(cidr).num_addresses - RESERVED_PER_SUBNET


def free_private_ips(cidr: str, taken: Collection[str], count: int) -> list[str]:
    """The ``count`` lowest free host addresses past the reserved ones (fewer if the
    subnet has no more), in one walk of the subnet."""
    free = (
        str(host)
        for host in itertools.islice(ipaddress.ip_network(cidr).hosts(), RESERVED_HOSTS, None)
        if str(host) not in taken
    )
    return list(itertools.islice(free, count))


def requested_private_ip(cidr: str, address: str) -> str:
    """``address`` (RunInstances' ``PrivateIpAddress``) if an interface of the subnet may
    have it. Whether it is free is the caller's to check."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise invalid_value(
            f"Value ({address}) for parameter PrivateIpAddress is invalid. "
            f"{address} is not a valid IPv4 address."
        ) from None
    network = ipaddress.IPv4Network(cidr)
    if ip not in network or ip in (network.network_address, network.broadcast_address):
        raise invalid_value(f"Address {ip} does not fall within the subnet's address range")
    if int(ip) - int(network.network_address) <= RESERVED_HOSTS:
        raise invalid_value(f"Address {ip} is in subnet's reserved address range")
    return str(ip)


def new_mac(taken: Callable[[str], bool]) -> str:
    """A fresh locally administered unicast MAC, as AWS gives its interfaces (``0e:…``)."""
    while True:
        candidate = random_mac()
        if not taken(candidate):
            return candidate


def new_macs(count: int, taken: Callable[[list[str]], set[str]]) -> list[str]:
    """``count`` distinct fresh MACs; ``taken`` says which of a batch exist (one query)."""
    return fresh(random_mac, count, taken)


def random_mac() -> str:
    """A random locally administered unicast MAC (``0e:`` and five random bytes)."""
    return "0e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
