"""FakeNode: the node contract without guests, for API-scale benchmarks and unit tests.

It keeps its instances and their attachments in memory and starts nothing, so a benchmark
can put a thousand instances in the database on a 2-core machine, and the reconciler can be
tested in-process. It observes nothing: every health check is ``insufficient-data``. What a
real node would see happen to a guest on its own, a test tells it (``guest_ended``,
``relaunched``). ``karri up`` uses it only when asked by name (``--node-driver fake``), and
every figure measured with it must say so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from karri.node.acls import SubnetAcl
from karri.node.codec import encode
from karri.node.dns import Resolver
from karri.node.errors import AddressTaken, InstanceExists, NodeError, UnknownInstance, VolumeError
from karri.node.firewall import GroupRules
from karri.node.natgateways import NatGateway, NatGatewayReport
from karri.node.node import ExitCallback, RecoveryCallback
from karri.node.overlay import Overlay
from karri.node.spec import (
    AdoptReport,
    Attachment,
    Capacity,
    Check,
    DiskFormat,
    DiskLimits,
    ExitReason,
    FileTarget,
    InstanceExit,
    InstanceHealth,
    InstanceInfo,
    InstanceSpec,
    NetworkCard,
    NodeEvent,
    VmState,
    VolumeDisk,
    VolumeTarget,
)
from karri.node.subnetroutes import VpcRoutes


class FakeNode:
    accelerator = "fake"
    accelerator_reason = "--node-driver fake: no guests run"
    last_fault: str | None = None

    def __init__(
        self, *, on_exit: ExitCallback | None = None, on_recovery: RecoveryCallback | None = None
    ) -> None:
        self._on_exit = on_exit
        self._on_recovery = on_recovery
        self._instances: dict[str, InstanceInfo] = {}
        self._specs: dict[str, InstanceSpec] = {}
        self._next_public = 1
        self.groups: dict[str, tuple[GroupRules, ...]] = {}
        """What ``set_groups`` was last given, per VPC (for tests to read)."""
        self.internet: dict[str, tuple[str, ...] | None] = {}
        """What ``set_internet_subnets`` was last given, per VPC."""
        self.masquerade: dict[str, str | None] = {}
        """The masquerade address ``set_internet_subnets`` was last given, per VPC."""
        self.held_elsewhere: set[str] = set()
        """Public addresses another owner on the host holds (tests add to it)."""
        self.acls: dict[str, tuple[SubnetAcl, ...] | None] = {}
        """What ``set_network_acls`` was last given, per VPC."""
        self.dhcp: dict[str, dict[str, tuple[str, ...]]] = {}
        """What ``set_dhcp_options`` was last given, per VPC."""
        self.resolvers: dict[str, Resolver | None] = {}
        """What ``set_resolver`` was last given, per VPC."""
        self.nat_gateways: dict[str, tuple[NatGateway, ...]] = {}
        """What ``set_nat_gateways`` was last given, per VPC."""
        self.routes: dict[str, VpcRoutes] = {}
        """What ``set_vpc_routes`` was last given, per VPC."""
        self.overlays: dict[str, Overlay] = {}
        """What ``set_overlay`` was last given, per VPC."""

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> AdoptReport:
        return AdoptReport()

    async def close(self, stop_instances: bool = False) -> None:
        self._instances.clear()
        self._specs.clear()

    async def launch(self, spec: InstanceSpec) -> InstanceInfo:
        old = self._instances.get(spec.instance_id)
        if old is not None and old.state == VmState.RUNNING:
            raise InstanceExists(f"{spec.instance_id} is already running")
        public = f"127.65.{self._next_public // 250}.{self._next_public % 250 + 1}"
        self._next_public += 1
        if isinstance(spec.public_ip, str):  # the address the cloud chose, if free
            public = None if spec.public_ip in self.held_elsewhere else spec.public_ip
        elif not spec.public_ip:
            public = None
        info = InstanceInfo(
            spec.instance_id,
            VmState.RUNNING,
            None,
            "tcg",
            spec.vcpus,
            spec.memory_mib,
            spec.mac,
            spec.private_ip,
            public,
            tuple(Attachment(v.volume_id, v.target, v.format) for v in spec.volumes),
            None,
            time.time(),
        )
        self._instances[spec.instance_id] = info
        self._specs[spec.instance_id] = spec
        return info

    async def reboot(self, instance_id: str) -> None:
        self._running(instance_id)

    async def shutdown(self, instance_id: str, timeout: float = 60.0) -> InstanceExit:
        info = self.info(instance_id)
        if info.exit is not None:
            return info.exit
        return self._end(instance_id, ExitReason.HOST_SHUTDOWN, "fake")

    def forget_image(self, image_id: str) -> None:
        """No image cache: nothing to free."""

    async def destroy(self, instance_id: str) -> None:
        info = self._instances.get(instance_id)
        if info is not None and info.exit is None:
            self._end(instance_id, ExitReason.HOST_KILLED, "QEMU was ended by the node")
        self._instances.pop(instance_id, None)
        self._specs.pop(instance_id, None)

    # --- networking: recorded, nothing is filtered ----------------------------------------
    async def set_groups(self, vpc_id: str, groups: Sequence[GroupRules]) -> None:
        self.groups[vpc_id] = tuple(groups)

    async def set_internet_subnets(
        self, vpc_id: str, subnets: Sequence[str] | None, masquerade: str | None = None
    ) -> None:
        self.internet[vpc_id] = None if subnets is None else tuple(subnets)
        self.masquerade[vpc_id] = masquerade

    async def set_nat_gateways(
        self, vpc_id: str, gateways: Sequence[NatGateway]
    ) -> NatGatewayReport:
        """Recorded; in force unless the address is ``held_elsewhere`` (nothing is
        translated: a fake)."""
        self.nat_gateways[vpc_id] = tuple(gateways)
        refused = [g for g in gateways if g.public_ip in self.held_elsewhere]
        return NatGatewayReport(
            tuple(g.nat_gateway_id for g in gateways if g not in refused),
            tuple(g.nat_gateway_id for g in refused),
        )

    async def set_vpc_routes(self, vpc_id: str, routes: VpcRoutes) -> None:
        self.routes[vpc_id] = routes

    async def set_overlay(self, vpc_id: str, overlay: Overlay) -> None:
        self.overlays[vpc_id] = overlay

    async def set_network_acls(self, vpc_id: str, acls: Sequence[SubnetAcl] | None) -> None:
        self.acls[vpc_id] = None if acls is None else tuple(acls)

    async def set_dhcp_options(self, vpc_id: str, options: Mapping[str, Sequence[str]]) -> None:
        self.dhcp[vpc_id] = {k: tuple(v) for k, v in options.items()}

    async def set_resolver(self, vpc_id: str, resolver: Resolver | None) -> None:
        self.resolvers[vpc_id] = resolver

    async def set_instance_groups(self, instance_id: str, group_ids: Sequence[str]) -> None:
        spec = self._specs[self.info(instance_id).instance_id]
        self._specs[instance_id] = dataclasses.replace(spec, security_groups=tuple(group_ids))

    async def attach_interface(self, instance_id: str, card: NetworkCard) -> None:
        self._running(instance_id)
        spec = self._specs[instance_id]
        if all(c.interface_id != card.interface_id for c in spec.cards):
            cards = tuple(sorted((*spec.cards, card), key=lambda c: c.device_index))
            self._specs[instance_id] = dataclasses.replace(spec, cards=cards)

    async def detach_interface(
        self, instance_id: str, interface_id: str, timeout: float = 30.0
    ) -> None:
        spec = self._specs.get(instance_id)
        if spec is not None:
            cards = tuple(c for c in spec.cards if c.interface_id != interface_id)
            self._specs[instance_id] = dataclasses.replace(spec, cards=cards)

    async def set_interface_groups(
        self, instance_id: str, interface_id: str, group_ids: Sequence[str]
    ) -> None:
        spec = self._specs[self.info(instance_id).instance_id]
        cards = tuple(
            dataclasses.replace(c, security_groups=tuple(group_ids))
            if c.interface_id == interface_id
            else c
            for c in spec.cards
        )
        self._specs[instance_id] = dataclasses.replace(spec, cards=cards)

    async def set_private_addresses(
        self, instance_id: str, interface_id: str | None, secondary_ips: Sequence[str]
    ) -> None:
        spec = self._specs[self.info(instance_id).instance_id]
        wanted = tuple(secondary_ips)
        if interface_id is None:
            self._specs[instance_id] = dataclasses.replace(spec, secondary_ips=wanted)
            return
        cards = tuple(
            dataclasses.replace(c, secondary_ips=wanted) if c.interface_id == interface_id else c
            for c in spec.cards
        )
        self._specs[instance_id] = dataclasses.replace(spec, cards=cards)

    def spec(self, instance_id: str) -> InstanceSpec:
        """The instance's spec as the node holds it now (launch, then later changes)."""
        return self._specs[instance_id]

    def cards(self, instance_id: str) -> tuple[NetworkCard, ...]:
        """The extra interfaces the instance has (what a guest would see as its NICs)."""
        return self._specs[instance_id].cards

    async def set_public_ip(self, instance_id: str, public_ip: str | None) -> str | None:
        info = self._running(instance_id)
        if public_ip in self.held_elsewhere:
            raise AddressTaken(f"{public_ip} is held by another owner")
        self._instances[instance_id] = dataclasses.replace(info, public_ip=public_ip)
        return public_ip

    # --- what a real node would observe -------------------------------------------------
    def guest_ended(self, instance_id: str, reason: ExitReason, detail: str) -> InstanceExit:
        """The guest ended on its own (powered off, crashed): reported to ``on_exit``."""
        self._running(instance_id)
        return self._end(instance_id, reason, detail)

    def relaunched(self, instance_id: str, description: str) -> NodeEvent:
        """The node relaunched the instance on its own: reported to ``on_recovery``."""
        self._running(instance_id)
        event = NodeEvent("system-reboot", description, time.time())
        if self._on_recovery:
            self._on_recovery(instance_id, event)
        return event

    # --- questions ----------------------------------------------------------------------
    def info(self, instance_id: str) -> InstanceInfo:
        try:
            return self._instances[instance_id]
        except KeyError:
            raise UnknownInstance(instance_id) from None

    def console_output(self, instance_id: str, max_bytes: int = 64 * 1024) -> bytes:
        return f"fake node: no guest runs for {self.info(instance_id).instance_id}\n".encode()

    def health(self, instance_id: str) -> InstanceHealth:
        """Nothing observed: no guest runs (AWS's ``insufficient-data``)."""
        self.info(instance_id)
        unknown = Check("insufficient-data", "the fake node runs no guests")
        return InstanceHealth(instance_id, unknown, unknown)

    def summary(self) -> dict[str, Any]:
        running = sum(1 for i in self._instances.values() if i.exit is None)
        return {
            "accelerator": self.accelerator,
            "accelerator_reason": self.accelerator_reason,
            "instances_by_health": {"insufficient-data": running},
            "last_fault": None,
            # what it was told, for tests of a node in another process (``groups``)
            "told": {"groups": encode(self.groups, dict[str, tuple[GroupRules, ...]])},
        }

    def capacity(self) -> Capacity:
        """Room for thousands of instances (the API benchmarks launch 1,000), not for an
        unbounded MaxCount: one RunInstances writes every instance row it launches."""
        return Capacity(10_000, 10_000 * 32 * 1024, 0, 0)

    # --- volumes: attachments in memory; the guest lets go at once -------------------------
    async def attach_volume(
        self,
        instance_id: str,
        volume_id: str,
        target: VolumeTarget,
        fmt: DiskFormat = "raw",
        limits: DiskLimits | None = None,
        secret: str | None = None,
    ) -> None:
        _file_of(target)  # VolumeError for what the fake cannot open
        info = self._running(instance_id)
        for other in self._instances.values():
            if any(a.volume_id == volume_id for a in other.volumes):
                raise VolumeError(f"{volume_id} is already attached to {other.instance_id}")
        attachment = Attachment(volume_id, target, fmt, limits=limits)
        self._set_volumes(info, (*info.volumes, attachment))

    async def resize_volume(self, instance_id: str, volume_id: str, size: int) -> None:
        """Grow the volume file (as QEMU's block_resize does)."""
        path = self._sources(instance_id)[volume_id]
        if path.stat().st_size < size:
            await asyncio.to_thread(os.truncate, path, size)

    async def throttle_volume(self, instance_id: str, volume_id: str, limits: DiskLimits) -> None:
        info = self._running(instance_id)
        self._sources(instance_id)  # VolumeError if not attached
        self._set_volumes(
            info,
            tuple(
                dataclasses.replace(a, limits=limits) if a.volume_id == volume_id else a
                for a in info.volumes
            ),
        )

    async def detach_volume(
        self, instance_id: str, volume_id: str, force: bool = False, timeout: float | None = None
    ) -> None:
        info = self.info(instance_id)
        if not any(a.volume_id == volume_id for a in info.volumes):
            raise VolumeError(f"{volume_id} is not attached to {instance_id}")
        self._set_volumes(info, tuple(a for a in info.volumes if a.volume_id != volume_id))

    async def backup_volume(
        self,
        instance_id: str,
        volume_id: str,
        target: Path,
        fmt: DiskFormat = "raw",
        secret: str | None = None,
    ) -> None:
        """A plain copy of the volume file (no guest writes to it)."""
        source = self._sources(instance_id)[volume_id]
        await asyncio.to_thread(shutil.copyfile, source, target)

    def _sources(self, instance_id: str) -> _Sources:
        """The files of the running guest's volumes (its EBS root too), by volume id."""
        info = self._running(instance_id)
        root = self._specs[instance_id].root
        sources = _Sources(instance_id, {a.volume_id: _file_of(a.target) for a in info.volumes})
        if isinstance(root, VolumeDisk):
            sources[root.volume_id] = _file_of(root.target)
        return sources

    # --- internals ----------------------------------------------------------------------
    def _running(self, instance_id: str) -> InstanceInfo:
        info = self.info(instance_id)
        if info.exit is not None:
            raise NodeError(f"{instance_id} is not running")
        return info

    def _set_volumes(self, info: InstanceInfo, volumes: tuple[Attachment, ...]) -> None:
        self._instances[info.instance_id] = dataclasses.replace(info, volumes=volumes)

    def _end(self, instance_id: str, reason: ExitReason, detail: str) -> InstanceExit:
        """The guest is gone: the instance stays known (with its exit) until destroyed."""
        exit = InstanceExit(instance_id, reason, detail, time.time())
        info = self.info(instance_id)
        self._instances[instance_id] = dataclasses.replace(
            info, state=VmState.EXITED, public_ip=None, exit=exit
        )
        if self._on_exit:
            self._on_exit(exit)
        return exit


def _file_of(target: VolumeTarget) -> Path:
    if not isinstance(target, FileTarget):
        raise VolumeError(f"the fake node opens volume files only, not {target}")
    return target.path


class _Sources(dict[str, Path]):
    """Volume files by id; a volume not attached is a ``VolumeError``."""

    def __init__(self, instance_id: str, files: dict[str, Path]) -> None:
        super().__init__(files)
        self.instance_id = instance_id

    def __missing__(self, volume_id: str) -> Path:
        raise VolumeError(f"{volume_id} is not attached to {self.instance_id}")
