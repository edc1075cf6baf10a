"""What each node hosting a VPC is told of the VPC's other nodes (``node/overlay.py``):
its own address, the VNI of each subnet, and every interface of the VPC's live instances
that is on another node (its MAC, addresses, groups and that node's address).

``vpc_ports`` and ``vpc_links`` read the database; ``overlays`` is a pure function of
what they read and of the nodes' addresses (``Fleet.address``), one ``Overlay`` per node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from karri.cloud.instances import states
from karri.cloud.instances.groups import parsed
from karri.cloud.instances.models import Instance
from karri.cloud.instances.nic_settling import secondaries_of
from karri.cloud.instances.placement import NodeName
from karri.cloud.network.models import NetworkInterface, Subnet
from karri.node import Overlay, RemotePort, SubnetLink
from karri.node.network import tap_name
from karri.node.overlay import VXLAN_PORT, vni_of
from karri.node.qemu import card_tap

ATTACHED = "attached"


@dataclass(frozen=True)
class PlacedPort:
    """An interface of a live instance and the node it is on (``port.host`` unset)."""

    node: NodeName
    port: RemotePort


def vpc_links(session: Session, vpc_id: str) -> tuple[SubnetLink, ...]:
    """The VNI of each of the VPC's subnets (``vni_of`` its id)."""
    rows = session.execute(
        select(Subnet.id, Subnet.cidr_block).where(Subnet.vpc_id == vpc_id).order_by(Subnet.id)
    )
    return tuple(SubnetLink(cidr, vni_of(subnet_id)) for subnet_id, cidr in rows)


def vpc_ports(session: Session, vpc_id: str) -> list[PlacedPort]:
    """Every interface of the VPC's live instances (primary, and extra ones attached)."""
    rows = session.execute(
        select(NetworkInterface, Instance.node, Instance.security_groups, Subnet.cidr_block)
        .join(Instance, Instance.id == NetworkInterface.instance_id)
        .join(Subnet, Subnet.id == NetworkInterface.subnet_id)
        .where(
            NetworkInterface.vpc_id == vpc_id,
            Instance.state.in_(states.ACTIVE),
            or_(
                NetworkInterface.device_index == 0,
                NetworkInterface.attachment_status == ATTACHED,
            ),
        )
        .order_by(NetworkInterface.id)
    ).all()
    secondary = secondaries_of(session, [row.id for row, *_ in rows])
    placed = []
    for row, node, instance_groups, cidr in rows:
        primary = row.device_index == 0
        # the primary interface's groups are the instance's (as ``vpc_members`` says)
        groups = parsed(instance_groups if primary else row.security_groups)
        port = RemotePort(
            name=tap_name(row.instance_id or "") if primary else card_tap(row.id),
            mac=row.mac,
            ip=row.private_ip,
            subnet=cidr,
            host="",
            group_ids=tuple(g.group_id for g in groups),
            secondary=tuple(secondary.get(row.id, ())),
        )
        placed.append(PlacedPort(node, port))
    return placed


def overlays(
    addresses: Mapping[NodeName, str | None],
    links: Sequence[SubnetLink],
    ports: Iterable[PlacedPort],
) -> dict[NodeName, Overlay]:
    """What each node of ``addresses`` (those that get the VPC's state, with their own
    addresses) is told: the ports on every other node whose address is known. A node
    without an address is told nothing of the others (its VPC stays on its own)."""
    ports = list(ports)
    udp = {a: vxlan_port(a) for a in addresses.values() if a}  # once per node, not per port
    told = {}
    for node, local in addresses.items():
        if local is None:
            told[node] = Overlay(None, tuple(links), ())
            continue
        remote = tuple(
            dataclasses.replace(p.port, host=host, port=udp[host])
            for p in ports
            if p.node != node and (host := addresses.get(p.node)) and host != local
        )
        told[node] = Overlay(local, tuple(links), remote, udp[local])
    return told


def vxlan_port(address: str) -> int:
    """The UDP port of the VXLAN devices of the node at ``address``: 4789, but nodes on
    loopback addresses share one host's network namespace (a test, or a small cloud on
    one machine), where one VNI can have one device per port: each takes 4790 + the low
    12 bits of its address."""
    if IPv4Address(address).is_loopback:
        return VXLAN_PORT + 1 + (int(IPv4Address(address)) & 0xFFF)
    return VXLAN_PORT
