"""Image benchmark: install a 1 GiB machine image, import a 1 GiB qcow2, and the node's
disk-ready time for the first and the tenth launch of an image.

A `karri up` is started here (loopback, free ports, no default image set). The image is
1 GiB with 128 MiB of random data spread over it (1 MiB every 8 MiB) and zeros between, a
rough stand-in for a file system image.

- install: `karri image install` (bundle + upload + RegisterImage) until ``available``;
- import: the same disk as qcow2 uploaded with boto3, then ImportImage until ``completed``;
- launch: the node's image cache (``karri.node.imagecache``) fed by the node's fetcher,
  then a qcow2 overlay on the cached file (``qemu-img create -b``): the first launch
  fetches the image, the tenth finds it cached and copies nothing.

    .venv/bin/python bench/images.py [--size-mib 1024] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import KARRI, start_karri, stop_karri  # noqa: E402

MIB = 1024 * 1024


def make_image(path: Path, size_mib: int) -> None:
    with open(path, "wb") as handle:
        handle.truncate(size_mib * MIB)
        for offset in range(0, size_mib, 8):
            handle.seek(offset * MIB)
            handle.write(os.urandom(MIB))


def timed(label: str, results: dict, func):
    started = time.perf_counter()
    value = func()
    results[label] = round(time.perf_counter() - started, 2)
    print(f"{label:<32} {results[label]:8.2f} s", flush=True)
    return value


def install(karri, image: Path) -> str:
    result = subprocess.run(
        [KARRI, "image", "install", str(image), "--name", "bench-install"],
        capture_output=True,
        text=True,
        env=karri.aws_env(),
        timeout=1800,
    )
    if result.returncode != 0:
        raise SystemExit(f"install failed: {result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def import_qcow2(karri, qcow2: Path, results: dict) -> str:
    s3, ec2 = karri.client("s3"), karri.client("ec2")
    s3.create_bucket(Bucket="bench-import")
    timed(
        "upload 1 GiB qcow2 (boto3)",
        results,
        lambda: s3.upload_file(str(qcow2), "bench-import", "disk.qcow2"),
    )

    def run() -> str:
        task = ec2.import_image(
            DiskContainers=[
                {
                    "Format": "QCOW2",
                    "UserBucket": {"S3Bucket": "bench-import", "S3Key": "disk.qcow2"},
                }
            ]
        )["ImportTaskId"]
        while True:
            state = ec2.describe_import_image_tasks(ImportTaskIds=[task])["ImportImageTasks"][0]
            if state["Status"] != "active":
                if state["Status"] != "completed":
                    raise SystemExit(f"import failed: {state}")
                return state["ImageId"]
            time.sleep(0.2)

    return timed("import 1 GiB qcow2 (to completed)", results, run)


def launches(data_dir: Path, image_id: str, work: Path, results: dict) -> None:
    from karri.cli.main import settings_for
    from karri.node import imagefetch
    from karri.node.imagecache import ImageCache
    from karri.up import open_cloud

    cloud = open_cloud(settings_for(data_dir))
    cache = ImageCache(work / "node" / "images")
    fetch = imagefetch.fetcher(cloud.images.image_ref(image_id), data_dir / "walrus")

    async def launch(n: int) -> float:
        started = time.perf_counter()
        base = await cache.ensure(image_id, fetch, user=f"i-{n:08x}")
        overlay = work / f"i-{n:08x}.qcow2"
        process = await asyncio.create_subprocess_exec(
            "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(overlay)
        )
        await process.wait()
        return time.perf_counter() - started

    async def ten() -> list[float]:
        return [await launch(n) for n in range(1, 11)]

    times = asyncio.run(ten())
    results["first launch disk ready"] = round(times[0], 3)
    results["tenth launch disk ready"] = round(times[9], 3)
    results["fetches for ten launches"] = cache.fetches
    print(f"{'first launch disk ready':<32} {times[0]:8.3f} s")
    print(f"{'tenth launch disk ready':<32} {times[9]:8.3f} s (fetches: {cache.fetches})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict = {"size_mib": args.size_mib}
    with tempfile.TemporaryDirectory(prefix="karri-bench-images-") as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        karri = start_karri(work / "data", "--no-default-images", "--max-image-size", "20")
        try:
            image = work / "disk.img"
            make_image(image, args.size_mib)
            image_id = timed(
                "install 1 GiB (bundle+upload+reg)", results, lambda: install(karri, image)
            )
            qcow2 = work / "disk.qcow2"
            subprocess.run(
                ["qemu-img", "convert", "-O", "qcow2", str(image), str(qcow2)], check=True
            )
            import_qcow2(karri, qcow2, results)
            launches(work / "data", image_id, work, results)
        finally:
            stop_karri(karri)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
