"""EBS volume types: AWS's rules for size, IOPS and throughput, and the QEMU limits."""

from __future__ import annotations

import pytest

from karri.cloud.volumes.volume_types import (
    MIB,
    Performance,
    disk_limits,
    gp2_iops,
    modified,
    settle,
)
from karri.errors import CloudError
from karri.node import DiskLimits, FileTarget, InstanceSpec, VolumeDisk
from karri.node.disks import io_throttle
from karri.node.qemu import disk_limits as boot_limits


def error(call, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(CloudError) as caught:
        call(*args, **kwargs)
    return caught.value.code, caught.value.message


@pytest.mark.parametrize(
    ("kind", "size", "iops", "throughput", "expected"),
    [
        ("gp2", 1, None, None, (100, None)),
        ("gp2", 100, None, None, (300, None)),
        ("gp2", 16_384, None, None, (16_000, None)),
        ("gp3", 1, None, None, (3_000, 125)),
        ("gp3", 100, 16_000, 1_000, (16_000, 1_000)),
        ("io1", 4, 200, None, (200, None)),
        ("io2", 100, 50_000, None, (50_000, None)),
        ("st1", 125, None, None, (None, None)),
        ("sc1", 16_384, None, None, (None, None)),
        ("standard", 1_024, None, None, (None, None)),
        (None, 8, None, None, (100, None)),  # gp2 by default
    ],
)
def test_valid_configurations_and_defaults(kind, size, iops, throughput, expected) -> None:
    settled = settle(kind, size, iops, throughput)
    assert (settled.iops, settled.throughput) == expected
    assert settled.volume_type == (kind or "gp2")


@pytest.mark.parametrize(
    ("kind", "size", "iops", "throughput", "code", "message"),
    [
        ("floppy", 1, None, None, "InvalidParameterValue", "Value (floppy) for parameter"),
        ("gp2", 10, 300, None, "InvalidParameterCombination", "iops is not supported for gp2"),
        ("st1", 500, 300, None, "InvalidParameterCombination", "iops is not supported for st1"),
        ("io1", 10, 500, 200, "InvalidParameterCombination", "throughput is not supported"),
        ("io2", 10, None, None, "MissingParameter", "iops"),
        ("gp2", 0, None, None, "InvalidParameterValue", "Volume of 0GiB is too small"),
        ("gp2", 16_385, None, None, "InvalidParameterValue", "maximum is 16384GiB"),
        ("io1", 3, 100, None, "InvalidParameterValue", "minimum is 4GiB"),
        ("st1", 124, None, None, "InvalidParameterValue", "minimum is 125GiB"),
        ("sc1", 20_000, None, None, "InvalidParameterValue", "maximum is 16384GiB"),
        ("standard", 1_025, None, None, "InvalidParameterValue", "maximum is 1024GiB"),
        ("io1", 100, 99, None, "InvalidParameterValue", "Volume iops of 99 is too low"),
        ("io1", 16_000, 64_001, None, "InvalidParameterValue", "maximum is 64000"),
        ("io1", 10, 501, None, "InvalidParameterValue", "ratio of 50.100000 is too high"),
        ("io2", 10, 5_001, None, "InvalidParameterValue", "maximum is 500"),
        ("gp3", 10, 2_999, None, "InvalidParameterValue", "minimum is 3000"),
        ("gp3", 1_000, 16_001, None, "InvalidParameterValue", "maximum is 16000"),
        ("gp3", 7, 3_600, None, "InvalidParameterValue", "Iops to volume size ratio"),
        ("gp3", 10, None, 124, "InvalidParameterValue", "throughput of 124 is too low"),
        ("gp3", 100, 16_000, 1_001, "InvalidParameterValue", "maximum is 1000"),
        ("gp3", 10, 3_000, 751, "InvalidParameterValue", "Throughput (MiBps) to iops ratio"),
    ],
)
def test_each_rule_has_aws_error(kind, size, iops, throughput, code, message) -> None:
    got_code, got_message = error(settle, kind, size, iops, throughput)
    assert got_code == code and message in got_message


def test_this_clouds_cap_is_the_lower_maximum() -> None:
    assert "maximum is 50GiB" in error(settle, "gp3", 51, None, None, max_gib=50)[1]


def test_gp3_baseline_is_free_at_any_size() -> None:
    assert settle("gp3", 1, 3_000, 750).iops == 3_000  # 3000 IOPS at 1 GiB, 0.25 MiB/s/IOPS


def test_gp2_iops() -> None:
    assert [gp2_iops(s) for s in (1, 33, 34, 1_000, 5_334, 6_000)] == [
        100,
        100,
        102,
        3_000,
        16_000,
        16_000,
    ]


GP2_8 = Performance("gp2", 8, 100, None)
GP3_10 = Performance("gp3", 10, 4_000, 200)
IO1_20 = Performance("io1", 20, 1_000, None)


def test_modify_needs_something_and_never_shrinks() -> None:
    assert "Must specify at least one" in error(modified, GP2_8, None, None, None, None)[1]
    code, message = error(modified, GP2_8, 7, None, None, None)
    assert (code, message) == (
        "InvalidParameterValue",
        "New size cannot be smaller than existing size",
    )


def test_modify_carries_values_where_the_type_takes_them() -> None:
    assert modified(GP2_8, 20, None, None, None) == Performance("gp2", 20, 100, None)
    assert modified(GP2_8, None, "gp3", None, None) == Performance("gp3", 8, 3_000, 125)
    assert modified(GP3_10, 20, None, None, None) == Performance("gp3", 20, 4_000, 200)
    assert modified(GP3_10, None, None, None, 300) == Performance("gp3", 10, 4_000, 300)
    assert modified(IO1_20, None, "io2", None, None) == Performance("io2", 20, 1_000, None)
    assert modified(IO1_20, None, "gp2", None, None) == Performance("gp2", 20, 100, None)


def test_modify_checks_the_target_as_create_does() -> None:
    assert error(modified, GP3_10, None, "st1", None, None)[1].endswith("minimum is 125GiB.")
    assert error(modified, GP2_8, None, "io1", None, None)[0] == "InvalidParameterValue"
    assert error(modified, GP2_8, None, None, 500, None)[0] == "InvalidParameterCombination"


@pytest.mark.parametrize(
    ("performance", "limits"),
    [
        (Performance("gp3", 10, 3_000, 125), DiskLimits(iops=3_000, bps=125 * MIB)),
        (Performance("gp3", 100, 16_000, 1_000), DiskLimits(iops=16_000, bps=1_000 * MIB)),
        (Performance("io1", 100, 400, None), DiskLimits(iops=400, bps=100 * MIB)),
        (Performance("io2", 500, 64_000, None), DiskLimits(iops=64_000, bps=1_000 * MIB)),
        (Performance("io2", 1_000, 200_000, None), DiskLimits(iops=200_000, bps=4_000 * MIB)),
        (
            Performance("gp2", 8, 100, None),
            DiskLimits(iops=100, bps=128 * MIB, iops_burst=3_000, burst_seconds=1_862),
        ),
        (Performance("gp2", 2_000, 6_000, None), DiskLimits(iops=6_000, bps=250 * MIB)),
        (
            Performance("st1", 2_048, None, None),
            DiskLimits(iops=500, bps=80 * MIB, bps_burst=500 * MIB, burst_seconds=600),
        ),
        (
            Performance("sc1", 1_024, None, None),
            DiskLimits(iops=250, bps=12 * MIB, bps_burst=80 * MIB, burst_seconds=600),
        ),
        (
            Performance("standard", 10, None, None),
            DiskLimits(iops=100, bps=90 * MIB, iops_burst=200, burst_seconds=60),
        ),
    ],
)
def test_disk_limits(performance: Performance, limits: DiskLimits) -> None:
    assert disk_limits(performance) == limits


def test_throttle_arguments() -> None:
    assert io_throttle("vol-1", DiskLimits(iops=3_000, bps=125 * MIB)) == {
        "id": "/machine/peripheral/disk-vol-1/virtio-backend",
        "iops": 3_000,
        "iops_rd": 0,
        "iops_wr": 0,
        "bps": 125 * MIB,
        "bps_rd": 0,
        "bps_wr": 0,
    }
    burst = io_throttle("root", DiskLimits(iops=100, bps=MIB, iops_burst=3_000, burst_seconds=9))
    assert burst["id"] == "/machine/peripheral/disk-root/virtio-backend"
    assert (burst["iops_max"], burst["iops_max_length"]) == (3_000, 9)
    assert "bps_max" not in burst
    assert io_throttle("vol-1", None)["iops"] == 0  # no limits: unthrottled


def test_boot_disks_throttled_by_name(tmp_path) -> None:
    gp3 = DiskLimits(iops=3_000, bps=125 * MIB)
    spec = InstanceSpec(
        instance_id="i-12345678",
        vcpus=1,
        memory_mib=256,
        root=VolumeDisk("vol-root", FileTarget(tmp_path / "r"), limits=gp3),
        mac="02:00:00:00:00:01",
        private_ip="172.31.0.5",
        volumes=(
            VolumeDisk("vol-a", FileTarget(tmp_path / "a")),
            VolumeDisk("vol-b", FileTarget(tmp_path / "b"), limits=gp3),
        ),
    )
    assert boot_limits(spec) == [("root", gp3), ("vol-b", gp3)]
