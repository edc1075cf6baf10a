"""NAT gateways in a VPC's namespace (AWS's NAT gateway, built without a VM).

The cloud says, per VPC, which NAT gateways exist (``NatGateway``): a public one's
elastic IP and the private subnets whose route table sends 0.0.0.0/0 to it. The node
claims the elastic IP like an instance's public address (the ``local``-table /32 through
the VPC's veth; on a real uplink also a /32 on ``pub``), and ``publicnat.py``'s nat table
SNATs what those subnets send out by ``pub`` to it; ``routing.py`` lets those subnets out
by ``pub`` and lets in only the replies (nothing reaches them from outside). A private NAT
gateway (``public_ip`` None) has nothing to claim: karri has no transit gateways or
peering, so it leads nowhere, as it would on AWS without them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class NatGateway:
    nat_gateway_id: str
    public_ip: str | None
    """The elastic IP it goes out as (None: a private NAT gateway)."""
    subnets: tuple[str, ...] = ()
    """The CIDRs of the subnets routed through it (0.0.0.0/0 → this gateway)."""


@dataclass(frozen=True)
class NatGatewayReport:
    """What the node has in force after ``set_nat_gateways``: the gateways set up, and
    those it could not set up (their elastic IP is held by another owner on the host)."""

    in_force: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


def snat_sources(gateways: Iterable[NatGateway], held: Iterable[str]) -> dict[str, str]:
    """Subnet CIDR -> the public IP it goes out as, for the gateways whose address the
    node holds (``held``)."""
    have = set(held)
    return {subnet: g.public_ip for g in gateways if g.public_ip in have for subnet in g.subnets}
