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


class SharedCounter:
    """An unsigned 64-bit counter in a small file mapped by every process."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < SIZE:
            os.ftruncate(self._fd, SIZE)  # only ever grows it: a racing creator is harmless
        self._map = mmap.mmap(self._fd, SIZE)
        self._lock = threading.Lock()  # flock does not exclude this process's own threads

    def value(self) -> int:
        return int.from_bytes(self._map[:SIZE], "little")

    def bump(self) -> None:
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self._map[:SIZE] = ((self.value() + 1) % 2**64).to_bytes(SIZE, "little")
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


class WriteLock:
    """Walrus's writers one at a time, across every process sharing the store.

    SQLite would serialize them too, but a writer that finds the database locked polls,
    sleeping up to 100 ms between tries; a waiter on an ``flock`` wakes the moment it is
    released. (A thread lock goes with it: ``flock`` does not exclude this process's
    own threads, which share the descriptor.)"""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._threads = threading.Lock()

    def __enter__(self) -> WriteLock:
        self._threads.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()
