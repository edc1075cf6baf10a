"""EBS volume types: AWS's rules for a volume's size, IOPS and throughput, and the QEMU
limits that make a guest's disk perform like the type.

``settle`` is the one place CreateVolume, block device mappings and ModifyVolume check a
configuration and fill in its defaults; ``disk_limits`` turns a settled configuration
into the node's ``DiskLimits`` (``block_set_io_throttle``).
"""

from __future__ import annotations

from dataclasses import dataclass

from karri.cloud.volumes.models import Volume
from karri.errors import CloudError, invalid_combination, invalid_value, missing_parameter
from karri.node import DiskLimits

DEFAULT_VOLUME_TYPE = "gp2"
MIB = 1 << 20


@dataclass(frozen=True)
class VolumeType:
    """One type's limits as AWS documents them (sizes in GiB)."""

    min_gib: int
    max_gib: int
    iops: tuple[int, int] | None = None  # the range of Iops it takes, if any
    iops_per_gib: int = 0  # the highest ratio of Iops to size
    iops_required: bool = False
    throughput: tuple[int, int] | None = None  # MiB/s, if it takes Throughput


TYPES: dict[str, VolumeType] = {
    "gp2": VolumeType(1, 16_384),
    "gp3": VolumeType(1, 16_384, (3_000, 16_000), 500, throughput=(125, 1_000)),
    "io1": VolumeType(4, 16_384, (100, 64_000), 50, iops_required=True),
    "io2": VolumeType(4, 16_384, (100, 256_000), 500, iops_required=True),
    "st1": VolumeType(125, 16_384),
    "sc1": VolumeType(125, 16_384),
    "standard": VolumeType(1, 1_024),
}
VOLUME_TYPES = tuple(TYPES)
GP3_IOPS, GP3_THROUGHPUT = 3_000, 125  # gp3's baseline, free at any size
MAX_MIB_PER_IOPS = 0.25  # gp3's Throughput / Iops


@dataclass(frozen=True)
class Performance:
    """A volume's settled configuration: what DescribeVolumes reports."""

    volume_type: str
    size_gib: int
    iops: int | None
    throughput: int | None


def gp2_iops(size_gib: int) -> int:
    """gp2's baseline: 3 IOPS per GiB, at least 100, at most 16,000."""
    return max(100, min(16_000, 3 * size_gib))


def check_type(volume_type: str | None) -> str:
    volume_type = volume_type or DEFAULT_VOLUME_TYPE
    if volume_type not in TYPES:
        raise invalid_value(f"Value ({volume_type}) for parameter volumeType is invalid.")
    return volume_type


def check_options(volume_type: str, iops: int | None, throughput: int | None) -> None:
    """Which parameters the type takes (checked before the size is known)."""
    kind = TYPES[check_type(volume_type)]
    if iops is not None and kind.iops is None:
        raise invalid_combination(f"The parameter iops is not supported for {volume_type} volumes.")
    if throughput is not None and kind.throughput is None:
        raise invalid_combination(
            f"The parameter throughput is not supported for {volume_type} volumes."
        )
    if kind.iops_required and iops is None:
        raise missing_parameter("iops")


def settle(
    volume_type: str | None,
    size_gib: int,
    iops: int | None,
    throughput: int | None,
    *,
    max_gib: int | None = None,
) -> Performance:
    """The configuration checked against the type's rules, defaults filled in; raises
    AWS's error for the first rule broken. ``max_gib`` is this cloud's own cap."""
    volume_type = check_type(volume_type)
    check_options(volume_type, iops, throughput)
    kind = TYPES[volume_type]
    _check_size(size_gib, kind, max_gib)
    if kind.throughput is not None:  # gp3
        iops = GP3_IOPS if iops is None else iops
        throughput = GP3_THROUGHPUT if throughput is None else throughput
    elif volume_type == "gp2":
        iops = gp2_iops(size_gib)
    if kind.iops is not None and iops is not None:
        _check_iops(iops, size_gib, kind)
    if kind.throughput is not None and throughput is not None and iops is not None:
        _check_throughput(throughput, iops, kind.throughput)
    return Performance(volume_type, size_gib, iops, throughput)


def _check_size(size: int, kind: VolumeType, max_gib: int | None) -> None:
    if size < kind.min_gib:
        raise invalid_value(f"Volume of {size}GiB is too small; minimum is {kind.min_gib}GiB.")
    high = min(kind.max_gib, max_gib) if max_gib else kind.max_gib
    if size > high:
        raise invalid_value(f"Volume of {size}GiB is too large; maximum is {high}GiB.")


