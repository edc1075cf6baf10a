"""Volumes in running guests: hot-plug, hot-unplug (forced if need be), backup copies.

A volume is a block node ``blk-<vol>`` under a ``virtio-blk-pci`` device ``disk-<vol>``
whose serial is the volume id. Unplugging asks the guest (ACPI eject); its
``DEVICE_DELETED`` drops the block nodes and the attachment. The attachments are kept in
the instance's record, so a node that adopts the guest later finishes what it left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from karri.node import disks, qemu
from karri.node.errors import DetachTimeout, NodeError, VolumeError
from karri.node.qmp import PERIPHERALS, QMPError
from karri.node.spec import (
    Attachment,
    DiskFormat,
    DiskLimits,
    FileTarget,
    VolumeDisk,
    VolumeTarget,
)
from karri.node.vm import Vm, running_vm, vm_of

log = logging.getLogger("karri.node")


class Hotplug:
    """The volumes of the node's guests. ``vms`` is the node's table of instances, and
    ``lock`` its per-instance lock (held while a call changes an instance's devices)."""

    def __init__(
        self,
        vms: Mapping[str, Vm],
        lock: Callable[[str], asyncio.Lock],
        nbd_tls: Path | None = None,
    ) -> None:
        self._vms = vms
        self._lock = lock
        self._nbd_tls = nbd_tls  # the node's TLS files for volumes over NBD

    async def attach(
        self,
        instance_id: str,
        volume_id: str,
        target: VolumeTarget,
        fmt: DiskFormat = "raw",
        limits: DiskLimits | None = None,
        secret: str | None = None,
    ) -> None:
        """Hot-plug a volume (file or NBD export) as a virtio disk whose serial is the
        volume id, throttled to ``limits``; an encrypted one opened with ``secret``."""
        async with self._lock(instance_id):
            vm = self._running(instance_id)
            for other in self._vms.values():
                if volume_id in other.record.volumes:
                    raise VolumeError(f"{volume_id} is already attached to {other.instance_id}")
            blockdev, device = qemu.volume_args(VolumeDisk(volume_id, target, fmt, limits))
            try:
                if disks.uses_nbd([target]):
                    await self._add_nbd_tls(vm)
                await _add_secret(vm, volume_id, fmt, secret)
                await vm.qmp.blockdev_add(blockdev)
            except QMPError as exc:
                await _drop_secret(vm, volume_id, fmt)
                raise VolumeError(f"{volume_id}: {exc}") from exc
            try:
                await vm.qmp.device_add(device)
            except QMPError as exc:
                with contextlib.suppress(QMPError):
                    await vm.qmp.blockdev_del(blockdev["node-name"])
                await _drop_secret(vm, volume_id, fmt)
                raise VolumeError(f"{volume_id}: {exc}") from exc
            if limits:
                try:
                    await vm.qmp.block_set_io_throttle(disks.io_throttle(volume_id, limits))
                except QMPError as exc:  # plugged in: unthrottled rather than not at all
                    log.warning("%s: cannot throttle %s: %s", instance_id, volume_id, exc)
            vm.record.volumes[volume_id] = Attachment(
                volume_id, target, fmt, limits=limits, secret=secret
            )
            vm.record.save(vm.files.dir)
            log.info("%s: attached %s (%s)", instance_id, volume_id, target)

    async def _add_nbd_tls(self, vm: Vm) -> None:
        """The guest's NBD TLS credentials, made once (kept while QEMU runs)."""
        if self._nbd_tls is None:
            raise VolumeError("this node has no TLS files for NBD volumes (nbd_tls)")
        if not await vm.qmp.has_object(disks.NBD_TLS):
            await vm.qmp.object_add(disks.nbd_tls_object(self._nbd_tls))

    async def detach(self, instance_id: str, volume_id: str, force: bool, timeout: float) -> None:
        """Hot-unplug: the guest is asked to release the disk (ACPI eject).

        If it has not within ``timeout``: with ``force`` QEMU lets go of the volume file
        anyway (the guest's disk now reads zeros until it completes the unplug); without,
        DetachTimeout, and the attachment stays ``detaching`` until the guest lets go.
        """
        vm = self._vm(instance_id)
        async with self._lock(instance_id):
            attachment = vm.record.volumes.get(volume_id)
            if attachment is None:
                raise VolumeError(f"{volume_id} is not attached to {instance_id}")
            if not vm.alive:
                del vm.record.volumes[volume_id]
                vm.record.save(vm.files.dir)
                return
            device = disks.device_id(volume_id)
            deleted = vm.device_deleted(device)
            if attachment.state == "attached":
                try:
                    await vm.qmp.device_del(device)
                except QMPError as exc:
                    raise VolumeError(f"{volume_id}: {exc}") from exc
                vm.record.set_volume_state(volume_id, "detaching")
                vm.record.save(vm.files.dir)
        if await _wait(deleted, timeout):
            return
        if not force:
            raise DetachTimeout(f"{instance_id} did not release {volume_id} within {timeout:g}s")
        async with self._lock(instance_id):
            if volume_id in vm.record.volumes:
                await self._release_forcibly(vm, vm.record.volumes[volume_id])

    async def backup(
        self,
        instance_id: str,
        volume_id: str,
        target: Path,
        fmt: DiskFormat = "raw",
        secret: str | None = None,
    ) -> None:
        """Copy a volume plugged into a running guest (its root volume too) into ``target``,
        as it is at this instant: a QEMU backup job (copy-before-write), consistent while
        the guest keeps writing. ``target`` must exist with the volume's size. Returns when
        the copy is complete; VolumeError if it failed or QEMU ended.
        """
        vm = self._running(instance_id)
        node, job = f"bak-{volume_id}", f"backup-{volume_id}"
        async with self._lock(instance_id):
            source = disks.node_name(_disk_name(vm, volume_id))
            try:
                await _add_secret(vm, node, fmt, secret)
                await vm.qmp.blockdev_add(disks.blockdev(node, target, fmt) | {"node-name": node})
                done = await vm.start_job(job, lambda: vm.qmp.blockdev_backup(job, source, node))
            except QMPError as exc:
                with contextlib.suppress(QMPError, NodeError):
                    await vm.qmp.blockdev_del(node)
                await _drop_secret(vm, node, fmt)
                raise VolumeError(f"backup of {volume_id}: {exc}") from exc
        try:
            event, data = await done  # the lock is free: attach/detach go on meanwhile
        except NodeError as exc:
            raise VolumeError(f"backup of {volume_id}: {exc}") from exc
        finally:
            with contextlib.suppress(QMPError, NodeError):
                await vm.qmp.blockdev_del(node)
            await _drop_secret(vm, node, fmt)
        if event != "BLOCK_JOB_COMPLETED" or data.get("error"):
            raise VolumeError(f"backup of {volume_id}: {data.get('error') or event}")
        log.info("%s: %s copied into %s", instance_id, volume_id, target)

    async def resize(self, instance_id: str, volume_id: str, size: int) -> None:
        """Grow a plugged-in volume (its root volume too) to ``size`` bytes: QEMU grows the
        file and the guest sees the new capacity at once."""
        vm = self._running(instance_id)
        async with self._lock(instance_id):
            name = _disk_name(vm, volume_id)
            try:
                await vm.qmp.block_resize(disks.node_name(name), size)
            except QMPError as exc:
                raise VolumeError(f"resize of {volume_id}: {exc}") from exc
        log.info("%s: %s grown to %d bytes", instance_id, volume_id, size)

    async def throttle(self, instance_id: str, volume_id: str, limits: DiskLimits) -> None:
        """Change a plugged-in volume's I/O limits while the guest uses it."""
        vm = self._running(instance_id)
        async with self._lock(instance_id):
            name = _disk_name(vm, volume_id)
            try:
                await vm.qmp.block_set_io_throttle(disks.io_throttle(name, limits))
            except QMPError as exc:
                raise VolumeError(f"throttling {volume_id}: {exc}") from exc
            record = vm.record  # kept for a relaunch
            if name == disks.ROOT:
                record.spec = replace(record.spec, root=replace(record.spec.root, limits=limits))
            else:
                record.volumes[volume_id] = replace(record.volumes[volume_id], limits=limits)
            record.save(vm.files.dir)
        log.info("%s: %s throttled to %s", instance_id, volume_id, limits)

    async def reconcile(self, vm: Vm) -> None:
        """After adoption: finish the unplugs the guest completed while nobody listened."""
        try:
            present = set(await vm.qmp.qom_list(PERIPHERALS))
            nodes = await vm.qmp.query_named_block_nodes()
        except (QMPError, NodeError) as exc:
            log.warning("%s: cannot list its disks: %s", vm.instance_id, exc)
            return
        names = set(vm.record.volumes) | {
            n.split("-", 1)[1] for n in nodes if n.startswith(("blk-vol-", "null-vol-"))
        }
        for name in names:
            if disks.device_id(name) not in present:
                await self.device_deleted(vm, disks.device_id(name))

    async def device_deleted(self, vm: Vm, device: str) -> None:
        """The guest released a disk: drop its block nodes and its attachment."""
        if not device.startswith("disk-"):
            return  # a NIC (nics.py)
        name = device.removeprefix("disk-")
        for node_name in (disks.node_name(name), disks.null_node(name)):
            with contextlib.suppress(QMPError, NodeError):
                await vm.qmp.blockdev_del(node_name)
        await _drop_secret(vm, name, "qcow2-luks")  # if it had one
        if vm.record.volumes.pop(name, None):
            vm.record.save(vm.files.dir)
            log.info("%s: %s detached", vm.instance_id, name)

    async def _release_forcibly(self, vm: Vm, attachment: Attachment) -> None:
        """Point the disk's format node at a null device, so QEMU closes the volume file."""
        volume_id = attachment.volume_id
        null = disks.null_node(volume_id)
        where = attachment.target
        local = where.path if isinstance(where, FileTarget) and where.path.exists() else None
        size = local.stat().st_size if local else 1 << 30
        try:
            await vm.qmp.blockdev_add({"driver": "null-co", "node-name": null, "size": size})
            options = disks.blockdev(volume_id, where, attachment.format)
            await vm.qmp.blockdev_reopen(options | {"file": null})
        except QMPError as exc:
            raise VolumeError(f"{volume_id}: forced detach failed: {exc}") from exc
        del vm.record.volumes[volume_id]
        vm.record.save(vm.files.dir)
        log.warning(
            "%s: %s detached by force; the guest still holds its disk", vm.instance_id, volume_id
        )

    def _vm(self, instance_id: str) -> Vm:
        return vm_of(self._vms, instance_id)

    def _running(self, instance_id: str) -> Vm:
        return running_vm(self._vms, instance_id)


def _disk_name(vm: Vm, volume_id: str) -> str:
    """The guest's disk that is the volume: its EBS root, or a plugged-in volume."""
    root = vm.record.spec.root
    if isinstance(root, VolumeDisk) and root.volume_id == volume_id:
        return disks.ROOT
    if volume_id in vm.record.volumes:
        return volume_id
    raise VolumeError(f"{volume_id} is not attached to {vm.instance_id}")


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


async def _add_secret(vm: Vm, name: str, fmt: DiskFormat, secret: str | None) -> None:
    """The secret object an encrypted disk opens with (QMP: never on a command line)."""
    if fmt not in disks.ENCRYPTED:
        return
    if not secret:
        raise VolumeError(f"{name}: an encrypted volume needs its passphrase")
    await vm.qmp.secret_add(disks.secret_id(name), secret)


async def _drop_secret(vm: Vm, name: str, fmt: DiskFormat) -> None:
    if fmt in disks.ENCRYPTED:
        with contextlib.suppress(QMPError, NodeError):
            await vm.qmp.object_del(disks.secret_id(name))
