"""The node controller's interface types: what the cloud hands a node and what it gets back.

Everything here is plain, immutable data so that the same interface can later travel over
the network to a node agent on another host.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Accelerator = Literal["kvm", "tcg"]
# "qcow2-luks": a qcow2 file with LUKS encryption; "luks": a raw LUKS file (karri.storage.luks)
DiskFormat = Literal["raw", "qcow2", "luks", "qcow2-luks"]
DEFAULT_CMDLINE = "console=ttyS0 root=/dev/vda rw"
LOCAL_VPC = "vpc-local"
"""The VPC of a spec that names none: a node used on its own, a record from before VPCs."""


@dataclass(frozen=True)
class ImageRef:
    """An image the node needs (a root, a kernel, a ramdisk): what its bytes must be and
    where to get them. The node's image cache (``imagecache.py``) fetches it once."""

    image_id: str
    size: int
    sha256: str
    """Hex SHA-256 of the bytes; a fetched copy that differs is refused."""
    url: str
    """A short-lived presigned GET of the cloud's stored copy (Walrus)."""
    blob: str | None = None
    """The stored copy's file relative to the cloud's Walrus directory: a node that shares
    the cloud's data dir (``NodeSettings.cloud_walrus``) hard-links it instead."""


@dataclass(frozen=True)
class FileTarget:
    """A volume the node opens as a file of its own host (the one-host case)."""

    path: Path
    kind: Literal["file"] = "file"


@dataclass(frozen=True)
class NbdTarget:
    """A volume the storage controller exports over NBD with TLS (a node on another
    host): ``nbd://host:port/export``; the server's certificate, from the cloud's node CA,
    names ``tls_hostname``; the node presents its own (``NodeSettings.nbd_tls``)."""

    url: str
    tls_hostname: str
    kind: Literal["nbd"] = "nbd"


@dataclass(frozen=True)
class RbdTarget:
    """A volume that is a Ceph RBD image: QEMU opens it with its own rbd driver
    (``qemu-block-extra``), as the client ``user`` with the Ceph configuration file
    ``conf`` of the node's host (its monitors and keyring; None: librados's default)."""

    pool: str
    image: str
    user: str = "admin"
    conf: Path | None = None
    kind: Literal["rbd"] = "rbd"


VolumeTarget = FileTarget | NbdTarget | RbdTarget
"""Where a volume's bytes are, as the node opens them. The volume's own
format (``VolumeDisk.format``) layers over it: a qcow2-luks volume is exported as its raw
file bytes and opened as qcow2 with its secret over the nbd protocol node."""


@dataclass(frozen=True)
class ImageRoot:
    """Instance-store root: a qcow2 overlay on a cached image, discarded at destroy."""

    image: ImageRef
    image_format: DiskFormat = "raw"
    size_bytes: int | None = None
    """Grow the overlay beyond the image's own size (the guest sees a bigger disk)."""


@dataclass(frozen=True)
class DiskLimits:
    """How fast the guest may use a volume (its EBS type's performance), as QEMU's I/O
    throttling on the disk: ``iops``/``bps`` the sustained rate (0: unlimited), the
    ``*_burst`` rates allowed for up to ``burst_seconds`` while credit lasts (0: none)."""

    iops: int = 0
    bps: int = 0
    iops_burst: int = 0
    bps_burst: int = 0
    burst_seconds: int = 1


@dataclass(frozen=True)
class VolumeDisk:
    """A persistent volume file (EBS): the root of an EBS-backed instance or an extra disk.

    The guest sees it as a virtio disk whose serial is the volume id (AWS Nitro style:
    a 17-digit id loses its dash to fit virtio's 20 bytes, ``vol0123456789abcdef0``).
    """

    volume_id: str
    target: VolumeTarget
    format: DiskFormat = "raw"
    limits: DiskLimits | None = None
    secret: str | None = field(default=None, repr=False, compare=False)
    """An encrypted volume's passphrase (kept in memory only, never in the node's record)."""


@dataclass(frozen=True)
class KernelBoot:
    """Direct kernel boot (an image's EKI/ERI); without it SeaBIOS boots the root disk."""

    kernel: ImageRef
    ramdisk: ImageRef | None = None
    cmdline: str = DEFAULT_CMDLINE


