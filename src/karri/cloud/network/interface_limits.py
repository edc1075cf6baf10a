"""How many network interfaces an instance type takes, and how many private IPv4
addresses each of them: AWS's table ("IP addresses per network interface per instance
type") for the types karri offers.

``cc1.4xlarge`` is no longer in AWS's table; it is given its cluster siblings' figures.
A type an administrator adds (``karri vmtype``) that AWS does not have gets the smallest
figures of the table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InterfaceLimits:
    interfaces: int
    addresses: int  # private IPv4 addresses per interface, the primary one included


AWS_LIMITS: dict[str, InterfaceLimits] = {
    name: InterfaceLimits(interfaces, addresses)
    for name, (interfaces, addresses) in {
        "t1.micro": (2, 2),
        "t2.nano": (2, 2),
        "t2.micro": (2, 2),
        "t2.small": (3, 4),
        "t2.medium": (3, 6),
        "m1.small": (2, 4),
        "m1.medium": (2, 6),
        "m1.large": (3, 10),
        "m1.xlarge": (4, 15),
        "c1.medium": (2, 6),
        "c1.xlarge": (4, 15),
        "m2.xlarge": (4, 15),
        "m2.2xlarge": (4, 30),
        "m2.4xlarge": (8, 30),
        "m3.xlarge": (4, 15),
        "m3.2xlarge": (4, 30),
        "cc1.4xlarge": (8, 30),
        "cc2.8xlarge": (8, 30),
        "cg1.4xlarge": (8, 30),
        "cr1.8xlarge": (8, 30),
        "hi1.4xlarge": (8, 30),
    }.items()
}
SMALLEST = InterfaceLimits(2, 2)
MOST_ADDRESSES = max(limit.addresses for limit in AWS_LIMITS.values())
"""What an interface attached to nothing may hold (checked again when it is attached)."""


def limits_of(instance_type: str) -> InterfaceLimits:
    return AWS_LIMITS.get(instance_type, SMALLEST)
