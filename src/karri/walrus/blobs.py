"""Object bytes on disk (the default ``BlobStore``): immutable blob files named by
random ids, never by keys.

A blob is written to ``tmp/``, fsynced, then renamed into ``blobs/xx/`` and only then
referenced by a committed database row. A crash at any point leaves either a stray
temporary file or an unreferenced blob, both removed by ``sweep`` on the next start;
a committed row always names a complete, durable file. Blobs are never modified, and
an unlinked blob stays readable through descriptors already open on it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from functools import partial
from pathlib import Path

from karri.walrus.appender import DirectAppender, open_new
from karri.walrus.blobstore import Reaper, check_blob_id, new_blob_id
from karri.walrus.checksums import PARALLEL_MIN, Digests, background, in_parallel

BLOB_MODE = 0o440  # read-only: zero-copy consumers get the path, never write access
COPY_CHUNK = 64 * 1024 * 1024
# Without direct I/O, a blob being written is fsynced every WRITEBACK_WINDOW bytes: the
# fsync before the commit then waits for the last window only. (One fsync of a whole GiB
# at the end stalls for about half a second while the disk below flushes its cache.)
WRITEBACK_WINDOW = 32 * 1024 * 1024


class FileBlobWriter:
    """Streams bytes into a temporary file, hashing as it goes; ``commit`` makes it a blob.

    Not thread-safe: one writer is fed by one thread at a time. Bytes go to the disk with
    direct I/O where the filesystem has it (see ``appender``); ``direct=False`` keeps the
    page cache, for writers whose descriptor is also written by ``copy_file_range``.
    """

    def __init__(self, store: FileBlobStore, digests: Digests, *, direct: bool = True) -> None:
        self.store = store
        self.digests = digests
        self.blob_id = new_blob_id()
        self.size = 0
        self._flushed = 0  # bytes handed to a background fsync
        self._syncing: Future | None = None
        self._tmp = store.tmp / self.blob_id
        # Created read-only (this descriptor may still write): no chmod later.
        self._fd, is_direct = open_new(self._tmp, BLOB_MODE, direct=direct)
        self._direct = DirectAppender(self._fd) if is_direct else None
        self._sink = self._direct.write if self._direct else partial(_write_all, self._fd)
        self._done = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (not changed until this returns); large writes are hashed and
        written on several cores at once."""
        if len(data) >= PARALLEL_MIN:
            in_parallel([*self.digests.jobs(data), partial(self._sink, data)])
        else:
            self.digests.update(data)
            self._sink(data)
        self.size += len(data)
        if self._direct is None and self.size - self._flushed >= WRITEBACK_WINDOW:
            self._write_back()

    def _write_back(self) -> None:
        """fsync what is written so far in the background; wait for the previous one."""
        self._wait_written()
        self._syncing = background(os.fdatasync, self._fd)
        self._flushed = self.size

    def _wait_written(self) -> None:
        if self._syncing is not None:
            syncing, self._syncing = self._syncing, None
            syncing.result()

    def commit(self) -> str:
        """fsync, rename into place; returns the blob id. The caller then commits its row."""
        try:
            if self._direct is not None:
                self._direct.finish()
            self._wait_written()
            os.fdatasync(self._fd)  # the data and the size: what reading it back needs
        finally:
            os.close(self._fd)
            self._done = True
        target = self.store.path(self.blob_id)
        try:
            os.rename(self._tmp, target)
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self._tmp, target)
        return self.blob_id

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._wait_written()
        if self._direct is not None:
            self._direct.close()
        if not self._done:
            self._done = True
            os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