@dataclass(frozen=True)
class NetworkCard:
    """An interface of an instance besides its primary one (an elastic network interface
    at ``device_index`` ≥ 1): its own tap, MAC, address (given by DHCP), subnet and
    security groups, in the instance's VPC."""

    interface_id: str
    mac: str
    private_ip: str
    subnet: str
    device_index: int
    security_groups: tuple[str, ...] = ()
    secondary_ips: tuple[str, ...] = ()
    """Its secondary private addresses (the guest configures them; DHCP gives the
    primary one)."""


@dataclass(frozen=True)
class InstanceSpec:
    """Everything a node needs to start one instance."""

    instance_id: str
    vcpus: int
    memory_mib: int
    root: ImageRoot | VolumeDisk
    mac: str
    private_ip: str
    kernel: KernelBoot | None = None
    ephemeral_gib: int = 0
    """Size of a blank instance-store disk (serial ``ephemeral0``); 0 for none."""
    volumes: tuple[VolumeDisk, ...] = ()
    """Volumes attached at boot, after the root disk (EBS-backed block device mappings)."""
    public_ip: bool | str = True
    """True: a free address of the public pool, mapped 1:1 (every port) to the private
    IP; a string: that address, and none if another owner on the host holds it (the node
    takes no other: the cloud chose it, and ``InstanceInfo.public_ip`` says what the guest
    got); False: none."""
    vpc_id: str = LOCAL_VPC
    """The VPC: its own network namespace on the node, shared with no other VPC."""
    subnet: str = "172.31.0.0/16"
    """The instance's subnet (CIDR) in its VPC; its first host is the gateway."""
    security_groups: tuple[str, ...] = ()
    """The ids of the instance's groups, among those given to ``Node.set_groups`` for its
    VPC; traffic no group allows is dropped (no group: all of it)."""
    cards: tuple[NetworkCard, ...] = ()
    """Its other interfaces, in the order of their device index (NICs after the first)."""
    secondary_ips: tuple[str, ...] = ()
    """Its primary interface's secondary private addresses."""


class VmState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    """An ACPI power-down was requested and the guest has not gone yet."""
    EXITED = "exited"
    """The QEMU process is gone; the instance dir (console log, overlay) is still there."""


class ExitReason(enum.StrEnum):
    GUEST_SHUTDOWN = "guest-shutdown"
    """The guest powered itself off (``poweroff`` inside, or an ACPI shutdown it chose)."""
    HOST_SHUTDOWN = "host-shutdown"
    """Node.shutdown() or close(stop_instances=True): the guest obeyed the power button."""
    HOST_KILLED = "host-killed"
    """The node ended the process: destroy(), or shutdown() after its timeout."""
    GUEST_PANIC = "guest-panic"
    """The guest kernel reported a panic (pvpanic)."""
    CRASHED = "crashed"
    """The process ended without a shutdown: killed by hand, crashed, out of memory."""
    NETWORK_UPGRADE = "network-upgrade"
    """The node ended a guest that ran in the single namespace of karri before VPCs (a
    data dir upgraded while guests ran): its disks are kept, for the cloud to launch it
    again, once, in its VPC's namespace."""


@dataclass(frozen=True)
class InstanceExit:
    """Why and when an instance's QEMU process ended."""

    instance_id: str
    reason: ExitReason
    detail: str
    at: float
    """Unix time at which the node noticed."""


AttachmentState = Literal["attached", "detaching"]


@dataclass(frozen=True)
class Attachment:
    volume_id: str
    target: VolumeTarget
    format: DiskFormat
    state: AttachmentState = "attached"
    limits: DiskLimits | None = None
    secret: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class InstanceInfo:
    """What a node knows about one of its instances."""

    instance_id: str
    state: VmState
    pid: int | None
    accelerator: Accelerator
    vcpus: int
    memory_mib: int
    mac: str
    private_ip: str
    public_ip: str | None
    volumes: tuple[Attachment, ...]
    exit: InstanceExit | None
    launched_at: float


@dataclass(frozen=True)
class Capacity:
    """Host totals (after overcommit) and what this node's live instances use."""

    vcpus_total: int
    memory_mib_total: int
    vcpus_used: int
    memory_mib_used: int

    def fits(self, vcpus: int, memory_mib: int) -> bool:
        return (
            self.vcpus_used + vcpus <= self.vcpus_total
            and self.memory_mib_used + memory_mib <= self.memory_mib_total
        )


CheckStatus = Literal["ok", "impaired", "initializing", "insufficient-data"]


