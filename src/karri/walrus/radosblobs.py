"""Object bytes in Ceph RADOS (``karri up --walrus-backend rados``): a ``BlobStore``.

A blob is striped over RADOS objects of ``STRIPE`` bytes named ``<blob id>.<index, 8
hex>`` in the namespace ``walrus`` of one pool (a RADOS object holds at most 128 MiB; a
fixed size makes any byte's stripe a division away). Every blob has stripe 0, empty for
an empty blob. Stripes are written asynchronously, a few at a time, and ``commit``
returns once the OSDs acknowledged all of them: only then does a row name the blob, and
rows (in the cloud's database) are what any number of front ends share. Blobs are never
modified: an overwrite writes a new blob, switches the row, then removes the old one,
so a committed row never names wrong bytes; a reader of a blob removed meanwhile reads
short, never other bytes. A crash leaves unreferenced stripes, which ``sweep`` removes
once they are older than ``grace`` (younger ones may be another front end's write).

A cluster that cannot be reached fails calls with S3's ``ServiceUnavailable`` (503,
which clients retry) after at most ``timeout`` seconds: connecting, monitor and OSD
operations all carry librados timeouts (unless the Ceph configuration sets its own), so
no API worker waits for Ceph indefinitely. A failed connection is tried again by the
next call (after ``RECONNECT_PAUSE``), so the cloud recovers by itself when Ceph returns;
librados itself reconnects a connected client.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from karri.cephclient import connect, ensure_pool, unreachable
from karri.walrus.blobstore import Reaper, check_blob_id, new_blob_id
from karri.walrus.checksums import PARALLEL_MIN, Digests, in_parallel
from karri.walrus.errors import S3Error

log = logging.getLogger("karri.walrus")

STRIPE = 4 * 1024 * 1024
NAMESPACE = "walrus"
IN_FLIGHT = 8  # stripes written at once by one writer
RECONNECT_PAUSE = 2.0  # seconds after a failed connection during which calls fail at once
LIST_BATCH = 500
READAHEAD_MIN = 256 * 1024  # reads this large take whole stripes, the next one ahead
READAHEAD_THREADS = 8  # stripes read ahead at once, for all readers of one store


@dataclass(frozen=True)
class CephTarget:
    """Where the blobs go: a Ceph configuration file (None: librados's defaults), the
    client's user name (``client.<user>``) and the pool (created if missing)."""

    conf: str | None = None
    user: str = "admin"
    pool: str = "karri-objects"
    timeout: float = 10.0  # seconds any one Ceph operation may take
    grace: float = 3600.0  # an unreferenced blob younger than this is left to its writer


def stripe_name(blob_id: str, index: int) -> str:
    return f"{blob_id}.{index:08x}"


def unavailable(error: BaseException | None = None) -> S3Error:
    detail = f" ({error})" if error else ""
    return S3Error(
        "ServiceUnavailable",
        f"The object store's storage cluster cannot be reached; please retry{detail}.",
        503,
    )


def _failed(error: BaseException) -> S3Error:
    """S3's error for a librados failure: the cluster out of reach (timeouts, lost
    connections) is ServiceUnavailable, anything else InternalError; clients retry both."""
    if unreachable(error):
        return unavailable(error)
    return S3Error("InternalError", f"The object store's storage failed: {error}", 500)


class RadosBlobStore:
    """Blobs in one pool of a Ceph cluster (see the module docstring)."""

    sweeps_while_serving = True  # young stripes are left alone

    def __init__(self, target: CephTarget) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._ioctx: Any = None
        self._failed_at = 0.0
        self._reaper = Reaper(self.unlink)
        self._readahead = ThreadPoolExecutor(READAHEAD_THREADS, thread_name_prefix="rados-ahead")

    # -- the connection -------------------------------------------------------------------

    def ioctx(self) -> Any:
        """The pool's I/O context, connecting first if needed (ServiceUnavailable when
        the cluster cannot be reached)."""
        ioctx = self._ioctx
        if ioctx is not None:
            return ioctx
        with self._lock:
            if self._ioctx is None:
                if time.monotonic() - self._failed_at < RECONNECT_PAUSE:
                    raise unavailable()
                try:
                    self._connect()
                except Exception as error:
                    self._failed_at = time.monotonic()
                    log.warning("walrus: cannot reach Ceph: %s", error)
                    raise unavailable(error) from error
            return self._ioctx

    def _connect(self) -> None:
        target = self.target
        cluster = connect(target.conf, target.user, target.timeout)
        try:
            ensure_pool(cluster, target.pool, "karri", target.timeout)
            ioctx = cluster.open_ioctx(target.pool)
            ioctx.set_namespace(NAMESPACE)
        except BaseException:
            cluster.shutdown()
            raise
        self._cluster, self._ioctx = cluster, ioctx

    def close(self) -> None:
        """Disconnect, once nothing of ours uses the connection any more (librados
        crashes the process when a closed connection is used)."""
        self._readahead.shutdown(wait=True, cancel_futures=True)
        self._reaper.drain()
        with self._lock:
            if self._cluster is not None:
                ioctx, cluster = self._ioctx, self._cluster
                self._cluster = self._ioctx = None
                ioctx.close()
                cluster.shutdown()

    def read_ahead(self, blob_id: str, index: int) -> Future[bytes]:
        """Stripe ``index`` of a blob, read on a thread of the store's (b"" if missing).

        A plain synchronous read on a thread rather than librados's ``aio_read``: an aio
        read writes into its buffer whenever the OSD answers, and a reader that went away
        meanwhile (a client that hung up) must not leave librados a buffer to write into."""
        return self._readahead.submit(_read_stripe, self, blob_id, index)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(ioctx, *args)``; librados's missing object is FileNotFoundError,
        its other failures S3's errors."""
        import rados

        ioctx = self.ioctx()
        try:
            return function(ioctx, *args)
        except rados.ObjectNotFound as error:
            raise FileNotFoundError(str(error)) from None
        except rados.Error as error:
            raise _failed(error) from error

    # -- the BlobStore protocol -----------------------------------------------------------

    def writer(self, digests: Digests, *, direct: bool = True) -> RadosBlobWriter:
        return RadosBlobWriter(self, digests)

    def open(self, blob_id: str, *, verify: bool = True) -> RadosBlob:
        check_blob_id(blob_id)
        if verify:
            self.call(lambda ioctx: ioctx.stat(stripe_name(blob_id, 0)))
        return RadosBlob(self, blob_id)

    def local_path(self, blob_id: str) -> Path | None:
        return None

    def link(self, blob_id: str, size: int) -> str:
        """A copy (RADOS has no links): the stripes are read and written again."""
        writer = self.concatenate([(blob_id, 0, size)], Digests())
        try:
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    def concatenate(
        self, sources: list[tuple[str, int, int]], digests: Digests, *, hash_data: bool = False
    ) -> RadosBlobWriter:
        writer = self.writer(digests)
        try:
            for blob_id, offset, length in sources:
                blob = self.open(blob_id)
                end = offset + length
                while offset < end:
                    data = blob.pread(min(STRIPE, end - offset), offset)
                    if not data:
                        raise FileNotFoundError(f"blob {blob_id} ends before {end} bytes")
                    if hash_data:
                        writer.write(data)
                    else:
                        writer.append(data)
                    offset += len(data)
        except BaseException:
            writer.abort()
            raise
        return writer

    def unlink(self, blob_ids: Iterable[str | None]) -> None:
        """Remove each blob's stripes, stripe 0 first (a blob without it is gone)."""
        for blob_id in blob_ids:
            if blob_id:
                self.call(_remove_stripes, blob_id)

    def unlink_later(self, blob_ids: Iterable[str | None]) -> None:
        self._reaper.later(blob_ids)

    def drain(self) -> None:
        self._reaper.drain()

    def sweep(self, referenced: Callable[[set[str]], set[str]]) -> tuple[int, int]:
        """Remove the stripes of blobs no row names that nobody wrote for ``grace``
        seconds: (0, blobs removed). Any front end may run it, any time."""
        stripes: dict[str, list[str]] = {}
        for item in self.call(lambda ioctx: list(ioctx.list_objects())):
            stripes.setdefault(item.key.partition(".")[0], []).append(item.key)
        ids = list(stripes)
        named: set[str] = set()
        for i in range(0, len(ids), LIST_BATCH):
            named |= referenced(set(ids[i : i + LIST_BATCH]))
        removed = 0
        now = time.time()
        for blob_id in set(ids) - named:
            names = sorted(stripes[blob_id])
            try:
                newest = max(time.mktime(self.call(_stat, name)[1]) for name in names)
            except FileNotFoundError:
                continue  # being removed by someone else
            if now - newest < self.target.grace:
                continue
            self.call(_remove_objects, names)
            removed += 1
        return 0, removed


def _stat(ioctx: Any, name: str) -> tuple[int, time.struct_time]:
    return ioctx.stat(name)


def _remove_objects(ioctx: Any, names: list[str]) -> None:
    import rados

    for name in names:
        with contextlib.suppress(rados.ObjectNotFound):
            ioctx.remove_object(name)


def _remove_stripes(ioctx: Any, blob_id: str) -> None:
    import rados

    index = 0
    while True:
        try:
            ioctx.remove_object(stripe_name(blob_id, index))
        except rados.ObjectNotFound:
            return
        index += 1


class RadosBlobWriter:
    """Bytes streamed into a new blob's stripes (``BlobWriter``): a full stripe is
    written asynchronously while the next fills; ``commit`` waits for all of them."""

    def __init__(self, store: RadosBlobStore, digests: Digests) -> None:
        self.store = store
        self.digests = digests
        self.blob_id = new_blob_id()
        self.size = 0
        self._ioctx = store.ioctx()
        self._buffer = bytearray()
        self._written = 0  # stripes handed to librados
        self._pending: deque[Any] = deque()
        self._done = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``, hashed on the way (large pieces on several cores at once)."""
        if len(data) >= PARALLEL_MIN:
            in_parallel([*self.digests.jobs(data), partial(self.append, data)])
        else:
            self.digests.update(data)
            self.append(data)

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` without hashing it (a copy of bytes already hashed)."""
        view = memoryview(data).cast("B")
        self.size += len(view)
        while view:
            if not self._buffer and len(view) >= STRIPE:
                self._send(bytes(view[:STRIPE]))
                view = view[STRIPE:]
                continue
            room = STRIPE - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == STRIPE:
                self._send(bytes(self._buffer))
                self._buffer.clear()

    def _send(self, stripe: bytes) -> None:
        import rados

        while len(self._pending) >= IN_FLIGHT:
            self._wait_one()
        name = stripe_name(self.blob_id, self._written)
        try:
            self._pending.append(self._ioctx.aio_write_full(name, stripe))
        except rados.Error as error:
            raise _failed(error) from error
        self._written += 1

    def _wait_one(self) -> None:
        completion = self._pending.popleft()
        completion.wait_for_complete()
        code = completion.get_return_value()
        if code < 0:
            message = errno.errorcode.get(-code, str(code))
            raise _failed(OSError(-code, f"writing a stripe failed: {message}"))

    def commit(self) -> str:
        """Write the last stripe (stripe 0 of an empty blob too) and wait until the
        cluster acknowledged every stripe; returns the blob id."""
        if self._buffer or self._written == 0:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        while self._pending:
            self._wait_one()
        self._done = True
        return self.blob_id

    def abort(self) -> None:
        """Remove what was written (what cannot be is left for ``sweep``)."""
        while self._pending:
            with contextlib.suppress(S3Error):
                self._wait_one()
        if self._done:
            return
        self._done = True
        self._buffer.clear()
        names = [stripe_name(self.blob_id, index) for index in range(self._written)]
        with contextlib.suppress(S3Error):
            self.store.call(_remove_objects, names)


class RadosBlob:
    """An open blob (``OpenBlob``): reads go to its stripes; no descriptor.

    A large read (``READAHEAD_MIN`` bytes or more: a GET streaming the blob) takes whole
    stripes and asks for the next one before it returns, so that the cluster reads it
    while the caller sends this one; small reads (ranges) take just their bytes. One
    reader uses it at a time."""

    __slots__ = ("_ahead", "_store", "_stripe", "blob_id")

    def __init__(self, store: RadosBlobStore, blob_id: str) -> None:
        self._store = store
        self.blob_id = blob_id
        self._stripe: tuple[int, bytes] | None = None  # the last whole stripe read
        self._ahead: tuple[int, Future[bytes]] | None = None  # a stripe on its way

    def fileno(self) -> None:
        return None

    def pread(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset``: fewer at the blob's end, or if it was
        removed meanwhile."""
        pieces: list[bytes] = []
        while size > 0:
            index, within = divmod(offset, STRIPE)
            count = min(size, STRIPE - within)
            if size >= READAHEAD_MIN:
                stripe = self._whole(index)
                data = stripe[within : within + count]
            else:
                try:
                    data = self._store.call(_read, stripe_name(self.blob_id, index), count, within)
                except FileNotFoundError:
                    break
            if data:
                pieces.append(data)
            if len(data) < count:
                break
            offset += count
            size -= count
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _whole(self, index: int) -> bytes:
        """Stripe ``index`` (b"" if there is none), and the next one asked for."""
        if self._stripe is not None and self._stripe[0] == index:
            return self._stripe[1]
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == index:
            data = ahead[1].result()
        else:
            data = _read_stripe(self._store, self.blob_id, index)
        self._stripe = (index, data)
        if len(data) == STRIPE:  # not the last stripe: fetch the next meanwhile
            with contextlib.suppress(RuntimeError):  # the store is closing
                self._ahead = (index + 1, self._store.read_ahead(self.blob_id, index + 1))
        return data

    def close(self) -> None:
        self._stripe = self._ahead = None


def _read(ioctx: Any, name: str, length: int, offset: int) -> bytes:
    return ioctx.read(name, length, offset)


def _read_stripe(store: RadosBlobStore, blob_id: str, index: int) -> bytes:
    """A whole stripe; b"" if the blob has no such stripe (past its end, or removed)."""
    try:
        return store.call(_read, stripe_name(blob_id, index), STRIPE, 0)
    except FileNotFoundError:
        return b""
