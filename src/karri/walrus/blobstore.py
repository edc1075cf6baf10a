"""The seam where Walrus keeps object bytes: a blob store, files or RADOS.

A blob is an immutable byte string named by a random 32-hex id, never by a key: written
once through a ``BlobWriter`` (``commit`` makes it durable before any row names it),
read through an ``OpenBlob``, removed once no row names it. The rest of Walrus (rows,
versions, multipart segments) does not know where blobs live; ``blobs.FileBlobStore``
keeps them as files (zero-copy reads with sendfile), ``rados.RadosBlobStore`` in Ceph.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from karri.walrus.checksums import Digests


def new_blob_id() -> str:
    return uuid.uuid4().hex


def check_blob_id(blob_id: str) -> str:
    if len(blob_id) != 32 or not all(c in "0123456789abcdef" for c in blob_id):
        raise ValueError(f"not a blob id: {blob_id!r}")
    return blob_id


class BlobWriter(Protocol):
    """Bytes streamed into a new blob, hashed by ``digests`` as they come. One thread at a
    time; ``commit`` (durable, returns the id) or ``abort`` ends it. ``blob_id`` may be
    set before the first write: `karri storage migrate` copies a blob under its own id."""

    blob_id: str
    digests: Digests
    size: int

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def commit(self) -> str: ...

    def abort(self) -> None: ...


class OpenBlob(Protocol):
    """A blob open for reading. A file keeps its bytes while open even if deleted; a
    RADOS blob deleted meanwhile reads short (b"")."""

    def fileno(self) -> int | None:
        """A descriptor for zero-copy reads (sendfile), or None (read with ``pread``)."""
        ...

    def pread(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset``; b"" past the end. May block on I/O."""
        ...

    def close(self) -> None: ...


class BlobStore(Protocol):
    """Where the blobs of one cloud live."""

    # Whether ``sweep`` may run while blobs are being written (else: only before serving).
    sweeps_while_serving: bool

    def writer(self, digests: Digests, *, direct: bool = True) -> BlobWriter: ...

    def open(self, blob_id: str, *, verify: bool = True) -> OpenBlob:
        """FileNotFoundError if the blob is gone (``verify=False``: no I/O here, a
        missing blob reads short later)."""
        ...

    def link(self, blob_id: str, size: int) -> str:
        """A new blob id with the same ``size`` bytes (FileNotFoundError if the blob is
        gone)."""
        ...

    def unlink(self, blob_ids: Iterable[str | None]) -> None: ...

    def unlink_later(self, blob_ids: Iterable[str | None]) -> None:
        """``unlink`` off the request path; a crash first leaves orphans for ``sweep``."""
        ...

    def drain(self) -> None:
        """Wait until every ``unlink_later`` has happened (tests, shutdown)."""
        ...

    def concatenate(
        self, sources: list[tuple[str, int, int]], digests: Digests, *, hash_data: bool = False
    ) -> BlobWriter:
        """A writer holding the (blob, offset, length) ranges in order; the bytes are
        hashed only when ``hash_data`` asks for it."""
        ...

    def sweep(self, referenced: Callable[[set[str]], set[str]]) -> tuple[int, int]:
        """Remove unfinished writes and blobs no row names (``referenced`` answers which
        of a batch of ids the database names): (unfinished, orphans) removed."""
        ...

    def local_path(self, blob_id: str) -> Path | None:
        """The blob's read-only file, for zero-copy consumers; None if blobs are not
        local files."""
        ...


class Reaper:
    """Runs ``remove`` on batches of blob ids in a thread of its own, started on first use
    (removing costs a journal transaction or a network round trip: nobody waits for it)."""

    def __init__(self, remove: Callable[[list[str]], None]) -> None:
        self._remove = remove
        self._doomed: queue.Queue[list[str]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def later(self, blob_ids: Iterable[str | None]) -> None:
        batch = [blob_id for blob_id in blob_ids if blob_id]
        if not batch:
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="walrus-unlink", daemon=True)
                self._thread.start()
        self._doomed.put(batch)

    def _run(self) -> None:
        while True:
            batch = self._doomed.get()
            try:
                self._remove(batch)
            except Exception:  # left for the next sweep
                logging.getLogger("karri.walrus").exception("walrus: removing blobs failed")
            finally:
                self._doomed.task_done()

    def drain(self) -> None:
        """Wait until every batch given so far is removed."""
        self._doomed.join()
