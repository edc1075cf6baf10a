"""What every account's default VPC is, before any row says so: its id, its address
range and the default subnet of each zone, laid out as AWS lays them out. Deterministic, so
that the security groups, the instances and the node agree on them without a lookup."""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Network

DEFAULT_VPC_CIDR = "172.31.0.0/16"
DEFAULT_SUBNET_PREFIX = 20


def _digest(kind: str, account_id: str, length: int) -> str:
    return hashlib.sha256(f"{kind}:{account_id}".encode()).hexdigest()[:length]


def default_vpc_id(account_id: str) -> str:
    """The id of the account's default VPC (``vpc-`` and 17 hex digits, as AWS's)."""
    return f"vpc-{_digest('default-vpc', account_id, 17)}"


def default_subnet_cidr(zone_index: int) -> str:
    """The default subnet of the zone at ``zone_index``: the VPC's /20s in order."""
    subnets = IPv4Network(DEFAULT_VPC_CIDR).subnets(new_prefix=DEFAULT_SUBNET_PREFIX)
    for index, subnet in enumerate(subnets):
        if index == zone_index:
            return str(subnet)
    raise ValueError(f"a default VPC has no room for zone {zone_index}")


def default_part_id(prefix: str, account_id: str, part: str) -> str:
    """The id of one part of the account's default VPC (``subnet``, ``igw``, ``rtb``, ...;
    ``part`` tells apart several of a kind, e.g. the subnet of each zone). Derived like
    the VPC's own, so that creating the default VPC again finds the rows it made."""
    return f"{prefix}-{_digest(f'default-{part}', account_id, 17)}"


def internal_domain(region: str) -> str:
    """The private DNS domain of a region's instances, as AWS names it: ``ec2.internal``
    in us-east-1 (for historical reasons), ``<region>.compute.internal`` elsewhere."""
    return "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"


PRIVATE_PREFIX = "ip-"


def private_dns_name(ip: str, region: str) -> str:
    """``ip-172-31-0-4.<region>.compute.internal`` (``ec2.internal`` in us-east-1)."""
    return f"{PRIVATE_PREFIX}{ip.replace('.', '-')}.{internal_domain(region)}"