class FileBlob:
    """An open blob file (``OpenBlob``): its descriptor keeps the bytes readable even if
    the blob is deleted meanwhile."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FileBlobStore:
    """The ``walrus/`` directory of the data dir."""

    sweeps_while_serving = False  # its sweep removes the temporary files of writes

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.blobs = root / "blobs"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._reaper = Reaper(self.unlink)

    def path(self, blob_id: str) -> Path:
        check_blob_id(blob_id)
        return self.blobs / blob_id[:2] / blob_id

    def local_path(self, blob_id: str) -> Path:
        return self.path(blob_id)

    def writer(self, digests: Digests, *, direct: bool = True) -> FileBlobWriter:
        return FileBlobWriter(self, digests, direct=direct)

    def open(self, blob_id: str, *, verify: bool = True) -> FileBlob:
        """The blob's file, open read-only (an open file always verifies)."""
        return FileBlob(self._open_fd(blob_id))

    def _open_fd(self, blob_id: str) -> int:
        return os.open(self.path(blob_id), os.O_RDONLY)

    def link(self, blob_id: str, size: int = 0) -> str:
        """A new blob id naming the same (immutable) bytes: a copy that costs nothing."""
        new_id = new_blob_id()
        target = self.path(new_id)
        try:
            os.link(self.path(blob_id), target)
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(self.path(blob_id), target)
        return new_id

    def unlink(self, blob_ids: Iterable[str | None]) -> None:
        for blob_id in blob_ids:
            if blob_id:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path(blob_id))

    def unlink_later(self, blob_ids: Iterable[str | None]) -> None:
        """Remove blobs no row references any more, off the request path.

        Unlinking a file costs a journal transaction; nobody waits for it. A crash first
        leaves orphans that ``sweep`` removes at the next start."""
        self._reaper.later(blob_ids)

    def drain(self) -> None:
        """Wait until every ``unlink_later`` has happened (tests, shutdown)."""
        self._reaper.drain()

    def concatenate(
        self, sources: list[tuple[str, int, int]], digests: Digests, *, hash_data: bool = False
    ) -> FileBlobWriter:
        """A writer holding the given (blob, offset, length) ranges, copied in the kernel.

        The bytes are only read back into Python when ``hash_data`` asks for it.
        """
        writer = self.writer(digests, direct=False)  # copy_file_range writes its descriptor
        try:
            for blob_id, offset, length in sources:
                fd = self._open_fd(blob_id)
                try:
                    if hash_data:
                        _copy_hashing(fd, offset, length, writer.write)
                    else:
                        _copy_range(fd, writer._fd, offset, length)
                        writer.size += length
                finally:
                    os.close(fd)
        except BaseException:
            writer.abort()
            raise
        return writer

    def sweep(self, referenced: Callable[[set[str]], set[str]]) -> tuple[int, int]:
        """Remove temporary files and unreferenced blobs; run only before serving.

        ``referenced`` gets a batch of blob ids and answers which of them the database
        still names. Returns (temporary files, orphan blobs) removed.
        """
        temps = 0
        for entry in os.scandir(self.tmp):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(entry.path)
                temps += 1
        orphans = 0
        for shard in os.scandir(self.blobs):
            if not shard.is_dir():
                continue
            names = {entry.name for entry in os.scandir(shard.path)}
            names -= referenced(names) if names else set()
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(shard.path, name))
                    orphans += 1
        return temps, orphans


def _copy_range(src: int, dst: int, offset: int, length: int) -> None:
    position = offset
    end = offset + length
    while position < end:
        try:
            copied = os.copy_file_range(src, dst, min(COPY_CHUNK, end - position), position)
        except OSError:
            copied = 0
        if copied == 0:  # not supported here, or past the end: copy through user space
            _copy_hashing(src, position, end - position, lambda data: _write_all(dst, data))
            return
        position += copied


def _copy_hashing(fd: int, offset: int, length: int, write: Callable[[bytes], None]) -> None:
    remaining = length
    while remaining:
        data = os.pread(fd, min(4 * 1024 * 1024, remaining), offset)
        if not data:
            raise OSError(f"blob shorter than expected ({remaining} bytes missing)")
        write(data)
        offset += len(data)
        remaining -= len(data)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
