"""A VPC's DNS as AWS defines it by the VPC's attributes: with ``enableDnsSupport`` the
Amazon DNS server answers at the VPC's base address + 2 (what ``AmazonProvidedDNS`` in a
DHCP option set hands out) and at 169.254.169.253, for the private names of the VPC's
addresses; with ``enableDnsHostnames`` too, instances have public DNS names, and the
resolver knows them. The node serves it (``node/dns.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network

from sqlalchemy import select
from sqlalchemy.orm import Session

from karri.cloud.instances.addresses import PUBLIC_PREFIX, public_dns_domain
from karri.cloud.network.defaults import PRIVATE_PREFIX, internal_domain
from karri.cloud.network.models import Vpc
from karri.node import Resolver, SynthesizedNames


def resolver_address(vpc_cidr: str) -> str:
    """The Amazon DNS server's address in a VPC: its primary range's base + 2."""
    return str(IPv4Network(vpc_cidr).network_address + 2)


def vpc_resolver(
    *,
    region: str,
    cidrs: Sequence[str],
    dns_support: bool,
    dns_hostnames: bool,
    public_pool: str | None,
) -> Resolver | None:
    """The VPC's resolver (None without DNS support): ``cidrs`` are its ranges, the
    primary first."""
    if not dns_support or not cidrs:
        return None
    private = internal_domain(region)
    names = [SynthesizedNames(private, cidr, PRIVATE_PREFIX) for cidr in cidrs]
    if dns_hostnames and public_pool:
        names.append(SynthesizedNames(public_dns_domain(region), public_pool, PUBLIC_PREFIX))
    return Resolver(resolver_address(cidrs[0]), tuple(names))


def public_name_vpcs(session: Session, vpc_ids: Iterable[str | None]) -> frozenset[str]:
    """Those of the VPCs whose instances have public DNS names (``enableDnsHostnames``):
    elsewhere an instance's ``PublicDnsName`` is empty and its metadata has no
    ``public-hostname``, as on AWS."""
    wanted = {v for v in vpc_ids if v}
    if not wanted:
        return frozenset()
    query = select(Vpc.id).where(Vpc.id.in_(wanted), Vpc.enable_dns_hostnames.is_(True))
    return frozenset(session.scalars(query))
