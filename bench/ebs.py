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

With ``--backends files,rbd`` it compares the volume backends instead (a backend column;
``rbd``: a throwaway one-host Ceph cluster, tests/ceph.py, and ``karri up --ebs-backend
rbd``): CreateSnapshot, CreateVolume from it, and EBS-backed launches of the default
image (1 and then 10 at once, with the fake node driver: no guest boots, so what is timed
is the root volumes' creation, not TCG).

With ``--incremental`` (RBD only) it measures incremental exports: a snapshot of the
filled volume, ``--changed-mib`` of it rewritten, a second snapshot (a diff over the
first: the bytes each stored in Walrus), then a copy of the second (the chain read back
whole from Walrus) and a volume restored from that copy, compared byte for byte.

With ``--encrypted`` it times CreateVolume from an encrypted snapshot on each of
``--backends`` (default rbd): an encrypted volume of ``--size-gib`` written whole through
the account's key (every qcow2 cluster allocated), its snapshot, then CreateVolume from it
at the same size and 1 GiB larger (grown through the key), each read back through the key.

    .venv/bin/python bench/ebs.py [--size-gib 1] [--no-instances] [--json]
    .venv/bin/python bench/ebs.py --backends files,rbd [--size-gib 1] [--json]
    .venv/bin/python bench/ebs.py --incremental [--size-gib 1] [--changed-mib 16] [--json]
    .venv/bin/python bench/ebs.py --encrypted [--backends files,rbd] [--size-gib 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
    stored_bytes,
    volume_file,
    wait_snapshot,
    wait_volume,
)
from tests.integration.guests import (  # noqa: E402
    available_image,
    wait_console,
    wait_for,
    wait_state,
)
from tests.integration.rbd import keyed_spec, spec, start_rbd_karri  # noqa: E402
from tests.integration.test_ebs_encryption import passphrase  # noqa: E402
from tests.qemu_keys import run_keyed  # noqa: E402

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


def compare(backend: str, size_gib: int) -> dict:
    """One backend's column: snapshot, restore and EBS-backed launches (fake node)."""
    results: dict = {"backend": backend, "size_gib": size_gib}
    size = size_gib << 30
    print(f"-- backend: {backend}", flush=True)
    with tempfile.TemporaryDirectory(dir=ROOT.parent) as tmp:
        data = Path(tmp) / "data"
        if backend == "rbd":
            karri, pool = start_rbd_karri(data, "--node-driver", "fake")
        else:
            karri, pool = start_karri(data, "--node-driver", "fake"), ""
        try:
            ec2 = karri.client("ec2")
            volume_id = new_volume(ec2, size=size_gib)
            source = Path(tmp) / "source.raw"
            source.touch()
            fill_random(source, size)
            _fill(karri, pool, volume_id, source)

            snap_id = timed(
                f"CreateSnapshot {size_gib} GiB -> completed",
                results,
                lambda: _snapshot(ec2, volume_id),
            )

            def restore() -> str:
                new_id = ec2.create_volume(SnapshotId=snap_id, AvailabilityZone=ZONE)["VolumeId"]
                wait_volume(ec2, new_id, timeout=3600)
                return new_id

            restored = timed("CreateVolume from it -> available", results, restore)
            _compare(karri, pool, restored, source)
            image_id = available_image(ec2, "karri-tiny-ebs", 900)["ImageId"]
            for count in (1, 10):
                timed(
                    f"RunInstances (EBS) x{count} -> running",
                    results,
                    lambda count=count: _launch(ec2, image_id, count),
                )
        finally:
            stop_karri(karri)
    return results


def incremental(size_gib: int, changed_mib: int) -> dict:
    """RBD: a full export, then one of ``changed_mib`` rewritten (a diff), a copy of the
    diff (read back whole) and a volume restored from it."""
    results: dict = {"size_gib": size_gib, "changed_mib": changed_mib}
    with tempfile.TemporaryDirectory(dir=ROOT.parent) as tmp:
        karri, pool = start_rbd_karri(Path(tmp) / "data", "--node-driver", "fake")
        try:
            ec2 = karri.client("ec2")
            volume_id = new_volume(ec2, size=size_gib)
            source = Path(tmp) / "source.raw"
            source.touch()
            fill_random(source, size_gib << 30)
            _fill(karri, pool, volume_id, source)

            def snapshot(source_id: str | None = None) -> str:
                if source_id:
                    snap_id = ec2.copy_snapshot(
                        SourceSnapshotId=source_id, SourceRegion=karri.region
                    )["SnapshotId"]
                else:
                    snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
                done = wait_snapshot(ec2, snap_id, timeout=3600)
                assert done["State"] == "completed", done
                results[f"stored MiB ({snap_id})"] = (stored_bytes(karri, snap_id) or 0) / MIB
                return snap_id

            timed("CreateSnapshot (first: whole) -> completed", results, snapshot)
            _rewrite(pool, volume_id, source, (size_gib << 30) // 2, changed_mib * MIB)
            second = timed("CreateSnapshot (second: a diff) -> completed", results, snapshot)
            copy = timed(
                "CopySnapshot of the second -> completed", results, lambda: snapshot(second)
            )

            def restore() -> str:
                new_id = ec2.create_volume(SnapshotId=copy, AvailabilityZone=ZONE)["VolumeId"]
                wait_volume(ec2, new_id, timeout=3600)
                return new_id

            restored = timed("CreateVolume from the copy -> available", results, restore)
            _compare(karri, pool, restored, source)
        finally:
            stop_karri(karri)
    return results


def encrypted(backend: str, size_gib: int) -> dict:
    """CreateVolume from an encrypted snapshot of a volume written whole, at its size and
    1 GiB larger (``backend``: files or rbd)."""
    results: dict = {"backend": backend, "size_gib": size_gib, "encrypted": True}
    print(f"-- backend: {backend} (encrypted)", flush=True)
    with tempfile.TemporaryDirectory(dir=ROOT.parent) as tmp:
        data = Path(tmp) / "data"
        if backend == "rbd":
            karri, pool = start_rbd_karri(data, "--no-default-images")
        else:
            karri, pool = start_karri(data, "--no-default-images"), ""
        try:
            account = karri.create_account("bench-encrypted")
            ec2 = karri.client("ec2", account)
            key = passphrase(karri, account.account_id)
            volume_id = new_volume(ec2, size=size_gib, Encrypted=True)
            _keyed(karri, pool, volume_id, key, f"write -P 0x5a 0 {size_gib << 30}")

            snap_id = timed(
                f"CreateSnapshot {size_gib} GiB (encrypted)",
                results,
                lambda: _snapshot(ec2, volume_id),
            )
            for grown in (0, 1):

                def restore(grown: int = grown) -> str:
                    new_id = ec2.create_volume(
                        SnapshotId=snap_id, AvailabilityZone=ZONE, Size=size_gib + grown
                    )["VolumeId"]
                    wait_volume(ec2, new_id, timeout=3600)
                    return new_id

                label = "CreateVolume from it" + (f" (+{grown} GiB)" if grown else "")
                restored = timed(f"{label} -> available", results, restore)
                _keyed(karri, pool, restored, key, f"read -P 0x5a 0 {size_gib << 30}")
        finally:
            stop_karri(karri)
    return results


def _snapshot(ec2, volume_id: str) -> str:
    """CreateSnapshot until ``completed``."""
    snap_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    done = wait_snapshot(ec2, snap_id, timeout=3600)
    assert done["State"] == "completed", done
    return snap_id


def _keyed(karri: Karri, pool: str, volume_id: str, key: bytes, command: str) -> None:
    """``qemu-io -c command`` on an encrypted volume through its account's key."""
    if pool:
        run_keyed(["qemu-io", "-c", command, keyed_spec(pool, volume_id)], key)
        return
    path = karri.data_dir / "volumes" / f"{volume_id}.qcow2"
    opened = f"driver=qcow2,encrypt.key-secret=k,file.filename={path}"
    run_keyed(["qemu-io", "--image-opts", opened, "-c", command], key)


def _rewrite(pool: str, volume_id: str, source: Path, offset: int, length: int) -> None:
    """New random bytes at ``offset`` in the image and in ``source`` (written through
    librbd, as a guest would: only these bytes change)."""
    import rados
    import rbd

    from tests import ceph

    data = os.urandom(length)
    with source.open("r+b") as file:
        file.seek(offset)
        file.write(data)
    with (
        rados.Rados(conffile=str(ceph.cluster().conf)) as cluster,
        cluster.open_ioctx(pool) as io,
        rbd.Image(io, volume_id) as image,
    ):
        image.write(data, offset)


def _fill(karri: Karri, pool: str, volume_id: str, source: Path) -> None:
    """The volume's bytes from ``source``, as a guest would write them."""
    where = spec(pool, volume_id) if pool else str(volume_file(karri, volume_id))
    subprocess.run(
        ["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(source), where],
        check=True,
        timeout=3600,
    )


def _compare(karri: Karri, pool: str, volume_id: str, source: Path) -> None:
    where = spec(pool, volume_id) if pool else str(volume_file(karri, volume_id))
    subprocess.run(
        ["qemu-img", "compare", "-f", "raw", "-F", "raw", str(source), where],
        check=True,
        capture_output=True,
        timeout=3600,
    )


def _launch(ec2, image_id: str, count: int) -> None:
    run = ec2.run_instances(
        ImageId=image_id, MinCount=count, MaxCount=count, InstanceType="t1.micro"
    )
    for launched in run["Instances"]:
        wait_state(ec2, launched["InstanceId"], "running", 600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=int, default=1)
    parser.add_argument("--no-instances", action="store_true", help="skip the stop/start cycle")
    parser.add_argument("--backends", default=None, help="compare these (files,rbd)")
    parser.add_argument("--incremental", action="store_true", help="RBD's incremental exports")
    parser.add_argument("--changed-mib", type=int, default=16)
    parser.add_argument("--encrypted", action="store_true", help="from encrypted snapshots")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict | list
    if args.incremental:
        results = incremental(args.size_gib, args.changed_mib)
    elif args.encrypted:
        results = [encrypted(b, args.size_gib) for b in (args.backends or "rbd").split(",")]
    elif args.backends:
        results = [compare(b, args.size_gib) for b in args.backends.split(",")]
    else:
        results = run(args.size_gib, not args.no_instances and os.geteuid() == 0)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
