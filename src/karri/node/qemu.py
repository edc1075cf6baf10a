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
- An encrypted (``qcow2-luks``, legacy ``luks``) disk opens with a ``secret`` object read
  from a file ``secrets/<id>`` (mode 0600 in a 0700 dir) that the node writes before the
  start and removes once QMP answers: a passphrase is never on a command line (``ps``).
- QMP socket and console log are relative to the instance dir (QEMU's working directory
  at start), so a deep data dir never passes the 108-byte limit of a unix socket path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karri.node import disks
from karri.node.errors import NodeError
from karri.node.spec import (
    Accelerator,
    DiskLimits,
    ImageRef,
    ImageRoot,
    InstanceSpec,
    NetworkCard,
    VolumeDisk,
)

QMP_SOCKET = "qmp.sock"
CONSOLE_LOG = "console.log"
QEMU_LOG = "qemu.log"
SECRETS = "secrets"


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

    @property
    def secrets(self) -> Path:
        return self.dir / SECRETS


def accelerator_args(accel: Accelerator) -> list[str]:
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg"]


def _by_name(tap: str) -> dict[str, str]:
    """A tap QEMU opens itself, in its own namespace (no scripts run)."""
    return {"ifname": tap, "script": "no", "downscript": "no"}


def tap_names(spec: InstanceSpec, tap: str) -> list[str]:
    """The taps a guest starts with: its primary one, then its extra cards'."""
    return [tap, *(card_tap(card.interface_id) for card in spec.cards)]


def card_tap(interface_id: str) -> str:
    """The tap of an instance's extra interface: ``kte`` + the id's hex digits."""
    return ("kte" + interface_id.split("-", 1)[-1])[:15]


def card_args(
    card: NetworkCard, fd: int | str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The netdev and the virtio-net device of an extra interface, as QMP's
    ``netdev_add`` / ``device_add`` take them (the command line spells the same); with
    ``fd``, the tap's descriptor (a number on the command line, a ``getfd`` name in QMP)
    instead of its name (QEMU runs outside the namespace the tap is in)."""
    key = card.interface_id
    tap = {"fd": str(fd)} if fd is not None else _by_name(card_tap(key))
    netdev = {"type": "tap", "id": f"net-{key}", **tap}
    device = {
        "driver": "virtio-net-pci",
        "id": f"nic-{key}",
        "netdev": f"net-{key}",
        "mac": card.mac,
        "romfile": "",
    }
    return netdev, device


def _option_string(options: dict[str, Any], first: str) -> str:
    """``first``'s value, then ``key=value`` for the others: QEMU's command-line form."""
    rest = [f"{k}={v}" for k, v in options.items() if k != first]
    return ",".join([str(options[first]), *rest])


def command(
    qemu: str,
    spec: InstanceSpec,
    accel: Accelerator,
    files: InstanceFiles,
    tap: str,
    extra: tuple[str, ...] = (),
    *,
    images: Callable[[ImageRef], Path] | None = None,
    nbd_tls: Path | None = None,
    tap_fds: Mapping[str, int] | None = None,
) -> list[str]:
    """``images``: where the image cache holds an image (the kernel and ramdisk);
    ``nbd_tls``: the node's TLS files, for volumes over NBD; ``tap_fds``: the taps'
    descriptors by tap name (QEMU started outside their namespace), else their names."""
    fds = tap_fds or {}
    net0 = f"fd={fds[tap]}" if tap in fds else f"ifname={tap},script=no,downscript=no"
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
        f"tap,id=net0,{net0}",
        "-device",
        f"virtio-net-pci,netdev=net0,mac={spec.mac},romfile=",
    ]
    for card in spec.cards:
        netdev, device = card_args(card, fds.get(card_tap(card.interface_id)))
        cmd += [
            "-netdev",
            _option_string(netdev, "type"),
            "-device",
            _option_string(device, "driver"),
        ]
    if spec.kernel:
        if images is None:
            raise NodeError(f"{iid}: a kernel boot needs the image cache")
        cmd += ["-kernel", str(images(spec.kernel.kernel)), "-append", spec.kernel.cmdline]
        if spec.kernel.ramdisk:
            cmd += ["-initrd", str(images(spec.kernel.ramdisk))]
    if disks.uses_nbd(d.target for d in _volume_disks(spec)):
        if nbd_tls is None:
            raise NodeError(f"{iid}: an NBD volume needs the node's TLS files (nbd_tls)")
        tls = disks.nbd_tls_object(nbd_tls)
        cmd += ["-object", json.dumps(tls)]
    for object_id, _ in boot_secrets(spec):
        cmd += ["-object", f"secret,id={object_id},file={SECRETS}/{object_id},format=raw"]
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
        pairs.append(volume_args(root, disks.ROOT, bootindex))
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


def volume_args(
    volume: VolumeDisk, name: str | None = None, bootindex: int | None = None
) -> tuple[dict, dict]:
    """A volume's (blockdev, device), as disk ``name`` (its id unless given)."""
    name = name or volume.volume_id
    serial = disks.serial_for(volume.volume_id)
    durable = disks.write_through(volume.target, volume.format)
    return (
        disks.blockdev(name, volume.target, volume.format),
        disks.virtio_disk(name, serial, bootindex, write_cache=not durable),
    )


def _volume_disks(spec: InstanceSpec) -> list[VolumeDisk]:
    return [*([spec.root] if isinstance(spec.root, VolumeDisk) else []), *spec.volumes]


def boot_secrets(spec: InstanceSpec) -> list[tuple[str, str]]:
    """(secret object id, passphrase) of each encrypted disk the instance boots with."""
    named = [(disks.ROOT, spec.root)] if isinstance(spec.root, VolumeDisk) else []
    named += [(v.volume_id, v) for v in spec.volumes]
    out = []
    for name, disk in named:
        if disk.format in disks.ENCRYPTED:
            if not disk.secret:
                raise NodeError(f"{disk.volume_id}: an encrypted volume needs its passphrase")
            out.append((disks.secret_id(name), disk.secret))
    return out


def disk_limits(spec: InstanceSpec) -> list[tuple[str, DiskLimits]]:
    """The disks that boot throttled (an EBS root, the boot-time volumes), by disk name;
    the node sets them over QMP before the guest runs."""
    volumes = [spec.root] if isinstance(spec.root, VolumeDisk) else []
    names = [disks.ROOT] * len(volumes) + [v.volume_id for v in spec.volumes]
    volumes += spec.volumes
    return [(n, v.limits) for n, v in zip(names, volumes, strict=True) if v.limits]
