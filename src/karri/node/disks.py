"""Instance disks: qcow2 overlays and blank ephemeral disks, and their QEMU block nodes.

The same ``blockdev`` dict serves the command line (``-blockdev JSON``) and QMP
``blockdev-add``, so a disk attached at boot and one hot-plugged later look the same to
QEMU: format node ``blk-<name>``, device ``disk-<name>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from karri.node.commands import run
from karri.node.errors import NodeError
from karri.node.spec import (
    DiskFormat,
    DiskLimits,
    FileTarget,
    NbdTarget,
    RbdTarget,
    VolumeTarget,
)

ROOT = "root"
EPHEMERAL = "ephemeral0"
VIRTIO_SERIAL_MAX = 20
NBD_TLS = "tls-nbd"  # the QOM id of the TLS credentials of NBD disks
ENCRYPTED: frozenset[DiskFormat] = frozenset({"qcow2-luks", "luks"})


def node_name(name: str) -> str:
    return f"blk-{name}"


def null_node(name: str) -> str:
    """The null device a forcibly detached disk is switched to."""
    return f"null-{name}"


def device_id(name: str) -> str:
    return f"disk-{name}"


def serial_for(volume_id: str) -> str:
    """The disk serial the guest sees: the volume id, as AWS Nitro shows it.

    virtio-blk serials hold 20 bytes; a 17-digit id (``vol-0123456789abcdef0``, 21)
    drops its dash as on AWS (``vol0123456789abcdef0``).
    """
    if len(volume_id) <= VIRTIO_SERIAL_MAX:
        return volume_id
    return volume_id.replace("-", "", 1)[:VIRTIO_SERIAL_MAX]


def blockdev(
    name: str, where: Path | VolumeTarget, fmt: DiskFormat, *, read_only: bool = False
) -> dict[str, Any]:
    """A disk's format node over its protocol node (a file, or an NBD export); an
    encrypted one opens with the secret object ``secret_id(name)``, which must exist first
    (``Hotplug``). The format layers over either: a qcow2-luks volume over NBD is the
    exported raw file bytes, opened as qcow2 here."""
    options: dict[str, Any] = {
        "driver": fmt,
        "node-name": node_name(name),
        "read-only": read_only,
        "discard": "unmap",
        "file": protocol_node(where),
    }
    if fmt == "qcow2-luks":  # never a backing file, whatever the qcow2 header says
        encrypt = {"format": "luks", "key-secret": secret_id(name)}
        options |= {"driver": "qcow2", "encrypt": encrypt, "backing": None}
    elif fmt == "luks":  # legacy raw LUKS
        options["key-secret"] = secret_id(name)
    return options


def protocol_node(where: Path | VolumeTarget) -> dict[str, Any]:
    """Where the bytes are, in ``blockdev-add`` terms (a file, an NBD export, an RBD
    image)."""
    if isinstance(where, NbdTarget):
        url = urlsplit(where.url)
        socket = parse_qs(url.query).get("socket", [""])[0]
        if url.scheme == "nbd+unix" and socket:  # through the node's relay (nbdrelay.py)
            server: dict[str, Any] = {"type": "unix", "path": socket}
        elif url.scheme == "nbd" and url.hostname and url.port:
            server = {"type": "inet", "host": url.hostname, "port": str(url.port)}
        else:
            raise NodeError(f"not an NBD URL: {where.url!r}")
        return {
            "driver": "nbd",
            "server": server,
            "export": unquote(url.path.lstrip("/")),
            "tls-creds": NBD_TLS,
            "tls-hostname": where.tls_hostname,
            "discard": "unmap",
        }
    if isinstance(where, RbdTarget):
        rbd = {"driver": "rbd", "pool": where.pool, "image": where.image, "user": where.user}
        return rbd | ({"conf": str(where.conf)} if where.conf else {}) | {"discard": "unmap"}
    path = where.path if isinstance(where, FileTarget) else where
    return {"driver": "file", "filename": str(path), "discard": "unmap"}


def write_through(where: Path | VolumeTarget, fmt: DiskFormat) -> bool:
    """Whether the guest's writes must be durable when done: a qcow2 volume (encrypted)
    in an RBD image or behind an NBD export. Its snapshots are taken where its bytes are
    (RBD snapshots; a backup job in the export's daemon), under the running guest: they
    hold what QEMU wrote there, but QEMU keeps qcow2's tables in memory until a flush:
    without a write cache (QEMU flushes after each write) a snapshot holds every write the
    guest saw done, as EBS's does."""
    return isinstance(where, RbdTarget | NbdTarget) and fmt == "qcow2-luks"


def nbd_tls_object(directory: Path) -> dict[str, Any]:
    """The TLS credentials every NBD disk of a guest opens with (``object-add``
    arguments): the node's certificate, the cloud's CA (``NodeSettings.nbd_tls``)."""
    return {
        "qom-type": "tls-creds-x509",
        "id": NBD_TLS,
        "dir": str(directory),
        "endpoint": "client",
        "verify-peer": True,
    }


def uses_nbd(targets: Iterable[Path | VolumeTarget]) -> bool:
    return any(isinstance(t, NbdTarget) for t in targets)


def secret_id(name: str) -> str:
    """The QOM id of the secret object that opens an encrypted disk."""
    return f"sec-{name}"


def virtio_disk(
    name: str, serial: str | None, bootindex: int | None = None, *, write_cache: bool = True
) -> dict[str, Any]:
    """The guest's disk; without ``write_cache``, a write is done only once it is durable
    (``write_through``)."""
    device: dict[str, Any] = {
        "driver": "virtio-blk-pci",
        "id": device_id(name),
        "drive": node_name(name),
    }
    if not write_cache:
        device["write-cache"] = "off"
    if serial:
        device["serial"] = serial
    if bootindex is not None:
        device["bootindex"] = bootindex
    return device


def io_throttle(name: str, limits: DiskLimits | None) -> dict[str, Any]:
    """``block_set_io_throttle``'s arguments for disk ``name``: totals (reads and writes
    together, as EBS counts them); no limits lifts the throttling."""
    limits = limits or DiskLimits()
    args: dict[str, Any] = {
        # the virtio-blk-pci proxy's inner device holds the disk's BlockBackend
        "id": f"/machine/peripheral/{device_id(name)}/virtio-backend",
        "iops": limits.iops,
        "iops_rd": 0,
        "iops_wr": 0,
        "bps": limits.bps,
        "bps_rd": 0,
        "bps_wr": 0,
    }
    if limits.iops and limits.iops_burst > limits.iops:
        args |= {"iops_max": limits.iops_burst, "iops_max_length": limits.burst_seconds}
    if limits.bps and limits.bps_burst > limits.bps:
        args |= {"bps_max": limits.bps_burst, "bps_max_length": limits.burst_seconds}
    return args


async def create_overlay(
    path: Path, image: Path, image_format: DiskFormat, size: int | None
) -> None:
    """A qcow2 overlay on ``image`` (which it never writes to)."""
    cmd = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image), "-F", image_format]
    await run(*cmd, str(path), *([str(size)] if size else []))


async def create_blank(path: Path, size_gib: int) -> None:
    await run("qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{size_gib}G")
