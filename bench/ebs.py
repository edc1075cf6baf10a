"""EBS benchmark: CreateSnapshot of a 1 GiB volume into Walrus, CreateVolume from it.

A `karri up` is started here (loopback, free ports, no default image set). The volume is
filled with random bytes, written into its file the way a guest would (karri's data dir
belongs to this process), so every byte has to travel: checkpoint, snapshot stream,
Walrus (MD5, fsync), and back into a new volume (CRC-checked, fsync).

- snapshot: CreateSnapshot until ``completed`` (time, and MiB/s of volume data);
- restore: CreateVolume from the snapshot until ``available``;
- the disk's own sequential write with fsync, as the physical limit next to them;
- (as root: guests need a network namespace) a stop/start cycle of an EBS-backed instance
  of the default ``karri-tiny-ebs`` image: StopInstances until ``stopped``, StartInstances
  until ``running``, and until the guest's console says its second boot is complete.

    .venv/bin/python bench/ebs.py [--size-gib 1] [--no-instances] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import Karri, start_karri, stop_karri  # noqa: E402
from tests.integration.ebs import (  # noqa: E402
    ZONE,
    digest,
    fill_random,
    new_volume,
    volume_file,
    wait_snapshot,
    wait_volume,
)
from tests.integration.guests import wait_console, wait_for, wait_state  # noqa: E402

MIB = 1 << 20


def timed(label: str, results: dict, func):
    started = time.perf_counter()
    value = func()
    results[label] = round(time.perf_counter() - started, 2)
    print(f"{label:<44} {results[label]:8.2f} s", flush=True)
    return value


def disk_write(directory: Path, size: int) -> float:
    """Seconds to write ``size`` bytes sequentially and fsync them."""
    path = directory / "disk-write.bin"
    block = os.urandom(16 * MIB)
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(size // len(block)):
            os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - started
    path.unlink()
    return elapsed


def stop_start(karri: Karri, results: dict) -> None:
    """One stop/start cycle of a booted EBS-backed karri-tiny-ebs instance."""
    ec2 = karri.client("ec2")

    def image() -> str | None:
        found = ec2.describe_images(
            Filters=[
                {"Name": "name", "Values": ["karri-tiny-ebs"]},
                {"Name": "state", "Values": ["available"]},
            ]
        )["Images"]
        return found[0]["ImageId"] if found else None

    image_id = wait_for("karri-tiny-ebs", image, 900)
    run = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t1.micro")
    instance_id = run["Instances"][0]["InstanceId"]
    timed(
        "RunInstances (EBS) -> running",
        results,
        lambda: wait_state(ec2, instance_id, "running", 600),
    )
    wait_console(ec2, instance_id, "karri-tiny: boot complete", 600)

    def stop() -> None:
        ec2.stop_instances(InstanceIds=[instance_id])
        wait_state(ec2, instance_id, "stopped", 600)

    def start() -> None:
        ec2.start_instances(InstanceIds=[instance_id])
        wait_state(ec2, instance_id, "running", 600)

    timed("StopInstances -> stopped", results, stop)
    timed("StartInstances -> running", results, start)
    marker = f"karri-tiny: instance {instance_id} boot 2"
    timed(
        "  then -> second boot complete",
        results,
        lambda: wait_console(ec2, instance_id, marker, 600),
    )
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated", 600)


def run(size_gib: int, instances: bool) -> dict:
    results: dict = {"size_gib": size_gib}
    size = size_gib << 30
    with tempfile.TemporaryDirectory(dir=ROOT.parent) as tmp:
        options = ["--stop-instances-on-exit"] if instances else ["--no-default-images"]
        karri = start_karri(Path(tmp) / "data", *options)
        try:
            ec2 = karri.client("ec2")
            volume_id = new_volume(ec2, size=size_gib)
            path = volume_file(karri, volume_id)
            fill_random(path, size)
            expected = digest(path)

            def snapshot() -> str:
                snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
                done = wait_snapshot(ec2, snap_id, timeout=3600)
                assert done["State"] == "completed", done
                return snap_id

            label = f"CreateSnapshot {size_gib} GiB -> completed"
            snap_id = timed(label, results, snapshot)
            results["snapshot_mib_s"] = round(size / MIB / results[label], 1)
            print(f"{'  into Walrus':<44} {results['snapshot_mib_s']:8.1f} MiB/s", flush=True)

            def restore() -> str:
                new_id = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=ZONE)["VolumeId"]
                wait_volume(ec2, new_id, timeout=3600)
                return new_id

            restored = timed("CreateVolume from it -> available", results, restore)
            assert digest(volume_file(karri, restored)) == expected, "restored bytes differ"
            timed(
                f"disk: sequential write {size_gib} GiB + fsync",
                results,
                lambda: disk_write(karri.data_dir, size),
            )
            if instances:
                stop_start(karri, results)
        finally:
            stop_karri(karri)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=int, default=1)
    parser.add_argument("--no-instances", action="store_true", help="skip the stop/start cycle")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args.size_gib, not args.no_instances and os.geteuid() == 0)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
