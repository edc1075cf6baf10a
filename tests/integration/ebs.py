"""Helpers the EBS tests share: waiting for states, and volume bytes on the test's disk.

karri runs in another process, but its data dir belongs to the test, so a test can play
the guest: write known bytes into a volume's file while nothing has it attached, and
compare the files of two volumes byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from karri.cloud.volumes.models import Snapshot
from karri.config import saved_db_url, sqlite_url
from karri.db.engine import Database
from tests.conftest import Karri

ZONE = "eucalyptus-1a"
GIB = 1 << 30


def wait_until(what: Callable[[], Any], timeout: float = 60, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def volume(ec2: Any, volume_id: str) -> dict[str, Any]:
    return ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]


def snapshot(ec2: Any, snapshot_id: str) -> dict[str, Any]:
    return ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]


def wait_volume(ec2: Any, volume_id: str, state: str = "available", timeout: float = 120):
    def reached() -> dict[str, Any] | None:
        current = volume(ec2, volume_id)
        assert current["State"] != "error", current
        return current if current["State"] == state else None

    return wait_until(reached, timeout)


def wait_snapshot(ec2: Any, snapshot_id: str, timeout: float = 300) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        current = snapshot(ec2, snapshot_id)
        return current if current["State"] != "pending" else None

    return wait_until(done, timeout)


def gone(ec2: Any, call: str, **ids: Any) -> bool:
    try:
        getattr(ec2, call)(**ids)
    except ec2.exceptions.ClientError as error:
        return error.response["Error"]["Code"].endswith(".NotFound")
    return False


def new_volume(ec2: Any, size: int = 1, **extra: Any) -> str:
    volume_id = ec2.create_volume(Size=size, AvailabilityZone=ZONE, **extra)["VolumeId"]
    wait_volume(ec2, volume_id)
    return volume_id


def volume_file(karri: Karri, volume_id: str) -> Path:
    return karri.data_dir / "volumes" / f"{volume_id}.raw"


def write_pattern(path: Path, seed: int, offsets: list[int], length: int = 1 << 20) -> None:
    """Write ``length`` pseudo-random bytes (from ``seed``) at each offset, as a guest would."""
    fd = os.open(path, os.O_WRONLY)
    try:
        for i, offset in enumerate(offsets):
            block = hashlib.shake_256(f"{seed}:{i}".encode()).digest(length)
            os.pwrite(fd, block, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def digest(path: Path, length: int | None = None) -> str:
    """A digest of the first ``length`` bytes of a file (all of it by default) that is the
    same for equal contents however they are laid out (holes or written zeros): SHA-256 over
    every non-zero 1 MiB block and its offset, found through SEEK_DATA so holes cost nothing.
    """
    size = path.stat().st_size if length is None else length
    h = hashlib.sha256(str(size).encode())
    block = 1 << 20
    zeros = bytes(block)
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = 0
        while offset < size:
            try:
                offset = os.lseek(fd, offset, os.SEEK_DATA) // block * block
            except OSError:  # ENXIO: only a hole is left
                break
            data = os.pread(fd, min(block, size - offset), offset)
            if data and data != zeros[: len(data)]:
                h.update(offset.to_bytes(8, "little") + data)
            offset += block
    finally:
        os.close(fd)
    return h.hexdigest()


def zeros_after(path: Path, offset: int) -> bool:
    """Whether everything from ``offset`` to the end of the file reads as zeros."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        while offset < size:
            try:
                offset = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                return True
            data = os.pread(fd, min(1 << 20, size - offset), offset)
            if data.count(0) != len(data):
                return False
            offset += len(data)
    finally:
        os.close(fd)
    return True


def error_code(call: Callable[..., Any], **params: Any) -> str:
    try:
        call(**params)
    except Exception as error:  # botocore ClientError
        response = getattr(error, "response", None)
        if response is None:
            raise
        return response["Error"]["Code"]
    raise AssertionError(f"{call.__name__} succeeded")


def fill_random(path: Path, length: int, offset: int = 0) -> None:
    """Fill ``length`` bytes of a volume file with random data."""
    fd = os.open(path, os.O_WRONLY)
    try:
        done = 0
        while done < length:
            step = min(16 << 20, length - done)
            os.pwrite(fd, os.urandom(step), offset + done)
            done += step
        os.fsync(fd)
    finally:
        os.close(fd)


def stored_bytes(karri: Karri, snapshot_id: str) -> int | None:
    """The bytes the snapshot's export wrote to Walrus (its row's ``stored_bytes``; None
    once its row is gone: a deleted snapshot's stays while a later diff needs its object)."""
    db = Database(saved_db_url(karri.data_dir) or sqlite_url(karri.data_dir), run_migrations=False)
    try:
        with db.session() as session:
            snapshot = session.get(Snapshot, snapshot_id)
            return snapshot.stored_bytes if snapshot is not None else None
    finally:
        db.dispose()
