"""The local-file backend: each volume is a sparse raw file under ``DATA_DIR/volumes``.

Raw because QEMU hot-plugs it with the plainest ``blockdev-add`` (driver raw over file),
a snapshot of it is its exact bytes, and holes keep an unwritten volume free. Layout::

    volumes/vol-1a2b3c4d.raw            a volume
    volumes/checkpoints/snap-….raw      point-in-time copy a snapshot is uploaded from
    volumes/checkpoints/snap-….json     the checkpoint's seal (boot id; see below)
    volumes/tmp/                        files being written; removed by ``sweep``

Volumes are written to ``tmp/``, fsynced and renamed into place, so a crash leaves either
no volume or a complete one. Checkpoints are temporary and not fsynced (they would double
the cost of every snapshot): their seal records the kernel's boot id, and a checkpoint
sealed before a reboot is not trusted, since unsynced pages may have been lost. A crash of
karri alone keeps the page cache, so its checkpoints survive it.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from karri.storage import sparse
from karri.storage.interface import (
    GIB,
    Readable,
    StorageError,
    VolumeTarget,
    check_snapshot_id,
    check_volume_id,
)

FILE_MODE = 0o600
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:  # pragma: no cover - not Linux
        return "unknown"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalFileStorage:
    """``StorageController`` over sparse raw files in one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.checkpoints = root / "checkpoints"
        for path in (root, self.tmp, self.checkpoints):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- paths ---------------------------------------------------------------------------

    def _volume(self, volume_id: str) -> Path:
        return self.root / f"{check_volume_id(volume_id)}.raw"

    def _checkpoint(self, snapshot_id: str) -> Path:
        return self.checkpoints / f"{check_snapshot_id(snapshot_id)}.raw"

    def _seal(self, snapshot_id: str) -> Path:
        return self.checkpoints / f"{check_snapshot_id(snapshot_id)}.json"

    @contextlib.contextmanager
    def _staged(self, target: Path, size: int, *, durable: bool) -> Iterator[int]:
        """A temporary file of ``size`` bytes to fill; renamed to ``target`` on success."""
        tmp = self.tmp / f"{target.name}.{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            os.ftruncate(fd, size)
            yield fd
            if durable:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(tmp, target)
            if durable:
                _fsync_dir(target.parent)
        finally:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # -- volumes ---------------------------------------------------------------------------

    def create(self, volume_id: str, size_gib: int) -> None:
        with self._staged(self._volume(volume_id), size_gib * GIB, durable=True):
            pass

    def create_from(
        self,
        volume_id: str,
        stream: Readable | BinaryIO,
        size_gib: int,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        size = size_gib * GIB
        try:
            virtual = sparse.read_header(stream.read)
            if virtual > size:
                raise StorageError(
                    f"the snapshot holds {virtual} bytes, more than the volume's {size}"
                )
            with self._staged(self._volume(volume_id), size, durable=True) as fd:
                sparse.decode_into(stream.read, fd, virtual, progress)
        except sparse.CorruptStream as error:
            raise StorageError(f"snapshot stream for {volume_id}: {error}") from error

    def delete(self, volume_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._volume(volume_id))
            _fsync_dir(self.root)

    def exists(self, volume_id: str) -> bool:
        return self._volume(volume_id).exists()

    def target(self, volume_id: str) -> VolumeTarget:
        path = self._volume(volume_id)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise StorageError(f"volume {volume_id} does not exist") from None
        return VolumeTarget(volume_id, "file", str(path), "raw", size)

    def resize(self, volume_id: str, size_gib: int) -> None:
        path = self._volume(volume_id)
        size = size_gib * GIB
        try:
            if path.stat().st_size < size:
                os.truncate(path, size)
        except FileNotFoundError:
            raise StorageError(f"volume {volume_id} does not exist") from None

    def volume_ids(self) -> set[str]:
        return {p.stem for p in self.root.glob("vol-*.raw")}

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self, volume_id: str, snapshot_id: str) -> None:
        source = self._volume(volume_id)
        if not source.exists():
            raise StorageError(f"volume {volume_id} does not exist")
        self.checkpoint_file(snapshot_id, source)

    def checkpoint_file(self, snapshot_id: str, path: Path) -> None:
        size = path.stat().st_size
        with self._staged(self._checkpoint(snapshot_id), size, durable=False) as fd:
            sparse.copy_sparse(path, fd, size)
        self.seal_checkpoint(snapshot_id)

    def checkpoint_target(self, snapshot_id: str, size_gib: int) -> VolumeTarget:
        self.drop_checkpoint(snapshot_id)
        path = self._checkpoint(snapshot_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            os.ftruncate(fd, size_gib * GIB)
        finally:
            os.close(fd)
        return VolumeTarget(snapshot_id, "file", str(path), "raw", size_gib * GIB)

    def seal_checkpoint(self, snapshot_id: str) -> None:
        self._seal(snapshot_id).write_text(json.dumps({"boot_id": boot_id()}))

    def has_checkpoint(self, snapshot_id: str) -> bool:
        try:
            seal = json.loads(self._seal(snapshot_id).read_text())
        except (OSError, ValueError):
            return False
        return seal.get("boot_id") == boot_id() and self._checkpoint(snapshot_id).exists()

    def export(self, snapshot_id: str) -> sparse.SparseStream:
        if not self.has_checkpoint(snapshot_id):
            raise StorageError(f"no checkpoint for {snapshot_id}")
        return sparse.encode(self._checkpoint(snapshot_id))

    def drop_checkpoint(self, snapshot_id: str) -> None:
        for path in (self._seal(snapshot_id), self._checkpoint(snapshot_id)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def checkpoint_ids(self) -> set[str]:
        return {p.stem for p in self.checkpoints.glob("snap-*.raw")}

    # -- housekeeping ------------------------------------------------------------------------

    def sweep(self) -> int:
        removed = 0
        for path in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        return removed
