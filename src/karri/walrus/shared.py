"""What the processes serving one Walrus store share besides the database: one writer at
a time, and a counter of bucket changes.

Each process caches bucket records (owner, ACL, versioning) to skip a query per request.
A process that changes a bucket bumps the counter; the others compare it with the value
their cache was filled under, and drop the cache when it moved. Reading it is a load
from a shared memory page, cheap enough for every request.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import threading
from pathlib import Path

SIZE = 8


class WriteLock:
    """One holder at a time, across every process that opens ``path`` and its threads:
    Walrus's writers, and the counter's bumps.

    SQLite would serialize the writers too, but one that finds the database locked polls,
    sleeping up to 100 ms between tries; a waiter on an ``flock`` wakes the moment it is
    released. (A thread lock goes with it: ``flock`` does not exclude this process's
    own threads, which share the descriptor.)"""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._threads = threading.Lock()

    def __enter__(self) -> WriteLock:
        self._threads.acquire()
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        self._threads.release()


class SharedCounter:
    """An unsigned 64-bit counter in a small file mapped by every process."""

    def __init__(self, path: Path) -> None:
        self._lock = WriteLock(path)  # bumps one at a time, in every process
        fd = self._lock.fd
        if os.fstat(fd).st_size < SIZE:
            os.ftruncate(fd, SIZE)  # only ever grows it: a racing creator is harmless
        self._map = mmap.mmap(fd, SIZE)

    def value(self) -> int:
        return int.from_bytes(self._map[:SIZE], "little")

    def bump(self) -> None:
        with self._lock:
            self._map[:SIZE] = ((self.value() + 1) % 2**64).to_bytes(SIZE, "little")
