"""AWS's rules on VPC and subnet ranges (cloud/network/cidrs.py)."""

from __future__ import annotations

import pytest

from karri.cloud.network.cidrs import secondary_cidr, subnet_cidr, vpc_cidr
from karri.errors import CloudError


def code(call, *args) -> str:
    with pytest.raises(CloudError) as info:
        call(*args)
    return info.value.code


@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "172.31.0.0/16", "192.168.0.16/28", "8.8.0.0/16"])
def test_vpc_ranges_accepted(cidr: str) -> None:
    assert str(vpc_cidr(cidr)) == cidr


@pytest.mark.parametrize(
    ("cidr", "error"),
    [
        ("10.0.0.0/8", "InvalidVpc.Range"),
        ("10.0.0.0/29", "InvalidVpc.Range"),
        ("127.1.0.0/16", "InvalidVpc.Range"),
        ("169.254.0.0/16", "InvalidVpc.Range"),
        ("0.0.0.0/16", "InvalidVpc.Range"),
        ("239.0.0.0/16", "InvalidVpc.Range"),
        ("250.0.0.0/16", "InvalidVpc.Range"),
        ("10.0.0.1/16", "InvalidParameterValue"),
        ("10.0.0.0", "InvalidParameterValue"),
        ("", "InvalidParameterValue"),
        (None, "InvalidParameterValue"),
        ("::/16", "InvalidParameterValue"),
    ],
)
def test_vpc_ranges_refused(cidr: str | None, error: str) -> None:
    assert code(vpc_cidr, cidr) == error


def test_subnets_inside_and_apart() -> None:
    vpc = ["10.0.0.0/16"]
    assert str(subnet_cidr("10.0.1.0/24", vpc, ["10.0.0.0/24"])) == "10.0.1.0/24"
    assert str(subnet_cidr("10.0.0.0/16", vpc, [])) == "10.0.0.0/16"
    assert code(subnet_cidr, "10.0.0.0/25", vpc, ["10.0.0.0/24"]) == "InvalidSubnet.Conflict"
    assert code(subnet_cidr, "10.0.0.0/23", vpc, ["10.0.1.0/24"]) == "InvalidSubnet.Conflict"
    assert code(subnet_cidr, "10.1.0.0/24", vpc, []) == "InvalidSubnet.Range"
    assert code(subnet_cidr, "10.0.0.0/15", vpc, []) == "InvalidSubnet.Range"
    assert code(subnet_cidr, "10.0.0.0/29", vpc, []) == "InvalidSubnet.Range"
    assert code(subnet_cidr, "10.0.0.16/28", ["10.0.0.0/28"], []) == "InvalidSubnet.Range"


def test_secondary_ranges() -> None:
    assert str(secondary_cidr("10.1.0.0/16", "vpc-1", ["10.0.0.0/16"])) == "10.1.0.0/16"
    assert str(secondary_cidr("100.64.0.0/16", "vpc-1", ["10.0.0.0/16"])) == "100.64.0.0/16"
    assert str(secondary_cidr("192.168.0.0/16", "vpc-1", ["8.8.0.0/16"])) == "192.168.0.0/16"
    assert code(secondary_cidr, "10.0.1.0/24", "vpc-1", ["10.0.0.0/16"]) == "InvalidVpc.Range"
    assert code(secondary_cidr, "172.16.0.0/16", "vpc-1", ["10.0.0.0/16"]) == "InvalidVpc.Range"
    five = ["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16", "10.4.0.0/16"]
    assert code(secondary_cidr, "10.5.0.0/16", "vpc-1", five) == "CidrLimitExceeded"
