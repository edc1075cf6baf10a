"""DHCP option sets: CreateDhcpOptions, DeleteDhcpOptions, AssociateDhcpOptions, by AWS's
rules, and what a VPC's DHCP server hands out of its set (``vpc_dhcp``: ``node/dhcp.py``).

A VPC associated with ``default`` has no set (Describe shows ``default``): its guests get
no domain name and no servers. ``AmazonProvidedDNS`` is handed out as the VPC's resolver
(``dns.py``: its base address + 2) while the VPC has DNS support, else left out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address
from typing import Any

from sqlalchemy import select

from karri.cloud.network.dns import resolver_address, vpc_resolver
from karri.cloud.network.models import DhcpOptions, Vpc, VpcCidrBlock
from karri.cloud.network.views import DhcpOptionsView
from karri.cloud.network.vpc_changes import dependency, owned, owned_vpc
from karri.cloud.network.vpc_parts import VpcPartService
from karri.cloud.network.vpcs import DHCP_OPTIONS
from karri.errors import invalid_value, missing_parameter
from karri.ids import new_id
from karri.node import Resolver

DEFAULT = "default"
AMAZON_DNS = "AmazonProvidedDNS"
MAX_SERVERS = 4
# AWS's keys, in its order; the IPv6 lease time is kept and not handed out (IPv4 only)
KEYS = (
    "domain-name",
    "domain-name-servers",
    "ntp-servers",
    "netbios-name-servers",
    "netbios-node-type",
    "ipv6-address-preferred-lease-time",
)
NODE_TYPES = ("1", "2", "4", "8")
MAX_DOMAIN = 255


def _bad(key: str, value: Any) -> Exception:
    return invalid_value(f"Value ({value}) for parameter {key} is invalid.")


def _servers(key: str, values: list[str], amazon: bool) -> list[str]:
    if len(values) > MAX_SERVERS:
        raise invalid_value(f"Value ({', '.join(values)}) for parameter {key} is invalid. "
                            f"A maximum of {MAX_SERVERS} addresses is allowed.")  # fmt: skip
    for value in values:
        if amazon and value == AMAZON_DNS:
            continue
        try:
            IPv4Address(value)
        except ValueError:
            raise _bad(key, value) from None
    return values


def checked_configurations(configurations: Sequence[Mapping[str, Any]] | None) -> dict:
    """The set's options (key → values, in AWS's key order) after AWS's checks."""
    if not configurations:
        raise missing_parameter("DhcpConfigurations")
    found: dict[str, list[str]] = {}
    for item in configurations:
        key = item.get("Key")
        values = [str(v) for v in item.get("Values") or []]
        if not key:
            raise missing_parameter("DhcpConfiguration.Key")
        if key not in KEYS:
            raise invalid_value(f"Value ({key}) for parameter key is invalid. Unknown DHCP option")
        if not values:
            raise invalid_value(f"Value for parameter {key} is missing.")
        found.setdefault(key, []).extend(values)
    for key, values in found.items():
        if key == "domain-name":
            if len(values) > 1 or len(values[0]) > MAX_DOMAIN or not values[0].strip():
                raise _bad(key, " ".join(values))
            for name in values[0].split():
                if not all(part and len(part) <= 63 for part in name.strip(".").split(".")):
                    raise _bad(key, values[0])
        elif key == "domain-name-servers":
            _servers(key, values, amazon=True)
        elif key in ("ntp-servers", "netbios-name-servers"):
            _servers(key, values, amazon=False)
        elif key == "netbios-node-type":
            if len(values) > 1 or values[0] not in NODE_TYPES:
                raise _bad(key, " ".join(values))
        elif len(values) > 1 or not values[0].isdigit() or not 140 <= int(values[0]) <= 2147483647:
            raise _bad(key, " ".join(values))
    return {key: found[key] for key in KEYS if key in found}


