"""The node contract: what the cloud needs of a node, which ``Node`` and ``FakeNode``
implement.

The reconciler owns the node (lifecycle, health, console, capacity) and hands it to the
EBS worker, which needs only its volume half (``NodeVolumes``, declared beside its
consumer ``NodeVolumeHost``). The node runs in karri's process; the same calls can
later travel to a node agent on another host. Arguments and answers are the node's plain,
immutable data; failures are ``NodeError``s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from karri.cloud.volumes.nodehost import NodeVolumes
from karri.node import (
    AdoptReport,
    Capacity,
    ExitCallback,
    GroupRules,
    InstanceExit,
    InstanceHealth,
    InstanceInfo,
    InstanceSpec,
    MetadataLookup,
    NatGateway,
    NatGatewayReport,
    NetworkCard,
    Overlay,
    RecoveryCallback,
    Resolver,
    SubnetAcl,
    VpcRoutes,
)


@runtime_checkable
class NodeDriver(NodeVolumes, Protocol):
    accelerator: str
    accelerator_reason: str
    last_fault: str | None

    async def start(self) -> AdoptReport:
        """Probe the accelerator, start serving, adopt what kept running; report it."""
        ...

    async def close(self, stop_instances: bool = False) -> None: ...

    async def launch(self, spec: InstanceSpec) -> InstanceInfo:
        """Start the instance (again, for one whose guest has ended)."""
        ...

    async def reboot(self, instance_id: str) -> None: ...

    async def shutdown(self, instance_id: str, timeout: float = 60.0) -> InstanceExit:
        """Power the guest off (ACPI, then the hard way after ``timeout``)."""
        ...

    async def destroy(self, instance_id: str) -> None:
        """End the guest and forget the instance; an unknown id is not an error."""
        ...

    def forget_image(self, image_id: str) -> None:
        """The image was deregistered: the node's cached copy goes once no instance on
        it uses the image."""
        ...

    def console_output(self, instance_id: str, max_bytes: int = 64 * 1024) -> bytes: ...
    def capacity(self) -> Capacity: ...

    def health(self, instance_id: str) -> InstanceHealth:
        """The status checks, from what the node observed."""
        ...

    def summary(self) -> dict[str, Any]: ...

    # -- networking: in force at once on running instances ----------------------------

    async def set_groups(self, vpc_id: str, groups: Sequence[GroupRules]) -> None:
        """Every security group of the VPC with its rules (one left out is removed);
        callable before ``start`` (what adoption starts from)."""
        ...

    async def set_instance_groups(self, instance_id: str, group_ids: Sequence[str]) -> None:
        """The ids of the groups the instance is a member of."""
        ...

    async def set_internet_subnets(
        self, vpc_id: str, subnets: Sequence[str] | None, masquerade: str | None = None
    ) -> None:
        """The VPC's subnets (CIDRs) whose instances reach outside and are reached at their
        public addresses (a route to an attached internet gateway); None: all. Their
        instances without a public IP go out as ``masquerade`` (a real uplink's; None:
        they reach nothing outside). Callable before ``start``, like ``set_groups``."""
        ...

    async def set_nat_gateways(
        self, vpc_id: str, gateways: Sequence[NatGateway]
    ) -> NatGatewayReport | None:
        """Every NAT gateway of the VPC (one left out is removed), each with the subnets
        routed through it; answers which are in force (None before ``start``: kept for
        it, nothing observed yet)."""
        ...

    async def set_vpc_routes(self, vpc_id: str, routes: VpcRoutes) -> None:
        """Each subnet's routes to network interfaces (next hop: the interface's private
        address, None: a blackhole) and the interfaces whose SourceDestCheck is off.
        Callable before ``start``, like ``set_groups``."""
        ...

    async def set_overlay(self, vpc_id: str, overlay: Overlay) -> None:
        """What joins the VPC's subnets here to the same subnets on other nodes: this
        node's own address, each subnet's VNI and the VPC's ports on other nodes
        (``overlay.py``). Callable before ``start``, like ``set_groups``."""
        ...

    async def set_network_acls(self, vpc_id: str, acls: Sequence[SubnetAcl] | None) -> None:
        """The network ACL of each of the VPC's subnets (None: nothing filtered). Callable
        before ``start``, like ``set_groups``."""
        ...

    async def set_dhcp_options(self, vpc_id: str, options: Mapping[str, Sequence[str]]) -> None:
        """What the VPC's DHCP server hands out besides addresses and routers
        (``domain-name``, ``domain-name-servers``, ...). Callable before ``start``."""
        ...

    async def set_resolver(self, vpc_id: str, resolver: Resolver | None) -> None:
        """The VPC's DNS server (AWS's Amazon DNS server), or none where the VPC has DNS
        support off. Callable before ``start``."""
        ...

    async def attach_interface(self, instance_id: str, card: NetworkCard) -> None:
        """Hot-plug an extra interface into the running guest (a no-op if it has it)."""
        ...

    async def set_interface_groups(
        self, instance_id: str, interface_id: str, group_ids: Sequence[str]
    ) -> None:
        """The ids of the groups an extra interface of the instance is a member of."""
        ...

    async def set_private_addresses(
        self, instance_id: str, interface_id: str | None, secondary_ips: Sequence[str]
    ) -> None:
        """The secondary private addresses of the instance's primary interface (None) or
        of an extra one; in force at once."""
        ...

    async def detach_interface(
        self, instance_id: str, interface_id: str, timeout: float = 30.0
    ) -> None:
        """Hot-unplug one (``DetachTimeout`` if the guest has not released it within
        ``timeout``; an interface it does not have is not an error)."""
        ...

    async def set_public_ip(self, instance_id: str, public_ip: str | None) -> str | None:
        """Map ``public_ip`` (every port) to the running instance, or none;
        ``AddressTaken`` if another owner on the host holds it (nothing changes)."""
        ...


NodeFactory = Callable[[MetadataLookup, ExitCallback, RecoveryCallback], NodeDriver]
"""Builds the node with the cloud's answers to its questions (``MetadataLookup``: an
instance's metadata by its id) and the
hearers of its reports: every guest's end (``ExitCallback``, called on the loop, also for
ends found at ``start``) and every instance it relaunched on its own (``RecoveryCallback``)."""
