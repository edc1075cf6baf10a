"""A VPC's resolver (AWS's "Amazon DNS server"), served by the VPC's dnsmasq.

AWS answers at the VPC's base address + 2 and at 169.254.169.253 for the private names
of the VPC's addresses (``ip-10-0-1-5.<region>.compute.internal``, and the reverse) and,
where the VPC has DNS hostnames on, for the public names of public addresses. dnsmasq's
``--synth-domain`` makes those names from the addresses themselves, so no record is kept
per instance: a name resolves as soon as its address is in the range, and never to
anything else. Names outside these domains are refused (the namespace has no upstream
resolver; guests on a real uplink may use their own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from karri.node.errors import NetworkError

LINK_LOCAL_RESOLVER = "169.254.169.253"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class SynthesizedNames:
    """``<prefix>a-b-c-d.<domain>`` for every address a.b.c.d of ``network``."""

    domain: str
    network: str  # a CIDR
    prefix: str


@dataclass(frozen=True)
class Resolver:
    """Where the VPC's resolver answers (besides 169.254.169.253) and what it knows."""

    address: str  # the VPC's base address + 2
    names: tuple[SynthesizedNames, ...]


def resolver_addresses(resolver: Resolver) -> tuple[str, ...]:
    return (resolver.address, LINK_LOCAL_RESOLVER)


def resolver_args(resolver: Resolver) -> list[str]:
    """dnsmasq's arguments for ``resolver``, each value checked (they are arguments)."""
    IPv4Address(resolver.address)
    args = [f"--listen-address={address}" for address in resolver_addresses(resolver)]
    domains: list[str] = []
    for names in resolver.names:
        network = IPv4Network(names.network)
        if not all(_LABEL.match(label) for label in names.domain.split(".")):
            raise NetworkError(f"bad DNS domain {names.domain!r}")
        if not re.fullmatch(r"[a-z0-9-]*", names.prefix):
            raise NetworkError(f"bad DNS name prefix {names.prefix!r}")
        args.append(f"--synth-domain={names.domain},{network},{names.prefix}")
        if names.domain not in domains:
            domains.append(names.domain)
    # answered here, never asked further (there is nowhere further); the names guests
    # give in their DHCP requests are not published (a guest could pose as another)
    return [*args, *(f"--local=/{domain}/" for domain in domains), "--dhcp-ignore-names"]