def dhcp_of(
    configurations: Mapping[str, list[str]] | None, amazon_dns: str | None = None
) -> dict[str, tuple[str, ...]]:
    """What DHCP hands out of a set: ``AmazonProvidedDNS`` as ``amazon_dns`` (the VPC's
    resolver; left out when it has none), not the IPv6 lease time; empty for ``default``."""
    handed: dict[str, tuple[str, ...]] = {}
    for key, values in (configurations or {}).items():
        if key == "ipv6-address-preferred-lease-time":
            continue
        served = (amazon_dns if v == AMAZON_DNS else v for v in values)
        kept = tuple(dict.fromkeys(v for v in served if v))  # once each, in order
        if key == "domain-name" and kept:
            kept = tuple(kept[0].split())
        if kept:
            handed[key] = kept
    return handed


class DhcpOptionSets(VpcPartService):
    """``on_change``: the VPC's set changed (``vpc_dhcp``), or what its resolver serves
    (``vpc_resolver``: DNS attributes, ranges)."""

    def __init__(self, *args: Any, public_pool: str | None = None, **kwargs: Any) -> None:
        """``public_pool``: where public DNS names resolve (``dns.py``)."""
        super().__init__(*args, **kwargs)
        self.public_pool = public_pool

    def vpc_dhcp(self, vpc_id: str) -> dict[str, tuple[str, ...]]:
        with self.db.session() as session:
            vpc = session.get(Vpc, vpc_id)
            options = session.get(DhcpOptions, vpc.dhcp_options_id) if vpc else None
            serves_dns = vpc is not None and vpc.enable_dns_support
            amazon_dns = resolver_address(vpc.cidr_block) if serves_dns else None
            return dhcp_of(options.configurations if options else None, amazon_dns)

    def vpc_resolver(self, vpc_id: str) -> Resolver | None:
        """The VPC's DNS server, by its attributes (None: DNS support off, or no VPC)."""
        with self.db.session() as session:
            vpc = session.get(Vpc, vpc_id)
            if vpc is None:
                return None
            secondary = session.scalars(
                select(VpcCidrBlock.cidr_block)
                .where(VpcCidrBlock.vpc_id == vpc_id)
                .order_by(VpcCidrBlock.association_id)
            )
            return vpc_resolver(
                region=self.vpcs.geography.region.name,
                cidrs=[vpc.cidr_block, *secondary],
                dns_support=vpc.enable_dns_support,
                dns_hostnames=vpc.enable_dns_hostnames,
                public_pool=self.public_pool,
            )

    def create(
        self,
        account_id: str,
        configurations: Sequence[Mapping[str, Any]] | None,
        tags: Mapping[str, str] | None = None,
    ) -> DhcpOptionsView:
        checked = checked_configurations(configurations)
        with self.db.write_session() as session:
            dopt = new_id("dopt", lambda i: session.get(DhcpOptions, i) is not None)
            session.add(DhcpOptions(id=dopt, account_id=account_id, configurations=checked))
            if tags:
                session.flush()
                self.tags.put(session, account_id, [dopt], dict(tags))
        return self.vpcs.describe_dhcp_options(account_id, [dopt]).items[0]

    def delete(self, account_id: str, dopt: str | None) -> None:
        with self.db.write_session() as session:
            options = owned(session, DHCP_OPTIONS, account_id, dopt)
            if session.scalar(select(Vpc.id).where(Vpc.dhcp_options_id == options.id)):
                raise dependency("dhcpOptions", options.id)
            self.tags.forget(session, [options.id])
            session.delete(options)

    def associate(self, account_id: str, dopt: str | None, vpc_id: str | None) -> None:
        """The VPC's set (``default``: none); its guests get it at their next lease."""
        if not dopt:
            raise missing_parameter("DhcpOptionsId")
        with self.db.write_session() as session:
            vpc = owned_vpc(session, account_id, vpc_id)
            chosen = None if dopt == DEFAULT else owned(session, DHCP_OPTIONS, account_id, dopt).id
            vpc.dhcp_options_id = chosen
            vpc_id = vpc.id
        self.on_change(vpc_id)
