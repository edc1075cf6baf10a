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
