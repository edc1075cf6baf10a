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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from karri.ids import is_valid_id
from karri.node import accel, arp, disks, guestimage, qemu
from karri.node.commands import pid_alive, process_state
from karri.node.errors import (
    InstanceExists,
    InsufficientCapacity,
    NodeError,
)
from karri.node.forward import PortForwarder
from karri.node.health import DhcpLog, HealthBook
from karri.node.hotplug import Hotplug
from karri.node.imds import MetadataService, Tokens
from karri.node.metadata import MetadataLookup
from karri.node.network import BRIDGE, METADATA_IP, InstanceNetwork, Port, tap_name
from karri.node.qmp import QMPError
from karri.node.spec import (
    Accelerator,
    AdoptReport,
    Attachment,
    Capacity,
    Check,
    DiskFormat,
    DiskLimits,
    ExitReason,
    ImageRoot,
    InstanceExit,
    InstanceHealth,
    InstanceInfo,
    InstanceSpec,
    NodeEvent,
    NodeSettings,
    VmState,
    VolumeDisk,
)
from karri.node.store import RECORD, InstanceRecord
from karri.node.vm import Vm, running_vm, vm_of

log = logging.getLogger("karri.node")

ExitCallback = Callable[[InstanceExit], None]
RecoveryCallback = Callable[[str, NodeEvent], None]
TRIM_INTERVAL = 2.0
HEALTH_INTERVAL = 2.0
POWER_BUTTON_REPEAT = 10.0
MIN_MEMORY_MIB = 16


def _no_metadata(_ip: str) -> None:
    return None


