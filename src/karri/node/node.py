"""The node controller: the instances of one host, behind the interface the cloud calls.

Everything runs in the caller's asyncio loop (inside ``karri up`` today). The node keeps
no state the cloud needs besides what is on disk under ``DATA_DIR/node/``; a new Node on
the same data dir adopts the QEMU processes an earlier one left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from karri.ids import is_valid_id
from karri.node import accel, arp, disks, guestimage, imagefetch, nics, qemu
from karri.node.acls import SubnetAcl
from karri.node.commands import pid_alive, process_state, run, terminate
from karri.node.dhcp import DhcpOptions, dhcp_options
from karri.node.dns import Resolver
from karri.node.errors import (
    AddressTaken,
    InstanceExists,
    InsufficientCapacity,
    NodeError,
    UnknownInstance,
)
from karri.node.firewall import GroupRules
from karri.node.health import DhcpLog, HealthBook
from karri.node.hotplug import Hotplug
from karri.node.identity import IdentitySigner
from karri.node.imagecache import ImageCache
from karri.node.imds import MetadataService, Tokens
from karri.node.metadata import MetadataLookup
from karri.node.natgateways import NatGateway, NatGatewayReport
from karri.node.nbdrelay import NbdRelays
from karri.node.netns import (
    data_dir_namespaces,
    namespace_name,
    namespace_processes,
    tap_fds,
)
from karri.node.network import METADATA_IP, Port, VpcNetwork, gateway_of, tap_name
from karri.node.overlay import Overlay
from karri.node.publicnat import PublicPool
from karri.node.qmp import QMPError
from karri.node.secretfiles import secret_files, with_keys
from karri.node.signedviews import SignedViews, Signing, local
from karri.node.spec import (
    Accelerator,
    AdoptReport,
    Attachment,
    Capacity,
    Check,
    DiskFormat,
    DiskLimits,
    ExitReason,
    ImageRef,
    ImageRoot,
    InstanceExit,
    InstanceHealth,
    InstanceInfo,
    InstanceSpec,
    NetworkCard,
    NodeEvent,
    NodeSettings,
    RbdTarget,
    VmState,
    VolumeDisk,
    VolumeTarget,
)
from karri.node.store import RECORD, InstanceRecord
from karri.node.subnetroutes import VpcRoutes
from karri.node.toldstate import ToldState
from karri.node.vm import Vm, running_vm, vm_of

log = logging.getLogger("karri.node")

ExitCallback = Callable[[InstanceExit], None]
RecoveryCallback = Callable[[str, NodeEvent], None]
TRIM_INTERVAL = 2.0
HEALTH_INTERVAL = 2.0
POWER_BUTTON_REPEAT = 10.0
MIN_MEMORY_MIB = 16


def _no_metadata(_instance_id: str) -> None:
    return None


@dataclass
class _Vpc:
    """A VPC with instances on this node: its network and the services in it."""

    net: VpcNetwork
    metadata: MetadataService
    dhcp_log: DhcpLog
    probers: dict[str, arp.ArpProber] = field(default_factory=dict)  # by bridge


class Node:
    """The instances of this host.

    ``metadata`` answers the metadata service's "what is this instance's metadata" (the
    node finds the instance from the VPC and source address of the request);
    ``on_exit`` hears of every QEMU process that ends (the guest powered off, it crashed,
    someone killed it, the node stopped it), including those found gone at start;
    ``on_recovery`` of every instance the node relaunched on its own (after a KVM fault);
    ``volume_key`` gives an encrypted volume's passphrase to such a relaunch when the node
    no longer holds it (an instance adopted after a restart: its record keeps no key);
    ``identity`` signs identity documents (a joined node: the cloud, asked), else the
    settings' ``identity_key`` does, else the metadata service serves no signed views.
    """

    def __init__(
        self,
        data_dir: Path,
        settings: NodeSettings | None = None,
        *,
        metadata: MetadataLookup | None = None,
        on_exit: ExitCallback | None = None,
        on_recovery: RecoveryCallback | None = None,
        volume_key: Callable[[str], str | None] | None = None,
        identity: Signing | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.settings = settings or NodeSettings()
        self.home = data_dir / "node"
        self.relays = NbdRelays(self.home / "nbd")  # NBD exports, reached from namespaces
        self.instances_dir = self.home / "instances"
        self.accelerator: Accelerator = "tcg"
        self.accelerator_reason = "not probed yet"
        self._accel_cache = accel.AcceleratorCache(
            self.settings.accelerator_cache or accel.host_cache()
        )
        self.vpcs: dict[str, _Vpc] = {}
        self._groups: dict[str, tuple[GroupRules, ...]] = {}
        # VPC -> the subnets that reach outside, the masquerade address
        self._internet: dict[str, tuple[tuple[str, ...] | None, str | None]] = {}
        self._acls: dict[str, tuple[SubnetAcl, ...] | None] = {}
        self._dhcp: dict[str, DhcpOptions] = {}
        self._resolvers: dict[str, Resolver | None] = {}
        self._nat: dict[str, tuple[NatGateway, ...]] = {}  # VPC -> its NAT gateways
        self._routes: dict[str, VpcRoutes] = {}  # VPC -> its routes to interfaces
        self._overlays: dict[str, Overlay] = {}  # VPC -> its ports on other nodes
        self._vpc_states: dict[str, dict[str, Any]] = {  # by ``toldstate.KINDS``' names
            "groups": self._groups, "internet": self._internet, "acls": self._acls,
            "dhcp": self._dhcp, "resolver": self._resolvers, "routes": self._routes,
            "overlay": self._overlays,
        }  # fmt: skip
        self.told = ToldState(self.home / "told")  # kept for a restart (toldstate.py)
        self._kept: dict[str, dict[str, Any]] = {}  # VPC -> what its file holds
        self._started = False  # every namespace kept from before is adopted
        self._vpc_locks: dict[str, asyncio.Lock] = {}
        self.pool = PublicPool(self.settings.public_ip_pool, str(data_dir.resolve()))
        self._lookup = metadata or _no_metadata
        key = self.settings.identity_key
        if identity is None and key is not None:
            identity = local(IdentitySigner(key))
        self._signed = SignedViews(identity) if identity is not None else None
        self._tokens: Tokens | None = None
        self._on_exit = on_exit
        self._vms: dict[str, Vm] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.hotplug = Hotplug(self._vms, self._lock, self.settings.nbd_tls)
        self.images = ImageCache(self.home / "images")
        self._background: set[asyncio.Task] = set()
        self._trimmer: asyncio.Task | None = None
        self._on_recovery = on_recovery
        self._volume_key = volume_key or (lambda _volume_id: None)
        self.health_book = HealthBook()
        self._watcher: asyncio.Task | None = None
        self._rechecked: set[str] = set()
        self.last_fault: str | None = None
        """The latest accelerator fault or recovery, for `karri status`."""

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> AdoptReport:
        """Probe the accelerator, set up the network and metadata service, adopt instances."""
        self.instances_dir.mkdir(parents=True, exist_ok=True)
        s = self.settings
        guest = await _probe_guest() if s.accelerator == "auto" else None
        choice = await accel.choose(
            s.qemu, s.accelerator, s.kvm_probe_timeout, self._accel_cache, guest
        )
        self.accelerator, self.accelerator_reason = choice.accelerator, choice.reason
        log.info("node accelerator: %s (%s)", self.accelerator, self.accelerator_reason)
        self._tokens = Tokens(self._token_secret())
        live: dict[str, list[InstanceRecord]] = {}
        legacy = {pid for pid, _ in namespace_processes(namespace_name(self.data_dir))}
        upgraded: list[InstanceRecord] = []
        for r in self._records().values():
            if r.exit is None and r.pid and _alive(r):
                if r.pid in legacy:
                    upgraded.append(r)  # ended with the pre-VPC namespace, below
                else:
                    live.setdefault(r.spec.vpc_id, []).append(r)
        await asyncio.to_thread(self._recall, set(live))
        await self._reclaim({namespace_name(self.data_dir, vpc) for vpc in live})
        upgrades = [self._ended_by_upgrade(r) for r in upgraded]
        for vpc_id, records in live.items():
            # under the VPC's lock: a change of its groups or routes made meanwhile (the
            # cloud serves while the node adopts) waits, then applies to the namespace
            async with self._vpc_lock(vpc_id):
                await self._open_vpc(
                    vpc_id,
                    [p for r in records for p in self._ports(r)],
                    {r.spec.instance_id: r.public_ip for r in records if r.public_ip},
                    [r.pid for r in records if r.pid],
                )
        for vpc_id, gateways in self._nat.items():  # NAT gateways in VPCs with no instance
            async with self._vpc_lock(vpc_id):
                if gateways and vpc_id not in self.vpcs:
                    await self._open_vpc(vpc_id, [], {})
        self._started = True
        report = await self.adopt()
        self.images.reconcile(self._vms)  # markers of instances this node no longer holds
        if upgrades:
            report = AdoptReport(report.running, (*report.exited, *upgrades))
            for exit in upgrades:
                if self._on_exit:
                    self._on_exit(exit)
        self._trimmer = asyncio.create_task(self._trim_consoles())
        self._watcher = asyncio.create_task(self._watch_health(), name="node-health")
        return report

    def _recall(self, live: set[str]) -> None:
        """What the node was told of the VPCs of its ``live`` instances before it stopped,
        where it was not told anew before this start; what is kept of other VPCs (and was
        not told now) is forgotten."""
        for vpc_id in live:
            for kind, value in self.told.load(vpc_id).items():
                self._vpc_states[kind].setdefault(vpc_id, value)
        told_now = {vpc_id for kept in self._vpc_states.values() for vpc_id in kept}
        for vpc_id in self.told.vpcs() - live - told_now:
            self.told.forget(vpc_id)

    def _keep(self, vpc_id: str) -> None:
        """Keep what the node was told of the VPC, for its next start (``_recall``)."""
        state = {kind: kept[vpc_id] for kind, kept in self._vpc_states.items() if vpc_id in kept}
        if self._kept.get(vpc_id) == state:
            return  # a push of what it has (the cloud's own node is told at every push)
        try:
            self.told.save(vpc_id, state)
            self._kept[vpc_id] = state
        except OSError as error:  # the VPC is in force now; a restart would adopt it bare
            log.warning("%s: keeping what it was told failed: %s", vpc_id, error)

    def _ended_by_upgrade(self, record: InstanceRecord) -> InstanceExit:
        """A guest of the pre-VPC namespace (which ``_reclaim`` has just ended with its
        namespace): recorded as ended by the upgrade, its disks kept for a relaunch."""
        iid = record.spec.instance_id
        log.warning("%s ran in the namespace of karri before VPCs: ended, to be relaunched", iid)
        record.exit = InstanceExit(
            iid,
            ExitReason.NETWORK_UPGRADE,
            "karri's network was upgraded to one namespace per VPC",
            time.time(),
        )
        record.pid = None
        record.save(self.instances_dir / iid)
        return record.exit

    async def close(self, stop_instances: bool = False) -> None:
        """Stop serving; with ``stop_instances`` power the guests off first (ACPI, then kill).

        Otherwise QEMU processes keep running, and so do the namespaces they live in, with
        their security groups and public addresses in force.
        """
        for task in (self._trimmer, self._watcher):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if stop_instances:
            running = [vm.instance_id for vm in self._vms.values() if vm.alive]
            await asyncio.gather(*(self.shutdown(i, self.settings.stop_timeout) for i in running))
        for vm in self._vms.values():
            await vm.release()
        if self._background:  # exits being handled: their network freed, the cloud told
            await asyncio.wait(list(self._background), timeout=30)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for vpc_id in list(self.vpcs):
            still_running = any(
                vm.alive and vm.record.spec.vpc_id == vpc_id for vm in self._vms.values()
            )
            await self._close_vpc(vpc_id, delete_namespace=not still_running)
        self._vms.clear()
        self._started = False

    async def adopt(self) -> AdoptReport:
        """Re-attach to the QEMU processes on disk that still run; report those that ended.

        Instances found gone are also handed to ``on_exit``; instances whose end was
        already reported (stopped earlier) stay known, quietly, until destroyed.
        """
        running: list[str] = []
        exited: list[InstanceExit] = []
        for instance_id, record in self._records().items():
            if instance_id in self._vms:
                continue
            vm = self._new_vm(record)
            self._vms[instance_id] = vm
            if record.exit is not None:
                continue
            self.health_book.restarted(instance_id, vm.console.size())
            if await vm.adopt():
                await self.hotplug.reconcile(vm)
                await self._plug(record)
                await self._publish(vm)
                running.append(instance_id)
            else:
                assert vm.exit is not None
                exited.append(vm.exit)
                self._vm_exited(vm)
        log.info("adopted %d running instance(s); %d had ended", len(running), len(exited))
        return AdoptReport(tuple(running), tuple(exited))

    # --- instances -------------------------------------------------------------------------
    async def launch(self, spec: InstanceSpec) -> InstanceInfo:
        """Start an instance (or start again one whose QEMU has ended: an EBS-backed start)."""
        iid = spec.instance_id
        if not is_valid_id(iid, "i"):
            raise NodeError(f"malformed instance id {iid!r}")
        if spec.vcpus < 1 or spec.memory_mib < MIN_MEMORY_MIB:
            raise NodeError(f"{iid}: needs at least 1 vCPU and {MIN_MEMORY_MIB} MiB")
        spec = await asyncio.to_thread(self._localized, spec)
        async with self._lock(iid):
            old = self._vms.get(iid)
            if old and old.alive:
                raise InstanceExists(f"{iid} is already running")
            if not self.capacity().fits(spec.vcpus, spec.memory_mib):
                raise InsufficientCapacity(
                    f"{iid}: {spec.vcpus} vCPU / {spec.memory_mib} MiB do not fit"
                )
            self._check_port(spec)
            files = qemu.InstanceFiles(self.instances_dir / iid)
            files.dir.mkdir(parents=True, exist_ok=True)
            record = InstanceRecord(spec, self.accelerator, tap_name(iid), time.time())
            record.volumes = {
                v.volume_id: Attachment(
                    v.volume_id, v.target, v.format, limits=v.limits, secret=v.secret
                )
                for v in spec.volumes
            }
            # a guest the upgrade ended comes back with its instance store as it was
            moved = bool(old and old.exit and old.exit.reason == ExitReason.NETWORK_UPGRADE)
            vm = self._new_vm(record)
            self._vms[iid] = vm  # counts against capacity from here on
            try:
                await self._ensure_images(spec)
                await self._prepare_disks(spec, files, keep_ephemeral=moved)
                record.save(files.dir)
                await self._plug(record)  # a member of its groups before its tap exists
                self.health_book.restarted(iid, vm.console.size())
                # in the host's namespace (storage reachable: Ceph's monitors), QEMU
                # gets its taps opened in the VPC's; else it runs in the VPC's
                ns = self._net_of(vm).ns
                outside = self.settings.qemu_in_host_namespace
                taps = qemu.tap_names(spec, record.tap) if outside else []
                with (
                    tap_fds(ns, taps) as fds,
                    secret_files(files.secrets, qemu.boot_secrets(spec)),
                ):
                    cmd = qemu.command(
                        self.settings.qemu,
                        spec,
                        self.accelerator,
                        files,
                        record.tap,
                        self.settings.extra_qemu_args,
                        images=self._image_file,
                        nbd_tls=self.settings.nbd_tls,
                        tap_fds=fds,
                    )
                    await vm.spawn(cmd if outside else ns.exec_args(*cmd), tuple(fds.values()))
                record.save(files.dir)
                await self._publish(vm)
            except BaseException as exc:
                await vm.abort(f"launch failed: {exc}")
                record.save(files.dir)
                await self._unplug(iid, spec.vpc_id)
                raise
            log.info("%s: launched, QEMU pid %s, %s", iid, record.pid, self.accelerator)
            return self.info(iid)

    async def reboot(self, instance_id: str) -> None:
        """As AWS reboots: the ACPI power button first, and the guest's shutdown restarts
        the machine; a hard reset if it has not gone down within ``reboot_timeout`` (at
        once for a guest that panicked or that QEMU holds stopped). Returns at once; the
        instance keeps its disks and addresses."""
        vm = self._running(instance_id)
        evidence = self.health_book.get(instance_id)
        if vm.run_status != "running" or (evidence and evidence.panicked_at is not None):
            log.info("%s: hard reset (%s)", instance_id, vm.run_status)
            await vm.reset()
            return
        await vm.reboot()
        log.info("%s: reboot: ACPI power button", instance_id)
        self._background_task(self._reset_unless_rebooted(vm))

    async def _reset_unless_rebooted(self, vm: Vm) -> None:
        await asyncio.sleep(self.settings.reboot_timeout)
        if vm.alive and vm.rebooting and self._vms.get(vm.instance_id) is vm:
            log.warning(
                "%s: no ACPI shutdown within %gs: hard reset",
                vm.instance_id,
                self.settings.reboot_timeout,
            )
            with contextlib.suppress(NodeError, QMPError, OSError):
                await vm.reset()

    async def shutdown(self, instance_id: str, timeout: float = 60.0) -> InstanceExit:
        """ACPI power button; after ``timeout`` QEMU quits, and is killed if even that hangs."""
        vm = self._vm(instance_id)
        if vm.alive and not await self._power_button(vm, timeout):
            log.warning("%s: no power-off after %gs, quitting QEMU", instance_id, timeout)
            with contextlib.suppress(NodeError, QMPError, OSError):
                await vm.quit()
            if not await vm.wait_exited(5):
                vm.kill()
                await vm.wait_exited(None)
        assert vm.exit is not None
        return vm.exit

    async def _power_button(self, vm: Vm, timeout: float) -> bool:
        """Press the ACPI power button until the guest goes (a press early in its boot,
        before anything listens, is lost); False if it is still there after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(NodeError, QMPError, OSError):
                await vm.powerdown()
            if await vm.wait_exited(min(left, POWER_BUTTON_REPEAT)):
                return True
        return not vm.alive

    def _localized(self, spec: InstanceSpec) -> InstanceSpec:
        """The spec with its volumes as this node reaches them (``_local_target``)."""

        def disk(v: VolumeDisk) -> VolumeDisk:
            return dataclasses.replace(v, target=self._local_target(v.volume_id, v.target))

        root = disk(spec.root) if isinstance(spec.root, VolumeDisk) else spec.root
        return dataclasses.replace(spec, root=root, volumes=tuple(map(disk, spec.volumes)))

    def _local_target(self, volume_id: str, target: VolumeTarget) -> VolumeTarget:
        """``target`` as this node's QEMU reaches it: an NBD export through its relay
        (``nbdrelay.py``), an RBD image with the Ceph access the cloud handed this node
        (``NodeSettings.ceph_conf``); blocking."""
        if isinstance(target, RbdTarget) and self.settings.ceph_conf is not None:
            return dataclasses.replace(target, conf=self.settings.ceph_conf)
        return self.relays.local(volume_id, target)

    async def destroy(self, instance_id: str) -> None:
        """Kill QEMU if it runs and remove everything of the instance (overlay, logs).

        Destroying an instance the node does not know is not an error.
        """
        async with self._lock(instance_id):
            vm = self._vms.get(instance_id)
            if vm and vm.alive:
                vm.kill()
                await vm.wait_exited(30)
            if vm is not None:
                await self._unplug(instance_id, vm.record.spec.vpc_id)
                for ref in _images_of(vm.record.spec):
                    self.images.release(ref.image_id, instance_id)
                relayed = list(vm.record.volumes)
                if isinstance(vm.record.spec.root, VolumeDisk):
                    relayed.append(vm.record.spec.root.volume_id)
                for volume_id in relayed:
                    await asyncio.to_thread(self.relays.end, volume_id)
            self._vms.pop(instance_id, None)
            self.health_book.forget(instance_id)
            self._rechecked.discard(instance_id)
            directory = self.instances_dir / instance_id
            if is_valid_id(instance_id, "i") and directory.exists():
                await asyncio.to_thread(shutil.rmtree, directory, True)
        self._locks.pop(instance_id, None)

    def health(self, instance_id: str) -> InstanceHealth:
        """The status checks of an instance, from what the node has observed."""
        vm = self._vm(instance_id)
        return InstanceHealth(
            instance_id,
            self._system_check(vm),
            self.health_book.instance_check(instance_id, self.settings.life_bound),
            tuple(vm.record.events),
        )

    def summary(self) -> dict[str, Any]:
        """The node at a glance (`karri status`): accelerator and why, live instances by
        health, the last accelerator fault."""
        by_health: dict[str, int] = {}
        for iid in [i for i, vm in self._vms.items() if vm.alive]:
            health = self.health(iid)
            worst = (
                "impaired"
                if "impaired" in (health.system.status, health.instance.status)
                else health.instance.status
            )
            by_health[worst] = by_health.get(worst, 0) + 1
        return {
            "accelerator": self.accelerator,
            "accelerator_reason": self.accelerator_reason,
            "instances_by_health": dict(sorted(by_health.items())),
            "last_fault": self.last_fault,
        }

    def _system_check(self, vm: Vm) -> Check:
        if not vm.alive:
            detail = vm.exit.detail if vm.exit else "ended"
            return Check("impaired", f"QEMU is gone: {detail}", vm.exit.at if vm.exit else None)
        if vm.fault is not None:
            return Check("impaired", f"the accelerator stopped the guest: {vm.fault}")
        if process_state(vm.record.pid) == "T":
            return Check("impaired", "the QEMU process is stopped (SIGSTOP)")
        if vm.run_status not in ("running", "guest-panicked"):
            return Check("impaired", f"QEMU holds the guest {vm.run_status}")
        return Check("ok", f"QEMU runs under {vm.record.accelerator}")

    def state(self, instance_id: str) -> VmState:
        return self._vm(instance_id).state

    def info(self, instance_id: str) -> InstanceInfo:
        vm = self._vm(instance_id)
        r = vm.record
        return InstanceInfo(
            instance_id=instance_id,
            state=vm.state,
            pid=r.pid if vm.alive else None,
            accelerator=r.accelerator,
            vcpus=r.spec.vcpus,
            memory_mib=r.spec.memory_mib,
            mac=r.spec.mac,
            private_ip=r.spec.private_ip,
            public_ip=self._public_ip(vm),
            volumes=tuple(r.volumes.values()),
            exit=vm.exit,
            launched_at=r.launched_at,
        )

    def instances(self) -> list[InstanceInfo]:
        return [self.info(i) for i in sorted(self._vms)]

    def console_output(self, instance_id: str, max_bytes: int = 64 * 1024) -> bytes:
        """The last ``max_bytes`` of the serial console (also after QEMU has ended)."""
        return self._vm(instance_id).console.tail(max_bytes)

    def capacity(self) -> Capacity:
        s = self.settings
        live = [vm.record.spec for vm in self._vms.values() if vm.alive]
        return Capacity(
            vcpus_total=int((os.cpu_count() or 1) * s.cpu_overcommit),
            memory_mib_total=int(_host_memory_mib() * s.memory_overcommit) - s.reserved_memory_mib,
            vcpus_used=sum(spec.vcpus for spec in live),
            memory_mib_used=sum(spec.memory_mib for spec in live),
        )

    # --- networking (network.py, firewall.py, publicnat.py) -----------------------------
    async def set_groups(self, vpc_id: str, groups: Sequence[GroupRules]) -> None:
        """The security groups of a VPC (all of them: a group left out is removed). In
        force at once on the running instances, in one transaction of what changed; before
        ``start``, what the VPC's namespace is adopted or created with."""
        groups = tuple(groups)
        await self._vpc_state(vpc_id, "groups", groups, lambda n: n.set_groups(groups))

    async def set_internet_subnets(
        self, vpc_id: str, subnets: Sequence[str] | None, masquerade: str | None = None
    ) -> None:
        """The VPC's subnets that reach outside (``routing.py``) and the address their
        instances without a public IP go out as (a real uplink's, ``publicnat.py``), in
        force at once; before ``start``, what the VPC's namespace is adopted or created
        with."""
        subnets = None if subnets is None else tuple(subnets)
        await self._vpc_state(
            vpc_id,
            "internet",
            (subnets, masquerade),
            lambda n: n.set_internet(subnets, masquerade),
        )

    async def set_vpc_routes(self, vpc_id: str, routes: VpcRoutes) -> None:
        """The VPC's routes to network interfaces and the interfaces whose SourceDestCheck
        is off (``subnetroutes.py``), in force at once; before ``start``, what the VPC's
        namespace is adopted or created with."""
        await self._vpc_state(vpc_id, "routes", routes, lambda n: n.set_routes(routes))

    async def set_overlay(self, vpc_id: str, overlay: Overlay) -> None:
        """The VPC's VXLAN devices, its ports on other nodes and their group memberships
        (``overlay.py``); before ``start``, what the VPC's namespace starts with."""
        await self._vpc_state(vpc_id, "overlay", overlay, lambda n: n.set_overlay(overlay))

    async def set_network_acls(self, vpc_id: str, acls: Sequence[SubnetAcl] | None) -> None:
        """The network ACLs of the VPC's subnets (``acls.py``), in force at once; before
        ``start``, what the VPC's namespace is adopted or created with."""
        acls = None if acls is None else tuple(acls)
        await self._vpc_state(vpc_id, "acls", acls, lambda n: n.set_acls(acls))

    async def set_dhcp_options(self, vpc_id: str, options: Mapping[str, Sequence[str]]) -> None:
        """What the VPC's dnsmasq hands out besides addresses and routers (``dhcp.py``);
        before ``start``, what the VPC's namespace starts it with."""
        kept = dhcp_options(options)
        await self._vpc_state(vpc_id, "dhcp", kept, lambda n: n.set_dhcp_options(kept))

    async def set_resolver(self, vpc_id: str, resolver: Resolver | None) -> None:
        """The VPC's DNS server (``dns.py``), or none; before ``start``, what the VPC's
        namespace starts with."""
        await self._vpc_state(vpc_id, "resolver", resolver, lambda n: n.set_resolver(resolver))

    async def set_nat_gateways(
        self, vpc_id: str, gateways: Sequence[NatGateway]
    ) -> NatGatewayReport | None:
        """The VPC's NAT gateways (``natgateways.py``), in force at once: the VPC's
        namespace is made for them if it has no instance yet, and goes with the last of
        them and of its instances. None before ``start`` (kept for it; nothing observed)."""
        gateways = tuple(gateways)
        async with self._vpc_lock(vpc_id):
            self._nat[vpc_id] = gateways
            if not self._started:  # start() opens the VPC with them
                return None
            vpc = self.vpcs.get(vpc_id)
            if vpc is None and not gateways:
                return NatGatewayReport()
            if vpc is None:
                vpc = await self._open_vpc(vpc_id, [], {})
                report = vpc.net.nat.gateway_report(gateways)
            else:
                report = await vpc.net.set_nat_gateways(gateways)
            if not gateways and not vpc.net.ports:
                await self._close_vpc(vpc_id, delete_namespace=True)
            return report

    async def _vpc_state(
        self,
        vpc_id: str,
        kind: str,
        value: Any,
        apply: Callable[[VpcNetwork], Awaitable[None]],
    ) -> None:
        """Apply ``value`` (the VPC's ``kind`` of state) to the VPC's namespace if it has
        one, and keep it for the namespace's next start, also on disk for the node's
        (under the VPC's lock: adoption waits, or it waits)."""
        async with self._vpc_lock(vpc_id):
            vpc = self.vpcs.get(vpc_id)
            if vpc is not None:
                await apply(vpc.net)
            self._vpc_states[kind][vpc_id] = value
            await asyncio.to_thread(self._keep, vpc_id)

    async def set_instance_groups(self, instance_id: str, group_ids: Sequence[str]) -> None:
        """The groups of an instance (ModifyInstanceAttribute), in force at once."""
        vm = self._vm(instance_id)
        record = vm.record
        record.spec = dataclasses.replace(record.spec, security_groups=tuple(group_ids))
        record.save(vm.files.dir)
        async with self._vpc_lock(record.spec.vpc_id):
            vpc = self.vpcs.get(record.spec.vpc_id)
            if vpc is not None and instance_id in vpc.net.ports:
                await vpc.net.set_port_groups(instance_id, tuple(group_ids))

    async def set_public_ip(self, instance_id: str, public_ip: str | None) -> str | None:
        """Map ``public_ip`` to the running instance instead of its current address (None:
        no public address); AddressTaken if another owner on the host holds it (the
        current address stays). Returns it."""
        vm = self._running(instance_id)
        record = vm.record
        async with self._vpc_lock(record.spec.vpc_id):
            net = self._net_of(vm)
            if public_ip is None:
                await net.unpublish(instance_id)
            else:
                await net.publish(instance_id, [public_ip], move=True)
        for other in self._vms.values():  # the instance it was taken from, if any
            if other is not vm and public_ip and other.record.public_ip == public_ip:
                self._set_record_public(other, None)
        self._set_record_public(vm, public_ip)
        return public_ip

    @staticmethod
    def _set_record_public(vm: Vm, public_ip: str | None) -> None:
        record = vm.record
        record.public_ip = public_ip
        record.spec = dataclasses.replace(record.spec, public_ip=public_ip or False)
        record.save(vm.files.dir)

    def _net_of(self, vm: Vm) -> VpcNetwork:
        vpc = self.vpcs.get(vm.record.spec.vpc_id)
        if vpc is None or vm.instance_id not in vpc.net.ports:
            raise UnknownInstance(f"{vm.instance_id} has no network on this node")
        return vpc.net

    def _public_ip(self, vm: Vm) -> str | None:
        vpc = self.vpcs.get(vm.record.spec.vpc_id)
        return vpc.net.public.get(vm.instance_id) if vpc else None

    def _check_port(self, spec: InstanceSpec) -> None:
        vpc = self.vpcs.get(spec.vpc_id)
        port = Port(
            spec.instance_id, tap_name(spec.instance_id), spec.mac, spec.private_ip,
            spec.subnet, spec.security_groups, None, spec.secondary_ips,
        )  # fmt: skip
        net = vpc.net if vpc is not None else (
            VpcNetwork(self.data_dir, self.home / "network" / spec.vpc_id, spec.vpc_id)
        )  # fmt: skip
        for each in (port, *(_card_port(spec, c) for c in spec.cards)):
            net.check(each)

    # --- extra network interfaces (nics.py) ----------------------------------------------
    async def attach_interface(self, instance_id: str, card: NetworkCard) -> None:
        """Hot-plug an extra interface into the running guest: its port (tap, groups,
        anti-spoofing, DHCP host) in the VPC's namespace, then the NIC. Attaching one the
        instance has already is a no-op."""
        async with self._lock(instance_id):
            vm = self._running(instance_id)
            spec = vm.record.spec
            if any(c.interface_id == card.interface_id for c in spec.cards):
                return
            port = _card_port(spec, card)
            async with self._vpc_lock(spec.vpc_id):
                net = self._net_of(vm)
                net.check(port)
                await net.plug(port)
            try:
                outside = self.settings.qemu_in_host_namespace
                await nics.hot_add(vm, card, self._net_of(vm).ns if outside else None)
            except BaseException:
                async with self._vpc_lock(spec.vpc_id):
                    await self._net_of(vm).unplug(port.key)
                raise
            cards = tuple(sorted((*spec.cards, card), key=lambda c: c.device_index))
            vm.record.spec = dataclasses.replace(spec, cards=cards)
            vm.record.save(vm.files.dir)

    async def set_interface_groups(
        self, instance_id: str, interface_id: str, group_ids: Sequence[str]
    ) -> None:
        """The groups of an extra interface of the instance, in force at once."""
        vm = self._vm(instance_id)
        spec = vm.record.spec
        cards = tuple(
            dataclasses.replace(c, security_groups=tuple(group_ids))
            if c.interface_id == interface_id
            else c
            for c in spec.cards
        )
        if cards == spec.cards:
            return
        vm.record.spec = dataclasses.replace(spec, cards=cards)
        vm.record.save(vm.files.dir)
        async with self._vpc_lock(spec.vpc_id):
            vpc = self.vpcs.get(spec.vpc_id)
            if vpc is not None and interface_id in vpc.net.ports:
                await vpc.net.set_port_groups(interface_id, tuple(group_ids))

    async def set_private_addresses(
        self, instance_id: str, interface_id: str | None, secondary_ips: Sequence[str]
    ) -> None:
        """The secondary private addresses of the instance's primary interface (None) or
        of one of its extra interfaces: the guest may send from them, each filtered by
        the interface's groups; in force at once."""
        vm = self._vm(instance_id)
        spec = vm.record.spec
        wanted = tuple(secondary_ips)
        if interface_id is None:
            changed = dataclasses.replace(spec, secondary_ips=wanted)
        else:
            changed = dataclasses.replace(
                spec,
                cards=tuple(
                    dataclasses.replace(c, secondary_ips=wanted)
                    if c.interface_id == interface_id
                    else c
                    for c in spec.cards
                ),
            )
        if changed == spec:
            return
        async with self._vpc_lock(spec.vpc_id):
            vpc = self.vpcs.get(spec.vpc_id)
            key = interface_id or instance_id
            if vpc is not None and key in vpc.net.ports:
                await vpc.net.set_port_addresses(key, wanted)
        vm.record.spec = changed
        vm.record.save(vm.files.dir)

    async def detach_interface(
        self, instance_id: str, interface_id: str, timeout: float = 30.0
    ) -> None:
        """Unplug an extra interface (the guest releases the NIC), then its port. An
        interface the instance does not have, or an instance not running: nothing to do
        but forget it."""
        vm = self._vm(instance_id)
        spec = vm.record.spec
        card = next((c for c in spec.cards if c.interface_id == interface_id), None)
        if card is None:
            return
        if vm.alive:
            await nics.hot_remove(vm, card, timeout)
        async with self._lock(instance_id):
            spec = vm.record.spec
            vm.record.spec = dataclasses.replace(
                spec, cards=tuple(c for c in spec.cards if c.interface_id != interface_id)
            )
            vm.record.save(vm.files.dir)
            async with self._vpc_lock(spec.vpc_id):
                vpc = self.vpcs.get(spec.vpc_id)
                if vpc is not None:
                    await vpc.net.unplug(interface_id)

    def _vpc_lock(self, vpc_id: str) -> asyncio.Lock:
        return self._vpc_locks.setdefault(vpc_id, asyncio.Lock())

    async def _open_vpc(
        self, vpc_id: str, live: list[Port], public: dict[str, str], holders: Sequence[int] = ()
    ) -> _Vpc:
        """The VPC's namespace (created, or adopted with what ``live`` instances use: found
        again from ``holders``, their QEMU pids, or its dnsmasq, if its name lost it) and
        its metadata service."""
        net = VpcNetwork(
            self.data_dir,
            self.home / "network" / vpc_id,
            vpc_id,
            self.settings.public_interface,
            self.settings.dhcp_lease_seconds,
        )
        internet, masquerade = self._internet.get(vpc_id, (None, None))
        net.overlay = self._overlays.get(vpc_id, net.overlay)
        if live:
            left = net.dhcp.left()
            await net.ns.adopt([*holders, *([left[0]] if left else [])])
        lost = await net.start(
            live,
            self._groups.get(vpc_id, ()),
            public,
            internet,
            self._acls.get(vpc_id),
            self._dhcp.get(vpc_id, ()),
            masquerade=masquerade,
            resolver=self._resolvers.get(vpc_id),
            gateways=self._nat.get(vpc_id, ()),
            routes=self._routes.get(vpc_id),
        )
        for instance_id in lost:
            log.warning("%s: its public address was taken meanwhile", instance_id)
        assert self._tokens is not None
        metadata = MetadataService(
            lambda ip: self._metadata_lookup(vpc_id, ip), self._tokens, self._signed
        )
        await metadata.start(net.ns.call(_metadata_socket))
        vpc = self.vpcs[vpc_id] = _Vpc(net, metadata, DhcpLog(net.dhcp.log_file))
        if any(vpc_id in kept for kept in self._vpc_states.values()):  # forgotten at its last close
            await asyncio.to_thread(self._keep, vpc_id)
        return vpc

    async def _close_vpc(self, vpc_id: str, delete_namespace: bool) -> None:
        vpc = self.vpcs.pop(vpc_id, None)
        if vpc is None:
            return
        for prober in vpc.probers.values():
            prober.close()
        await vpc.metadata.close()
        await vpc.net.close(delete_namespace)
        if delete_namespace:  # nothing to adopt at the next start
            self._kept.pop(vpc_id, None)
            await asyncio.to_thread(self.told.forget, vpc_id)

    async def _reclaim(self, keep: set[str]) -> None:
        """Remove the data dir's namespaces that no live instance uses (a crashed node's)."""
        for name in data_dir_namespaces(self.data_dir):
            if name in keep:
                continue
            log.info("removing the stale namespace %s", name)
            left = namespace_processes(name)
            if left:
                await asyncio.to_thread(terminate, left, 5.0)
            await run("ip", "netns", "delete", name)

    async def _plug(self, record: InstanceRecord) -> None:
        vpc_id = record.spec.vpc_id
        async with self._vpc_lock(vpc_id):
            vpc = self.vpcs.get(vpc_id) or await self._open_vpc(vpc_id, [], {})
            for port in self._ports(record):
                await vpc.net.plug(port)

    async def _unplug(self, instance_id: str, vpc_id: str) -> None:
        """Free the instance's network; the VPC's namespace goes with its last instance."""
        async with self._vpc_lock(vpc_id):
            vpc = self.vpcs.get(vpc_id)
            if vpc is None:
                return
            for key in [k for k, p in vpc.net.ports.items() if p.instance_id == instance_id]:
                await vpc.net.unplug(key)
            if not vpc.net.ports and not self._nat.get(vpc_id):
                await self._close_vpc(vpc_id, delete_namespace=True)

    # --- volumes (hotplug.py) ----------------------------------------------------------
    async def attach_volume(
        self,
        instance_id: str,
        volume_id: str,
        target: VolumeTarget,
        fmt: DiskFormat = "raw",
        limits: DiskLimits | None = None,
        secret: str | None = None,
    ) -> None:
        """Hot-plug a volume (its file, or an NBD export) as a virtio disk whose serial is
        the volume id (an encrypted one opened with ``secret``, its passphrase)."""
        target = await asyncio.to_thread(self._local_target, volume_id, target)
        await self.hotplug.attach(instance_id, volume_id, target, fmt, limits, secret)

    async def resize_volume(self, instance_id: str, volume_id: str, size: int) -> None:
        """Grow a plugged-in volume (or the EBS root) to ``size`` bytes, live."""
        await self.hotplug.resize(instance_id, volume_id, size)

    async def throttle_volume(self, instance_id: str, volume_id: str, limits: DiskLimits) -> None:
        """Change a plugged-in volume's (or the EBS root's) I/O limits, live."""
        await self.hotplug.throttle(instance_id, volume_id, limits)

    async def detach_volume(
        self, instance_id: str, volume_id: str, force: bool = False, timeout: float | None = None
    ) -> None:
        """Hot-unplug (ACPI eject); DetachTimeout, or with ``force`` QEMU lets go of the
        file, if the guest has not released it within ``timeout``."""
        timeout = self.settings.detach_timeout if timeout is None else timeout
        await self.hotplug.detach(instance_id, volume_id, force, timeout)
        await asyncio.to_thread(self.relays.end, volume_id)  # if it came over NBD

    async def backup_volume(
        self,
        instance_id: str,
        volume_id: str,
        target: Path,
        fmt: DiskFormat = "raw",
        secret: str | None = None,
    ) -> None:
        """Copy a volume plugged into a running guest (or its EBS root) into ``target``."""
        await self.hotplug.backup(instance_id, volume_id, target, fmt, secret)

    # --- internals -------------------------------------------------------------------------
    def _new_vm(self, record: InstanceRecord) -> Vm:
        files = qemu.InstanceFiles(self.instances_dir / record.spec.instance_id)
        return Vm(
            record,
            files,
            self.settings.console_limit,
            self._vm_exited,
            self.hotplug.device_deleted,
            self._vm_event,
        )

    # --- health --------------------------------------------------------------------------
    def _vm_event(self, vm: Vm, name: str) -> None:
        iid = vm.instance_id
        if name == "GUEST_PANICKED":
            self.health_book.panicked(iid)
        elif name == "RESET":
            self.health_book.restarted(iid, vm.console.size())
            self._rechecked.discard(iid)
        elif name == "internal-error":
            self._background_task(self._accelerator_fault(vm, vm.fault or "internal error"))

    def _vm_with(self, vpc_id: str, *, mac: str | None = None, ip: str | None = None) -> Vm | None:
        """The live instance of the VPC with that MAC and address (any of its interfaces')."""
        for vm in self._vms.values():
            spec = vm.record.spec
            if (
                vm.alive
                and spec.vpc_id == vpc_id
                and (mac is None or spec.mac == mac)
                and (ip is None or ip in (spec.private_ip, *(c.private_ip for c in spec.cards)))
            ):
                return vm
        return None

    def _arp_answer(self, vpc_id: str, mac: str, ip: str) -> None:
        vm = self._vm_with(vpc_id, mac=mac, ip=ip)
        if vm is not None:
            self.health_book.answered(vm.instance_id)

    def _metadata_lookup(self, vpc_id: str, ip: str):
        """The instance is the VPC's one with the source address (anti-spoofing makes it
        trustworthy); the same address in another VPC is another instance."""
        vm = self._vm_with(vpc_id, ip=ip)
        if vm is None:
            return None
        self.health_book.sign_of_life(vm.instance_id, "asked the metadata service")
        return self._lookup(vm.instance_id)

    def _prober(self, vpc: _Vpc, port: Port) -> arp.ArpProber:
        """The ARP prober on the bridge of ``port``'s subnet (made at its first use)."""
        bridge = vpc.net.bridge_of(port)
        prober = vpc.probers.get(bridge)
        if prober is None:
            ns, vpc_id = vpc.net.ns, vpc.net.vpc_id
            prober = arp.ArpProber(
                lambda: ns.call(arp.bridge_socket(bridge)),
                str(gateway_of(IPv4Network(port.subnet))),
                lambda mac, ip: self._arp_answer(vpc_id, mac, ip),
            )
            prober.start()
            vpc.probers[bridge] = prober
        return prober

    async def _watch_health(self) -> None:
        """Gather evidence: DHCP requests, ARP answers; notice guests silent under KVM."""
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            try:
                self._gather_evidence()
            except Exception:
                log.exception("health check failed")

    def _gather_evidence(self) -> None:
        asked = {vpc_id: vpc.dhcp_log.requests() for vpc_id, vpc in self.vpcs.items()}
        for vm in list(self._vms.values()):
            if not vm.alive or vm.state != VmState.RUNNING:
                continue
            iid, spec = vm.instance_id, vm.record.spec
            if spec.mac in asked.get(spec.vpc_id, ()):
                self.health_book.sign_of_life(iid, "sent a DHCP request")
            vpc = self.vpcs.get(spec.vpc_id)
            port = vpc.net.ports.get(iid) if vpc else None
            if vpc is not None and port is not None:
                self.health_book.probed(iid)
                self._prober(vpc, port).probe(spec.mac, spec.private_ip)
            if self._silent_under_kvm(vm):
                self._rechecked.add(iid)
                self._background_task(self._recheck_kvm(vm))

    def _silent_under_kvm(self, vm: Vm) -> bool:
        evidence = self.health_book.get(vm.instance_id)
        return (
            vm.record.accelerator == "kvm"
            and self.settings.accelerator == "auto"
            and vm.instance_id not in self._rechecked
            and evidence is not None
            and evidence.alive_at is None
            and vm.console.size() <= evidence.console_at_start
            and time.time() - evidence.since > self.settings.kvm_life_bound
        )

    async def _recheck_kvm(self, vm: Vm) -> None:
        """A guest silent under KVM: the accelerator's fault if KVM cannot boot the probe
        guest now either; otherwise the guest's own business (its instance check says so)."""
        guest = await _probe_guest()
        if guest is None:
            return
        ok, seen = await accel.boots_with(
            self.settings.qemu, "kvm", guest, self.settings.kvm_probe_timeout
        )
        if not ok:
            await self._accelerator_fault(
                vm,
                f"no sign of life in {self.settings.kvm_life_bound:g}s and the KVM probe "
                f"now fails: {seen}",
            )

    async def _accelerator_fault(self, vm: Vm, detail: str) -> None:
        """KVM stopped a guest: TCG for every launch from now on (this host boot), and
        this instance relaunched under TCG, as AWS moves an instance off failing hardware."""
        iid = vm.instance_id
        if vm.record.accelerator != "kvm" or self._vms.get(iid) is not vm:
            return
        self.last_fault = f"{iid}: {detail}"
        if self.settings.accelerator == "kvm":  # forced: no fallback, the status tells
            log.error("%s: KVM fault (%s); KVM is forced, so it stays", iid, detail)
            return
        self.accelerator = "tcg"
        self.accelerator_reason = f"a guest faulted under KVM ({detail}); TCG from now on"
        self._accel_cache.demote(self.accelerator_reason)
        event = NodeEvent(
            "system-reboot",
            f"[Completed] relaunched under TCG after a KVM fault: {detail}",
            time.time(),
        )
        log.error("%s: KVM fault (%s); relaunching it under TCG", iid, detail)
        try:
            await self._relaunch(vm, event)
        except Exception as exc:
            log.exception("%s: relaunch under TCG failed", iid)
            if self._on_exit:
                self._on_exit(
                    InstanceExit(
                        iid, ExitReason.CRASHED, f"relaunch after a KVM fault: {exc}", time.time()
                    )
                )

    async def _relaunch(self, vm: Vm, event: NodeEvent) -> None:
        """The same instance again (id, disks, volumes, addresses) on this node's
        accelerator; QEMU's end is not reported as the instance's."""
        record = vm.record
        spec = dataclasses.replace(
            record.spec,
            public_ip=record.public_ip or record.spec.public_ip,
            volumes=tuple(
                VolumeDisk(a.volume_id, a.target, a.format, a.limits, a.secret)
                for a in record.volumes.values()
                if a.state == "attached"
            ),
        )
        spec = await asyncio.to_thread(with_keys, spec, self._volume_key)
        async with self._lock(vm.instance_id):
            await vm.abort(event.description)
            for _ in range(100):  # its tap is free only once the process is gone
                if not _alive(record):
                    break
                await asyncio.sleep(0.1)
        await self.launch(spec)
        fresh = self._vms[vm.instance_id]
        fresh.record.events = [*record.events, event]
        fresh.record.save(fresh.files.dir)
        if self._on_recovery:
            self._on_recovery(vm.instance_id, event)

    def _background_task(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _vm_exited(self, vm: Vm) -> None:
        """A QEMU process ended: persist why, free its network, tell the cloud."""
        with contextlib.suppress(OSError):
            vm.record.save(vm.files.dir)
        self._background_task(self._after_exit(vm))

    async def _after_exit(self, vm: Vm) -> None:
        iid = vm.instance_id
        async with self._lock(iid):  # not while a new launch of the same id plugs it again
            if self._vms.get(iid) is vm:
                await self._unplug(iid, vm.record.spec.vpc_id)
        if self._on_exit and vm.exit:
            try:
                self._on_exit(vm.exit)
            except Exception:
                log.exception("%s: on_exit callback failed", iid)

    async def _prepare_disks(
        self, spec: InstanceSpec, files: qemu.InstanceFiles, keep_ephemeral: bool = False
    ) -> None:
        if isinstance(spec.root, ImageRoot) and not files.overlay.exists():
            image = self._image_file(spec.root.image)
            await disks.create_overlay(
                files.overlay, image, spec.root.image_format, spec.root.size_bytes
            )
        if keep_ephemeral and files.ephemeral.exists():
            return
        files.ephemeral.unlink(missing_ok=True)
        if spec.ephemeral_gib:
            await disks.create_blank(files.ephemeral, spec.ephemeral_gib)

    async def _ensure_images(self, spec: InstanceSpec) -> None:
        """The instance's images in the cache (fetched on first use, this instance
        recorded as a user of each)."""
        walrus, user = self.settings.cloud_walrus, spec.instance_id
        await asyncio.gather(
            *(
                self.images.ensure(ref.image_id, imagefetch.fetcher(ref, walrus), user=user)
                for ref in _images_of(spec)
            )
        )

    def _image_file(self, ref: ImageRef) -> Path:
        return self.images.file(ref.image_id)

    def forget_image(self, image_id: str) -> None:
        """The image was deregistered: its cache entry goes once no instance uses it."""
        self.images.forget(image_id)

    async def _publish(self, vm: Vm) -> None:
        r = vm.record
        if r.spec.public_ip is False:
            return
        want = r.public_ip or (r.spec.public_ip if isinstance(r.spec.public_ip, str) else None)
        async with self._vpc_lock(r.spec.vpc_id):
            net = self._net_of(vm)
            try:  # the address asked for, or (True) any free one of the pool
                r.public_ip = await net.publish(
                    vm.instance_id, [want] if want else self.pool.candidates()
                )
            except AddressTaken:
                log.warning(
                    "%s: %s is held by another owner: no public address", r.spec.instance_id, want
                )
                r.public_ip = None
        r.save(vm.files.dir)

    def _port(self, record: InstanceRecord) -> Port:
        spec = record.spec
        return Port(
            spec.instance_id, record.tap, spec.mac, spec.private_ip, spec.subnet,
            spec.security_groups, None, spec.secondary_ips,
        )  # fmt: skip

    def _ports(self, record: InstanceRecord) -> list[Port]:
        """The instance's primary port and those of its extra interfaces."""
        return [self._port(record), *(_card_port(record.spec, c) for c in record.spec.cards)]

    def _records(self) -> dict[str, InstanceRecord]:
        records = {}
        for directory in sorted(self.instances_dir.iterdir()):
            if not (directory / RECORD).exists():
                continue
            try:
                records[directory.name] = InstanceRecord.load(directory)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("%s: unreadable %s: %s", directory.name, RECORD, exc)
        return records

    def _vm(self, instance_id: str) -> Vm:
        return vm_of(self._vms, instance_id)

    def _running(self, instance_id: str) -> Vm:
        return running_vm(self._vms, instance_id)

    def _lock(self, instance_id: str) -> asyncio.Lock:
        return self._locks.setdefault(instance_id, asyncio.Lock())

    def _token_secret(self) -> bytes:
        path = self.home / "imds-token.key"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            secret = secrets.token_bytes(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secret)
            return secret

    async def _trim_consoles(self) -> None:
        while True:
            await asyncio.sleep(TRIM_INTERVAL)
            for vm in list(self._vms.values()):
                if vm.alive:
                    try:
                        vm.console.trim()
                    except OSError as exc:
                        log.warning("%s: console trim: %s", vm.instance_id, exc)


def _metadata_socket() -> socket.socket:
    """Bound inside the namespace (this runs in a thread that has entered it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((METADATA_IP, 80))
    return sock


async def _probe_guest() -> accel.ProbeGuest | None:
    """The default guest's kernel and initramfs (built once per machine), if they can be had."""
    try:
        built = await asyncio.to_thread(guestimage.ensure_built)
    except Exception as exc:  # offline with no cached build, no apt: then no KVM
        log.warning("no guest kernel for the KVM probe: %s", exc)
        return None
    return accel.ProbeGuest(built / "vmlinux", built / "initrd")


def _card_port(spec: InstanceSpec, card: NetworkCard) -> Port:
    return Port(
        spec.instance_id, qemu.card_tap(card.interface_id), card.mac, card.private_ip,
        card.subnet, card.security_groups, card.interface_id, card.secondary_ips,
    )  # fmt: skip


def _alive(record: InstanceRecord) -> bool:
    return pid_alive(record.pid or 0, record.start_ticks)


def _host_memory_mib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def _images_of(spec: InstanceSpec) -> list[ImageRef]:
    """The images an instance boots from: its root (instance store), kernel and ramdisk."""
    refs = [spec.root.image] if isinstance(spec.root, ImageRoot) else []
    if spec.kernel:
        refs += [spec.kernel.kernel, *([spec.kernel.ramdisk] if spec.kernel.ramdisk else [])]
    return refs
