"""Instances' DNS names for their addresses. Which addresses and MACs they get is the
network's (``cloud/network/addressing.py``)."""

from __future__ import annotations

from karri.cloud.network.defaults import private_dns_name

__all__ = ["PUBLIC_PREFIX", "private_dns_name", "public_dns_domain", "public_dns_name"]

PUBLIC_PREFIX = "euca-"  # Eucalyptus's public names: euca-1-2-3-4.<region>.compute.karri


def public_dns_domain(region: str) -> str:
    return f"{region}.compute.karri"


def public_dns_name(ip: str, region: str) -> str:
    return f"{PUBLIC_PREFIX}{ip.replace('.', '-')}.{public_dns_domain(region)}"
