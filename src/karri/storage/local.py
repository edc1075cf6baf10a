"""The local-file backend: each volume is a file under ``DATA_DIR/volumes``.

A plain volume is a sparse raw file: QEMU hot-plugs it with the plainest ``blockdev-add``
(driver raw over file), a snapshot of it is its exact bytes, and holes keep an unwritten
volume free. An encrypted one is a qcow2 file with LUKS encryption (``karri.storage.luks``:
unwritten clusters read as zeros); the suffix says which, never what the file holds (a
guest may write any header into a plain volume). Layout::

    volumes/vol-1a2b3c4d.raw            a volume
    volumes/vol-5e6f7a8b.qcow2          a volume encrypted at rest (every ``.qcow2`` is)
    volumes/vol-9c0d1e2f.luks           one encrypted before qcow2: raw LUKS (legacy, kept)
    volumes/checkpoints/snap-….raw      point-in-time copy a snapshot is uploaded from
                                        (an encrypted volume's: its file, ciphertext)
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
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from karri.storage import luks, nbdwrite, sparse
from karri.storage.interface import (
    GIB,
    Readable,
    StorageError,
    VolumeTarget,
    check_snapshot_id,
    check_volume_id,
)

FILE_MODE = 0o600
PLAIN, ENCRYPTED, LEGACY = ".raw", ".qcow2", ".luks"  # volume files' suffixes
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


@dataclass
class _Staged:
    """A file being written (``fd``, at ``path``), renamed to ``target`` once complete."""

    fd: int
    path: Path
    target: Path


class LocalFileStorage:
    """``StorageController`` over sparse raw files in one directory."""

    keeps_checkpoints = False  # a checkpoint is a copy: dropped once the snapshot is stored
    live_checkpoints = False  # a volume in use is copied through QEMU (a backup job)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.checkpoints = root / "checkpoints"
        for path in (root, self.tmp, self.checkpoints):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- paths ---------------------------------------------------------------------------

    def _volume(self, volume_id: str) -> Path:
        """The volume's file: ``.qcow2`` (or legacy ``.luks``) if it is encrypted, else
        ``.raw``."""
        for suffix in (ENCRYPTED, LEGACY):
            path = self._path(volume_id, suffix)
            if path.exists():
                return path
        return self._path(volume_id, PLAIN)

    def _path(self, volume_id: str, suffix: str) -> Path:
        return self.root / f"{check_volume_id(volume_id)}{suffix}"

    def _checkpoint(self, snapshot_id: str) -> Path:
        return self.checkpoints / f"{check_snapshot_id(snapshot_id)}.raw"

    def _seal(self, snapshot_id: str) -> Path:
        return self.checkpoints / f"{check_snapshot_id(snapshot_id)}.json"

    @contextlib.contextmanager
    def _staged(
        self,
        target: Path,
        size: int,
        *,
        durable: bool,
        make: Callable[[Path], None] | None = None,
    ) -> Iterator[_Staged]:
        """A temporary file of ``size`` bytes (or as ``make`` writes it, by its path) to
        fill; renamed to ``target`` (or where the block set it) on success."""
        tmp = self.tmp / f"{target.name}.{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            if make is not None:
                make(tmp)
            else:
                os.ftruncate(fd, size)
            staged = _Staged(fd, tmp, target)
            yield staged
            if durable:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(tmp, staged.target)
            if durable:
                _fsync_dir(staged.target.parent)
        finally:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # -- volumes ---------------------------------------------------------------------------

    def create(self, volume_id: str, size_gib: int, passphrase: bytes | None = None) -> None:
        """A zero-filled volume; with a ``passphrase``, encrypted at rest (``qcow2-luks``)."""
        if passphrase is None:
            with self._staged(self._path(volume_id, PLAIN), size_gib * GIB, durable=True):
                return
        size = size_gib * GIB
        make = lambda path: luks.create(path, size, passphrase)  # noqa: E731
        with self._staged(self._path(volume_id, ENCRYPTED), 0, durable=True, make=make):
            pass

    def create_from(
        self,
        volume_id: str,
        stream: Readable | BinaryIO,
        size_gib: int,
        progress: Callable[[int], None] | None = None,
        *,
        encrypted: bool = False,
        passphrase: bytes | None = None,
    ) -> None:
        size = size_gib * GIB
        try:
            virtual = sparse.read_header(stream.read)
            if passphrase is not None and not encrypted:
                self._encrypt_from(volume_id, stream, virtual, size, passphrase, progress)
                return
            if encrypted:  # the snapshot is the volume's file: ciphertext it stays
                with self._staged(self._path(volume_id, ENCRYPTED), virtual, durable=True) as f:
                    sparse.decode_into(stream.read, f.fd, virtual, progress)
                    f.target = _grow_restored(f, size, passphrase)
                return
            with self._staged(self._path(volume_id, PLAIN), size, durable=True) as f:
                if virtual > size:
                    raise StorageError(_too_big(virtual, size))
                sparse.decode_into(stream.read, f.fd, virtual, progress)
        except sparse.CorruptStream as error:
            raise StorageError(f"snapshot stream for {volume_id}: {error}") from error
        except (luks.LuksError, nbdwrite.NbdError) as error:
            raise StorageError(f"snapshot stream for {volume_id}: {error}") from error

    def _encrypt_from(
        self,
        volume_id: str,
        stream: Readable | BinaryIO,
        virtual: int,
        size: int,
        passphrase: bytes,
        progress: Callable[[int], None] | None,
    ) -> None:
        """A plain snapshot's blocks into a new encrypted volume, encrypted by QEMU on
        their way in (``nbdwrite``): no plaintext file, not even a temporary one."""
        if virtual > size:
            raise StorageError(_too_big(virtual, size))
        made: list[Path] = []

        def make(path: Path) -> None:
            luks.create(path, size, passphrase)
            made.append(path)

        with self._staged(self._path(volume_id, ENCRYPTED), 0, durable=True, make=make):
            nbdwrite.encrypt_stream(made[0], stream, virtual, passphrase, progress)

    def clone_checkpoint(
        self,
        snapshot_id: str,
        volume_id: str,
        size_gib: int,
        *,
        flatten: bool,
        passphrase: bytes | None = None,
    ) -> bool:
        return False  # files share no blocks: volumes are restored from the stream

    def delete(self, volume_id: str) -> None:
        for path in (self._path(volume_id, suffix) for suffix in (ENCRYPTED, LEGACY, PLAIN)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                _fsync_dir(self.root)

    def exists(self, volume_id: str) -> bool:
        return self._volume(volume_id).exists()

    def target(self, volume_id: str) -> VolumeTarget:
        """Where QEMU opens the volume, and its size as the guest sees it."""
        path = self._volume(volume_id)
        try:
            if path.suffix == ENCRYPTED:
                size = luks.virtual_size(path)
                return VolumeTarget(volume_id, "file", str(path), luks.FORMAT, size)
            size = path.stat().st_size
            if path.suffix == LEGACY:
                size -= luks.legacy_header_size(path)
                return VolumeTarget(volume_id, "file", str(path), luks.LEGACY_FORMAT, size)
        except FileNotFoundError:
            raise StorageError(f"volume {volume_id} does not exist") from None
        except luks.LuksError as error:
            raise StorageError(f"volume {volume_id}: {error}") from None
        return VolumeTarget(volume_id, "file", str(path), "raw", size)

    def resize(self, volume_id: str, size_gib: int, passphrase: bytes | None = None) -> None:
        path = self._volume(volume_id)
        size = size_gib * GIB
        try:
            if path.suffix == ENCRYPTED:
                if passphrase is None:
                    raise StorageError(f"growing {volume_id} needs its passphrase")
                luks.grow(path, size, passphrase)
                return
            if path.suffix == LEGACY:
                size += luks.legacy_header_size(path)
            if path.stat().st_size < size:
                os.truncate(path, size)
        except FileNotFoundError:
            raise StorageError(f"volume {volume_id} does not exist") from None
        except luks.LuksError as error:
            raise StorageError(f"volume {volume_id}: {error}") from None

    def volume_ids(self) -> set[str]:
        return {
            p.stem
            for suffix in (PLAIN, ENCRYPTED, LEGACY)
            for p in self.root.glob(f"vol-*{suffix}")
        }

    def volume_stream(self, volume_id: str) -> sparse.SparseStream:
        path = self._volume(volume_id)
        try:
            return sparse.encode(path)
        except FileNotFoundError:
            raise StorageError(f"volume {volume_id} does not exist") from None

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self, volume_id: str, snapshot_id: str) -> None:
        source = self._volume(volume_id)
        if not source.exists():
            raise StorageError(f"volume {volume_id} does not exist")
        self.checkpoint_file(snapshot_id, source)

    def checkpoint_file(self, snapshot_id: str, path: Path) -> None:
        size = path.stat().st_size
        with self._staged(self._checkpoint(snapshot_id), size, durable=False) as staged:
            sparse.copy_sparse(path, staged.fd, size)
        self.seal_checkpoint(snapshot_id)

    def checkpoint_from(
        self,
        snapshot_id: str,
        stream: Readable | BinaryIO,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.drop_checkpoint(snapshot_id)
        try:
            virtual = sparse.read_header(stream.read)
            with self._staged(self._checkpoint(snapshot_id), virtual, durable=False) as staged:
                sparse.decode_into(stream.read, staged.fd, virtual, progress)
        except sparse.CorruptStream as error:
            raise StorageError(f"snapshot stream for {snapshot_id}: {error}") from error
        self.seal_checkpoint(snapshot_id)

    def checkpoint_target(
        self, snapshot_id: str, size_gib: int, passphrase: bytes | None = None
    ) -> VolumeTarget:
        self.drop_checkpoint(snapshot_id)
        path = self._checkpoint(snapshot_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            if passphrase is not None:
                luks.create(path, size_gib * GIB, passphrase)
            else:
                os.ftruncate(fd, size_gib * GIB)
        finally:
            os.close(fd)
        fmt = luks.FORMAT if passphrase is not None else "raw"
        return VolumeTarget(snapshot_id, "file", str(path), fmt, size_gib * GIB)

    def encrypted_checkpoint(
        self,
        snapshot_id: str,
        stream: Readable | BinaryIO,
        passphrase: bytes,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.drop_checkpoint(snapshot_id)
        path = self._checkpoint(snapshot_id)
        try:
            virtual = sparse.read_header(stream.read)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE))
            luks.create(path, virtual, passphrase)
            nbdwrite.encrypt_stream(path, stream, virtual, passphrase, progress)
            self.seal_checkpoint(snapshot_id)
        except BaseException as error:
            self.drop_checkpoint(snapshot_id)  # not even ciphertext is left behind
            if isinstance(error, sparse.CorruptStream | luks.LuksError | nbdwrite.NbdError):
                raise StorageError(f"snapshot stream for {snapshot_id}: {error}") from error
            raise

    def seal_checkpoint(self, snapshot_id: str) -> None:
        self._seal(snapshot_id).write_text(json.dumps({"boot_id": boot_id()}))

    def has_checkpoint(self, snapshot_id: str) -> bool:
        try:
            seal = json.loads(self._seal(snapshot_id).read_text())
        except (OSError, ValueError):
            return False
        return seal.get("boot_id") == boot_id() and self._checkpoint(snapshot_id).exists()

    def export(self, snapshot_id: str, since: str | None = None) -> sparse.SparseStream:
        """The whole checkpoint (copies made here are not diffed: ``since`` is ignored)."""
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


def _grow_restored(staged: _Staged, size: int, passphrase: bytes | None) -> Path:
    """An encrypted snapshot's file just written: checked, grown to ``size`` bytes; where
    it goes (its header says which kind: snapshots taken before qcow2 are raw LUKS)."""
    if os.pread(staged.fd, len(luks.LEGACY_MAGIC), 0) == luks.LEGACY_MAGIC:
        header = luks.payload_offset(staged.fd)
        if os.fstat(staged.fd).st_size - header > size:
            raise StorageError(_too_big(os.fstat(staged.fd).st_size - header, size))
        os.ftruncate(staged.fd, header + size)
        return staged.target.with_suffix(LEGACY)
    virtual = luks.check_header(staged.fd)
    if virtual > size:
        raise StorageError(_too_big(virtual, size))
    if virtual < size:
        if passphrase is None:
            raise StorageError("growing an encrypted volume needs its passphrase")
        luks.grow(staged.path, size, passphrase)
    return staged.target


def _too_big(virtual: int, size: int) -> str:
    return f"the snapshot holds {virtual} bytes, more than the volume's {size}"
