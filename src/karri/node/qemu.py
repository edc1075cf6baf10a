"""The QEMU command line of an instance.

Choices that matter elsewhere:
- ``-S``: QEMU starts paused, so the node is on QMP (and hears every event) before the
  guest runs a single instruction; the node then sends ``cont``.
- ``-no-shutdown``: a guest that powers off leaves QEMU in the ``shutdown`` run state
  instead of ending it. The node sees why (the SHUTDOWN event, or ``query-status`` after
  a restart of the node controller) and then quits QEMU itself.
- ``pvpanic`` with ``-action panic=none``: a guest kernel that panics tells QEMU
  (GUEST_PANICKED) and is left as it is, as AWS leaves it, until it is rebooted.
- The machine is ``pc`` (i440fx): ACPI PCI hot-plug on the root bus needs no
  pre-allocated ports, which is what volume attach/detach uses.
- QMP socket and console log are relative to the instance dir (QEMU's working directory
  at start), so a deep data dir never passes the 108-byte limit of a unix socket path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from karri.node import disks
from karri.node.spec import Accelerator, DiskLimits, ImageRoot, InstanceSpec, VolumeDisk

QMP_SOCKET = "qmp.sock"
CONSOLE_LOG = "console.log"
QEMU_LOG = "qemu.log"


@dataclass(frozen=True)
class InstanceFiles:
    """Where one instance's files live."""

    dir: Path

    @property
    def qmp(self) -> Path:
        return self.dir / QMP_SOCKET

    @property
    def console(self) -> Path:
        return self.dir / CONSOLE_LOG

    @property
    def log(self) -> Path:
        return self.dir / QEMU_LOG

    @property
    def overlay(self) -> Path:
        return self.dir / "root.qcow2"

    @property
    def ephemeral(self) -> Path:
        return self.dir / "ephemeral0.qcow2"


def accelerator_args(accel: Accelerator) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg"]


def command(
    qemu: str,
    spec: InstanceSpec,
    accel: Accelerator,
    files: InstanceFiles,
    tap: str,
    extra: tuple[str, ...] = (),
) -> list[str]:
    iid = spec.instance_id
    cmd = [
        qemu,
        "-name",
        f"guest={iid},process=karri-{iid}",
        "-machine",
        "pc",
        *accelerator_args(accel),
        "-smp",
        str(spec.vcpus),
        "-m",
        str(spec.memory_mib),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-S",
        "-no-shutdown",
        "-msg",
        "timestamp=on",
        "-rtc",
        "base=utc",
        "-chardev",
        f"file,id=console,path={CONSOLE_LOG},append=on",
        "-serial",
        "chardev:console",
        "-qmp",
        f"unix:{QMP_SOCKET},server=on,wait=off",
        "-device",
        "pvpanic",
        "-action",
        "panic=none",
        "-device",
        "virtio-rng-pci",
        "-netdev",
        f"tap,id=net0,ifname={tap},script=no,downscript=no",
        "-device",
        f"virtio-net-pci,netdev=net0,mac={spec.mac},romfile=",
    ]
    if spec.kernel:
        cmd += ["-kernel", str(spec.kernel.kernel), "-append", spec.kernel.cmdline]
        if spec.kernel.ramdisk:
            cmd += ["-initrd", str(spec.kernel.ramdisk)]
    boot = None if spec.kernel else 0
    for blockdev, device in disk_args(spec, files, boot):
        cmd += ["-blockdev", json.dumps(blockdev), "-device", json.dumps(device)]
    return [*cmd, *extra]


def disk_args(
    spec: InstanceSpec, files: InstanceFiles, bootindex: int | None
) -> list[tuple[dict, dict]]:
    """(blockdev, device) pairs: root, ephemeral disk, then the boot-time volumes."""
    root = spec.root
    pairs = []
    if isinstance(root, ImageRoot):
        pairs.append(
            (
                disks.blockdev(disks.ROOT, files.overlay, "qcow2"),
                disks.virtio_disk(disks.ROOT, None, bootindex),
            )
        )
    else:
        pairs.append(
            (
                disks.blockdev(disks.ROOT, root.path, root.format),
                disks.virtio_disk(disks.ROOT, disks.serial_for(root.volume_id), bootindex),
            )
        )
    if spec.ephemeral_gib:
        pairs.append(
            (
                disks.blockdev(disks.EPHEMERAL, files.ephemeral, "qcow2"),
                disks.virtio_disk(disks.EPHEMERAL, disks.EPHEMERAL),
            )
        )
    for volume in spec.volumes:
        pairs.append(volume_args(volume))
    return pairs


def volume_args(volume: VolumeDisk) -> tuple[dict, dict]:
    return (
        disks.blockdev(volume.volume_id, volume.path, volume.format),
        disks.virtio_disk(volume.volume_id, disks.serial_for(volume.volume_id)),
    )


def disk_limits(spec: InstanceSpec) -> list[tuple[str, DiskLimits]]:
    """The disks that boot throttled (an EBS root, the boot-time volumes), by disk name;
    the node sets them over QMP before the guest runs."""
    volumes = [spec.root] if isinstance(spec.root, VolumeDisk) else []
    names = [disks.ROOT] * len(volumes) + [v.volume_id for v in spec.volumes]
    volumes += spec.volumes
    return [(n, v.limits) for n, v in zip(names, volumes, strict=True) if v.limits]