class Node:
    """The instances of this host.

    ``metadata`` answers the metadata service's "which instance has this private IP";
    ``on_exit`` hears of every QEMU process that ends (the guest powered off, it crashed,
    someone killed it, the node stopped it), including those found gone at start;
    ``on_recovery`` of every instance the node relaunched on its own (after a KVM fault).
    """

    def __init__(
        self,
        data_dir: Path,
        settings: NodeSettings | None = None,
        *,
        metadata: MetadataLookup | None = None,
        on_exit: ExitCallback | None = None,
        on_recovery: RecoveryCallback | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.settings = settings or NodeSettings()
        self.home = data_dir / "node"
        self.instances_dir = self.home / "instances"
        self.accelerator: Accelerator = "tcg"
        self.accelerator_reason = "not probed yet"
        self._accel_cache = accel.AcceleratorCache(
            self.settings.accelerator_cache or accel.host_cache()
        )
        self.network = InstanceNetwork(data_dir, self.home / "network", self.settings.subnet)
        self.forwarder = PortForwarder(
            self.network.ns,
            self.settings.public_ip_pool,
            self.settings.forwarded_ports,
            str(data_dir.resolve()),
        )
        self._lookup = metadata or _no_metadata
        self._metadata: MetadataService | None = None
        self._on_exit = on_exit
        self._vms: dict[str, Vm] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.hotplug = Hotplug(self._vms, self._lock)
        self._background: set[asyncio.Task] = set()
        self._trimmer: asyncio.Task | None = None
        self._on_recovery = on_recovery
        self.health_book = HealthBook()
        self._prober: arp.ArpProber | None = None
        self._dhcp_log: DhcpLog | None = None
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
        records = self._records()
        live = [
            Port(r.spec.instance_id, r.tap, r.spec.mac, r.spec.private_ip)
            for r in records.values()
            if r.exit is None and r.pid and _alive(r)
        ]
        await self.network.start(live)
        self._dhcp_log = DhcpLog(self.network.dhcp.log_file)
        self._prober = arp.ArpProber(
            lambda: self.network.ns.call(arp.bridge_socket(BRIDGE)),
            self.gateway,
            self._arp_answer,
        )
        self._prober.start()
        self._metadata = MetadataService(
            self._metadata_lookup, Tokens(self._token_secret()), s.identity_key
        )
        await self._metadata.start(self.network.ns.call(_metadata_socket))
        report = await self.adopt()
        self._trimmer = asyncio.create_task(self._trim_consoles())
        self._watcher = asyncio.create_task(self._watch_health(), name="node-health")
        return report

    async def close(self, stop_instances: bool = False) -> None:
        """Stop serving; with ``stop_instances`` power the guests off first (ACPI, then kill).

        Otherwise QEMU processes keep running, and so does the namespace they live in.
        """
        for task in (self._trimmer, self._watcher):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._prober:
            self._prober.close()
        if stop_instances:
            running = [vm.instance_id for vm in self._vms.values() if vm.alive]
            await asyncio.gather(*(self.shutdown(i, self.settings.stop_timeout) for i in running))
        await self.forwarder.close()
        if self._metadata:
            await self._metadata.close()
        for vm in self._vms.values():
            await vm.release()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        still_running = any(vm.alive for vm in self._vms.values())
        await self.network.close(delete_namespace=not still_running)
        self._vms.clear()

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
                await self.network.plug(self._port(record))
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
        async with self._lock(iid):
            old = self._vms.get(iid)
            if old and old.alive:
                raise InstanceExists(f"{iid} is already running")
            if not self.capacity().fits(spec.vcpus, spec.memory_mib):
                raise InsufficientCapacity(
                    f"{iid}: {spec.vcpus} vCPU / {spec.memory_mib} MiB do not fit"
                )
            self.network.check(iid, spec.mac, spec.private_ip)
            files = qemu.InstanceFiles(self.instances_dir / iid)
            files.dir.mkdir(parents=True, exist_ok=True)
            record = InstanceRecord(spec, self.accelerator, tap_name(iid), time.time())
            record.volumes = {
                v.volume_id: Attachment(v.volume_id, v.path, v.format, limits=v.limits)
                for v in spec.volumes
            }
            vm = self._new_vm(record)
            self._vms[iid] = vm  # counts against capacity from here on
            try:
                await self._prepare_disks(spec, files)
                record.save(files.dir)
                await self.network.plug(self._port(record))
                self.health_book.restarted(iid, vm.console.size())
                cmd = qemu.command(
                    self.settings.qemu,
                    spec,
                    self.accelerator,
                    files,
                    record.tap,
                    self.settings.extra_qemu_args,
                )
                await vm.spawn(self.network.ns.exec_args(*cmd))
                record.save(files.dir)
                await self._publish(vm)
            except BaseException as exc:
                await vm.abort(f"launch failed: {exc}")
                record.save(files.dir)
                await self.network.unplug(iid)
                await self.forwarder.unpublish(iid)
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

    async def destroy(self, instance_id: str) -> None:
        """Kill QEMU if it runs and remove everything of the instance (overlay, logs).

        Destroying an instance the node does not know is not an error.
        """
        async with self._lock(instance_id):
            vm = self._vms.get(instance_id)
            if vm and vm.alive:
                vm.kill()
                await vm.wait_exited(30)
            await self.forwarder.unpublish(instance_id)
            await self.network.unplug(instance_id)
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
            public_ip=self.forwarder.public_ip(instance_id),
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

    @property
    def subnet(self) -> str:
        return str(self.network.subnet)

    @property
    def gateway(self) -> str:
        return str(self.network.gateway)

    # --- volumes (hotplug.py) ----------------------------------------------------------
    async def attach_volume(
        self,
        instance_id: str,
        volume_id: str,
        path: Path,
        fmt: DiskFormat = "raw",
        limits: DiskLimits | None = None,
    ) -> None:
        """Hot-plug a volume file as a virtio disk whose serial is the volume id."""
        await self.hotplug.attach(instance_id, volume_id, path, fmt, limits)

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

    async def backup_volume(
        self, instance_id: str, volume_id: str, target: Path, fmt: DiskFormat = "raw"
    ) -> None:
        """Copy a volume plugged into a running guest (or its EBS root) into ``target``."""
        await self.hotplug.backup(instance_id, volume_id, target, fmt)

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

    def _vm_with(self, *, mac: str | None = None, ip: str | None = None) -> Vm | None:
        for vm in self._vms.values():
            spec = vm.record.spec
            if (
                vm.alive
                and (mac is None or spec.mac == mac)
                and (ip is None or spec.private_ip == ip)
            ):
                return vm
        return None

    def _arp_answer(self, mac: str, ip: str) -> None:
        vm = self._vm_with(mac=mac, ip=ip)
        if vm is not None:
            self.health_book.answered(vm.instance_id)

    def _metadata_lookup(self, ip: str):
        vm = self._vm_with(ip=ip)
        if vm is not None:
            self.health_book.sign_of_life(vm.instance_id, "asked the metadata service")
        return self._lookup(ip)

    async def _watch_health(self) -> None:
        """Gather evidence: DHCP requests, ARP answers; notice guests silent under KVM."""
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            try:
                self._gather_evidence()
            except Exception:
                log.exception("health check failed")

    def _gather_evidence(self) -> None:
        asked = self._dhcp_log.requests() if self._dhcp_log else set()
        for vm in list(self._vms.values()):
            if not vm.alive or vm.state != VmState.RUNNING:
                continue
            iid, spec = vm.instance_id, vm.record.spec
            if spec.mac in asked:
                self.health_book.sign_of_life(iid, "sent a DHCP request")
            if self._prober is not None:
                self.health_book.probed(iid)
                self._prober.probe(spec.mac, spec.private_ip)
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
                VolumeDisk(a.volume_id, a.path, a.format, a.limits)
                for a in record.volumes.values()
                if a.state == "attached"
            ),
        )
        async with self._lock(vm.instance_id):
            await vm.abort(event.description)
            for _ in range(100):  # its tap is free only once the process is gone
                if not _alive(record):
                    break
                await asyncio.sleep(0.1)
            await self.forwarder.unpublish(vm.instance_id)
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
                await self.forwarder.unpublish(iid)
                await self.network.unplug(iid)
        if self._on_exit and vm.exit:
            try:
                self._on_exit(vm.exit)
            except Exception:
                log.exception("%s: on_exit callback failed", iid)

    async def _prepare_disks(self, spec: InstanceSpec, files: qemu.InstanceFiles) -> None:
        if isinstance(spec.root, ImageRoot) and not files.overlay.exists():
            await disks.create_overlay(
                files.overlay, spec.root.image, spec.root.image_format, spec.root.size_bytes
            )
        files.ephemeral.unlink(missing_ok=True)
        if spec.ephemeral_gib:
            await disks.create_blank(files.ephemeral, spec.ephemeral_gib)

    async def _publish(self, vm: Vm) -> None:
        r = vm.record
        if r.spec.public_ip is False:
            return
        want = r.public_ip or (r.spec.public_ip if isinstance(r.spec.public_ip, str) else None)
        r.public_ip = await self.forwarder.publish(vm.instance_id, r.spec.private_ip, want)
        r.save(vm.files.dir)

    def _port(self, record: InstanceRecord) -> Port:
        return Port(record.spec.instance_id, record.tap, record.spec.mac, record.spec.private_ip)

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


def _alive(record: InstanceRecord) -> bool:
    return pid_alive(record.pid or 0, record.start_ticks)


def _host_memory_mib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0
