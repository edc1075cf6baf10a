"""EBS volume types in a guest: read throughput and IOPS of volumes of different types,
throttled by QEMU as their type says (``block_set_io_throttle``).

A `karri up` is started here (loopback, free ports; as root: guests need a network
namespace), one karri-tiny instance is booted, and for each case a fresh volume is
created, attached, and read inside the guest over SSH:

- sequential: ``dd bs=1M`` of the first N MiB (the type's MiB/s limit);
- random-ish small reads: ``dd bs=4k iflag=direct`` (no readahead: one I/O per block, the
  type's IOPS limit).

Times are measured inside the guest (``/proc/uptime``, 10 ms). A volume never written
reads zeros from a sparse file, so the host's disk is not what is measured; under TCG
the guest's own speed caps the fastest case.

    .venv/bin/python bench/ebs_types.py [--mib 256] [--ios 3000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import start_karri  # noqa: E402
from tests.integration.ebs import new_volume, volume, wait_until  # noqa: E402
from tests.integration.guests import (  # noqa: E402
    end_cloud,
    ssh_guest,
)
from tests.integration.test_ebs_guests import FIND  # noqa: E402

CASES = {
    "gp3 3000 IOPS, 125 MiB/s (its floor)": {"size": 8, "VolumeType": "gp3"},
    "io2 40000 IOPS (1000 MiB/s)": {"size": 100, "VolumeType": "io2", "Iops": 40_000},
    "standard (100 IOPS, 200 burst; 90 MiB/s)": {"size": 8, "VolumeType": "standard"},
}
TIMED = (
    "a=$(cut -d' ' -f1 /proc/uptime); {cmd} 2>/dev/null; "
    "b=$(cut -d' ' -f1 /proc/uptime); echo $a $b"
)


def seconds(run, command: str) -> float:
    start, end = run(TIMED.format(cmd=command)).split()
    return max(float(end) - float(start), 0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256, help="MiB read sequentially")
    parser.add_argument("--ios", type=int, default=3000, help="4 KiB direct reads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("guests need root (network namespaces)")
    base = Path(tempfile.mkdtemp(prefix="karri-bench-types-"))
    karri = start_karri(base / "data", "--stop-instances-on-exit")
    results: dict[str, dict[str, float]] = {}
    try:
        ec2 = karri.client("ec2")
        instance_id, run = ssh_guest(karri, ec2, base, "bench", "m1.small")

        for label, create in CASES.items():
            volume_id = new_volume(ec2, **create)
            ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
            wait_until(lambda v=volume_id: volume(ec2, v)["State"] == "in-use", 120)
            device = wait_until(lambda v=volume_id: run(FIND.format(vol=v)).strip(), 60, 1)
            sequential = seconds(run, f"dd if={device} of=/dev/null bs=1M count={args.mib}")
            small = seconds(
                run,
                f"dd if={device} of=/dev/null bs=4k count={args.ios} skip=65536 iflag=direct",
            )
            results[label] = {
                "MiB/s (1 MiB reads)": round(args.mib / sequential, 1),
                "IOPS (4 KiB direct reads)": round(args.ios / small),
            }
            print(f"{label:<44} {results[label]}", flush=True)
            ec2.detach_volume(VolumeId=volume_id)
            wait_until(lambda v=volume_id: volume(ec2, v)["State"] == "available", 120)
            ec2.delete_volume(VolumeId=volume_id)
    finally:
        end_cloud(karri)
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