def _check_iops(iops: int, size: int, kind: VolumeType) -> None:
    assert kind.iops is not None
    low, high = kind.iops
    if iops < low:
        raise invalid_value(f"Volume iops of {iops} is too low; minimum is {low}.")
    if iops > high:
        raise invalid_value(f"Volume iops of {iops} is too high; maximum is {high}.")
    free = GP3_IOPS if kind.throughput is not None else 0  # gp3's baseline needs no size
    if iops > max(free, kind.iops_per_gib * size):
        raise invalid_value(
            f"Iops to volume size ratio of {iops / size:f} is too high; "
            f"maximum is {kind.iops_per_gib}"
        )


def _check_throughput(throughput: int, iops: int, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if throughput < low:
        raise invalid_value(f"Volume throughput of {throughput} is too low; minimum is {low}.")
    if throughput > high:
        raise invalid_value(f"Volume throughput of {throughput} is too high; maximum is {high}.")
    if throughput > MAX_MIB_PER_IOPS * iops:
        raise invalid_value(
            f"Throughput (MiBps) to iops ratio of {throughput / iops:f} is too high; "
            f"maximum is {MAX_MIB_PER_IOPS:f} MiBps per iops."
        )


def modified(
    current: Performance,
    size_gib: int | None,
    volume_type: str | None,
    iops: int | None,
    throughput: int | None,
    *,
    max_gib: int | None = None,
) -> Performance:
    """ModifyVolume's target: the given values over the current ones, settled. Values not
    given carry over where the new type takes them (a new gp3 starts at its baseline)."""
    if size_gib is None and volume_type is None and iops is None and throughput is None:
        raise invalid_value(
            "Invalid input: Must specify at least one of size, type, iops, throughput or "
            "multi-attach."
        )
    if size_gib is not None and size_gib < current.size_gib:
        raise invalid_value("New size cannot be smaller than existing size")
    target_type = check_type(volume_type or current.volume_type)
    kind = TYPES[target_type]
    same = target_type == current.volume_type
    if iops is None and kind.iops is not None and target_type != "gp2":
        provisioned = TYPES[current.volume_type].iops is not None
        iops = current.iops if same or (provisioned and current.iops) else GP3_IOPS
    if throughput is None and kind.throughput is not None:
        throughput = current.throughput if same and current.throughput else GP3_THROUGHPUT
    return settle(target_type, size_gib or current.size_gib, iops, throughput, max_gib=max_gib)


def of_volume(volume: Volume) -> Performance:
    return Performance(volume.volume_type, volume.size_gib, volume.iops, volume.throughput)


def volume_limits(volume: Volume) -> DiskLimits:
    """The node's limits for a volume as its row describes it."""
    return disk_limits(of_volume(volume))


# -- what the guest's disk is allowed ---------------------------------------------------------

GP2_BURST_IOPS = 3_000
GP2_CREDITS = 5_400_000  # a gp2 volume's I/O credit bucket
HDD_BURST_SECONDS = 600  # st1/sc1: how long a full credit bucket keeps the burst rate


def _per_tib(size_gib: int, mib_per_tib: int, cap: int) -> int:
    return min(cap, max(1, mib_per_tib * size_gib // 1024))


def disk_limits(p: Performance) -> DiskLimits:
    """QEMU's throttling for a volume: the type's baseline IOPS and bytes/s, and the burst
    the type allows (gp2's credit bucket, st1/sc1's throughput burst)."""
    size, kind = p.size_gib, p.volume_type
    if kind == "gp3":
        iops, throughput = p.iops or GP3_IOPS, p.throughput or GP3_THROUGHPUT
        return DiskLimits(iops=iops, bps=throughput * MIB)
    if kind in ("io1", "io2"):  # 256 KiB per I/O, up to 1,000 MiB/s (Block Express 4,000)
        iops = p.iops or 100
        cap = 4_000 if kind == "io2" and iops > 64_000 else 1_000
        return DiskLimits(iops=iops, bps=min(cap, max(1, iops // 4)) * MIB)
    if kind == "gp2":
        base = gp2_iops(size)
        bps = (128 if size <= 170 else 250) * MIB
        if base >= GP2_BURST_IOPS:
            return DiskLimits(iops=base, bps=bps)
        seconds = GP2_CREDITS // (GP2_BURST_IOPS - base)
        return DiskLimits(iops=base, bps=bps, iops_burst=GP2_BURST_IOPS, burst_seconds=seconds)
    if kind in ("st1", "sc1"):
        base, burst, cap, iops = (40, 250, 500, 500) if kind == "st1" else (12, 80, 250, 250)
        return DiskLimits(
            iops=iops,
            bps=_per_tib(size, base, cap) * MIB,
            bps_burst=_per_tib(size, burst, cap) * MIB,
            burst_seconds=HDD_BURST_SECONDS,
        )
    if kind == "standard":  # magnetic: about 100 IOPS, bursts to hundreds
        return DiskLimits(iops=100, bps=90 * MIB, iops_burst=200, burst_seconds=60)
    raise CloudError("InvalidParameterValue", f"Unknown volume type {kind}")
