"""AWS's rules on the IPv4 ranges of VPCs and subnets, pure: a VPC's block is a /16 to
/28 outside the ranges no network may use; a subnet's is a /16 to /28 inside one of its
VPC's blocks and overlapping none of the VPC's other subnets."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network

from karri.errors import CloudError, invalid_value

LARGEST, SMALLEST = 16, 28
# AWS refuses these as a VPC's range (and karri's node needs them: link-local for the
# metadata service and its transit links, loopback for the public pool)
FORBIDDEN = tuple(
    IPv4Network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3")
)


def parse_cidr(value: str | None, parameter: str) -> IPv4Network:
    """An IPv4 CIDR block as AWS accepts it: ``a.b.c.d/n`` with no host bits set."""
    try:
        if not value or "/" not in value:
            raise ValueError(value)
        return IPv4Network(value, strict=True)
    except ValueError:
        raise invalid_value(
            f"Value ({value}) for parameter {parameter} is invalid. This is not a valid CIDR block."
        ) from None


def vpc_cidr(value: str | None) -> IPv4Network:
    """CreateVpc's ``CidrBlock``: ``InvalidVpc.Range`` outside /16 to /28 or in a range no
    VPC may have."""
    network = parse_cidr(value, "cidrBlock")
    if not LARGEST <= network.prefixlen <= SMALLEST or any(network.overlaps(f) for f in FORBIDDEN):
        raise CloudError("InvalidVpc.Range", f"The CIDR '{value}' is invalid.")
    return network


def subnet_cidr(
    value: str | None, vpc_blocks: Iterable[str], siblings: Iterable[str]
) -> IPv4Network:
    """CreateSubnet's ``CidrBlock``: inside one of the VPC's blocks and /16 to /28
    (``InvalidSubnet.Range``), overlapping no other subnet (``InvalidSubnet.Conflict``)."""
    network = parse_cidr(value, "cidrBlock")
    inside = any(network.subnet_of(IPv4Network(b)) for b in vpc_blocks)
    if not inside or not LARGEST <= network.prefixlen <= SMALLEST:
        raise CloudError("InvalidSubnet.Range", f"The CIDR '{value}' is invalid.")
    if any(network.overlaps(IPv4Network(s)) for s in siblings):
        raise CloudError(
            "InvalidSubnet.Conflict", f"The CIDR '{value}' conflicts with another subnet"
        )
    return network


PRIVATE = tuple(IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
MAX_RANGES = 5  # IPv4 ranges per VPC, the primary included (AWS's default quota)


def secondary_cidr(value: str | None, vpc_id: str, existing: list[str]) -> IPv4Network:
    """AssociateVpcCidrBlock's ``CidrBlock``: a VPC range (``vpc_cidr``) overlapping none
    of the VPC's, from the primary's private block if it is in one and the new one is
    private too (AWS's restriction table, its main rule), at most ``MAX_RANGES``."""
    network = vpc_cidr(value)
    if len(existing) >= MAX_RANGES:
        raise CloudError(
            "CidrLimitExceeded",
            f"This network '{vpc_id}' has met its maximum number of allowed CIDRs: {MAX_RANGES}",
        )
    if any(network.overlaps(IPv4Network(e)) for e in existing):
        raise CloudError(
            "InvalidVpc.Range", f"The CIDR '{value}' conflicts with another CIDR of the VPC."
        )
    primary = IPv4Network(existing[0])
    home = next((b for b in PRIVATE if primary.subnet_of(b)), None)
    elsewhere = next((b for b in PRIVATE if network.subnet_of(b) and b != home), None)
    if home is not None and elsewhere is not None:
        raise CloudError(
            "InvalidVpc.Range",
            f"The CIDR '{value}' is restricted. Use a CIDR from the same private address "
            "range as the current VPC CIDR, or use a publicly-routable CIDR.",
        )
    return network
