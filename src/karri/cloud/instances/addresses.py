"""Instances' DNS names for their addresses. Which addresses and MACs they get is the
network's (``cloud/network/addressing.py``)."""

from __future__ import annotations

from karri.cloud.network.defaults import private_dns_name

__all__ = ["private_dns_name", "public_dns_name"]


def public_dns_name(ip: str, region: str) -> str:
    return f"euca-{ip.replace('.', '-')}.{region}.compute.karri"
