"""Private addresses for instances: the lowest free IP of their subnet in their VPC (or
the one asked for), and its MAC. Addresses are unique per VPC only: two accounts' default
VPCs both hold 172.31.0.11."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Collection, Sequence

from karri.cloud.network.defaults import default_subnet_cidr, default_vpc_id
from karri.errors import invalid_value

RESERVED_HOSTS = 10  # the subnet's first hosts: the bridge and the cloud's own use


def default_placement(account_id: str, zone: str, zones: Sequence[str]) -> tuple[str, str]:
    """(VPC id, subnet CIDR) of an instance until instances record their own: the
    account's default VPC and the default subnet of the instance's zone."""
    index = zones.index(zone) if zone in zones else 0
    return default_vpc_id(account_id), default_subnet_cidr(index)


def gateway(subnet: str) -> str:
    """The bridge's address: the subnet's first host."""
    return str(next(ipaddress.ip_network(subnet).hosts()))


def free_private_ips(subnet: str, taken: Collection[str], count: int) -> list[str]:
    """The ``count`` lowest free host addresses past the reserved ones (fewer if the
    subnet has no more), in one walk of the subnet."""
    free = (
        str(host)
        for host in itertools.islice(ipaddress.ip_network(subnet).hosts(), RESERVED_HOSTS, None)
        if str(host) not in taken
    )
    return list(itertools.islice(free, count))


def requested_private_ip(subnet: str, address: str) -> str:
    """``address`` (RunInstances' ``PrivateIpAddress``) if an instance may have it: an IPv4
    host of the subnet past the reserved ones. Whether it is free is the caller's to check."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise invalid_value(
            f"Value ({address}) for parameter PrivateIpAddress is invalid. "
            f"{address} is not a valid IPv4 address."
        ) from None
    network = ipaddress.IPv4Network(subnet)
    if ip not in network or ip in (network.network_address, network.broadcast_address):
        raise invalid_value(f"Address {ip} does not fall within the subnet's address range")
    if int(ip) - int(network.network_address) <= RESERVED_HOSTS:
        raise invalid_value(f"Address {ip} is reserved for the cloud's own use")
    return str(ip)


def mac_for(ip: str) -> str:
    """Eucalyptus's MAC scheme: ``d0:0d`` followed by the IPv4 address's four bytes."""
    return "d0:0d:" + ":".join(f"{int(octet):02x}" for octet in ip.split("."))


def private_dns_name(ip: str, region: str) -> str:
    return f"ip-{ip.replace('.', '-')}.{region}.compute.internal"


def public_dns_name(ip: str, region: str) -> str:
    return f"euca-{ip.replace('.', '-')}.{region}.compute.karri"