@dataclass(frozen=True)
class Check:
    """One status check, from evidence: ``reason`` says what was (or was not) seen."""

    status: CheckStatus
    reason: str = ""
    impaired_since: float | None = None
    """Unix time since which the check has been failing."""


@dataclass(frozen=True)
class NodeEvent:
    """Something the node did to an instance on its own (a recovery), for its Events."""

    code: str
    """AWS's event code: ``system-reboot`` for a relaunch on another accelerator."""
    description: str
    at: float


@dataclass(frozen=True)
class InstanceHealth:
    """What the node has observed of a live instance.

    ``system``: the host side (the QEMU process and the accelerator): impaired when QEMU
    is stopped, faulted or gone. ``instance``: the guest itself: ``initializing`` until
    it shows life on its network (a DHCP request, an ARP answer, a metadata request),
    ``ok`` while it answers, ``impaired`` after a panic, when it stops answering, or when
    it never showed life within the node's bound.
    """

    instance_id: str
    system: Check
    instance: Check
    events: tuple[NodeEvent, ...] = ()


@dataclass(frozen=True)
class AdoptReport:
    """Instances found on disk at start: still running (re-attached) or gone meanwhile."""

    running: tuple[str, ...] = ()
    exited: tuple[InstanceExit, ...] = ()


@dataclass(frozen=True)
class IdentityKey:
    """The key and certificate that sign instance identity documents (PEM)."""

    private_key_pem: bytes
    certificate_pem: bytes


@dataclass(frozen=True)
class NodeSettings:
    public_ip_pool: str = "127.64.0.0/16"
    """Public addresses, on the host's loopback: each is a 1:1 NAT of every port to an
    instance's private IP (publicnat.py)."""
    public_interface: str | None = None
    """The host's interface on whose network the pool's addresses are (a real uplink):
    the outside reaches them there and instances with one go out through it
    (publicnat.py). None: the pool stays on loopback, and guests reach nothing outside."""
    dhcp_lease_seconds: int = 3600
    """The guests' DHCP leases (AWS's hour; at least 120 s): they see a changed DHCP
    option set when they renew, at half of it."""
    accelerator: Literal["auto", "kvm", "tcg"] = "auto"
    kvm_probe_timeout: float = 20.0
    accelerator_cache: Path | None = None
    """Where the probe's answers are kept; None: the host's (``accel.host_cache()``)."""
    """How long the probe waits for the guest kernel to reach userspace under KVM."""
    cpu_overcommit: float = 4.0
    memory_overcommit: float = 1.0
    reserved_memory_mib: int = 512
    console_limit: int = 1024 * 1024
    """The console log is trimmed to about this many bytes while the node runs."""
    stop_timeout: float = 60.0
    """How long close(stop_instances=True) waits for guests to power off."""
    detach_timeout: float = 15.0
    life_bound: float = 180.0
    """A guest that shows no sign of life on its network this long after its (re)start
    is reported impaired."""
    kvm_life_bound: float = 30.0
    """Under KVM, a guest silent this long (no console output, no network) makes the node
    probe KVM again; if the probe fails now, the guest is relaunched under TCG."""
    reboot_timeout: float = 30.0
    """RebootInstances: how long the guest has to shut down on ACPI before a hard reset."""
    qemu: str = "qemu-system-x86_64"
    identity_key: IdentityKey | None = None
    extra_qemu_args: tuple[str, ...] = ()
    """Appended to every instance's QEMU command line."""
    cloud_walrus: Path | None = None
    """The cloud's Walrus directory when this node shares the cloud's data dir (one host):
    images are hard-linked out of it (``ImageRef.blob``) rather than fetched by URL."""
    nbd_tls: Path | None = None
    """The node's TLS files for volumes exported over NBD (``ca-cert.pem``,
    ``client-cert.pem``, ``client-key.pem``: the cloud's node CA and the node's own
    certificate, QEMU's ``tls-creds-x509`` layout); None: NBD targets cannot be opened."""
    qemu_in_host_namespace: bool = False
    """Start QEMU in the host's network namespace, its taps opened in the VPC's and passed
    as descriptors, so that it reaches storage on the host's network (Ceph RBD volumes:
    librbd connects to the monitors from inside QEMU). Otherwise QEMU runs inside the
    VPC's namespace and opens its taps by name."""
    ceph_conf: Path | None = None
    """The Ceph client configuration the cloud handed this node (``node/cephaccess.py``):
    every RBD volume is opened with it. None: with the one its target names."""
