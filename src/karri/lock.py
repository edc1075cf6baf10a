"""One live `karri up` per data dir: an exclusive ``flock`` on ``DATA_DIR/karri.lock``.

The kernel drops the lock when its holder dies, however it dies (SIGKILL included), so a
stale file never blocks a restart. The file names the holder (pid and process start
ticks) for the refusal message and for `karri down`. The descriptor is close-on-exec, so
no helper `karri up` starts (S3 workers, dnsmasq, QEMU guests that outlive it) ever holds
the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

from karri.node.commands import pid_alive, process_start_ticks

LOCK_FILE = "karri.lock"
SETTLE = 2.0  # seconds a new holder may take to write its pid after locking
SHARE_WAIT = 120.0  # seconds a shared front end waits for one starting alone to share


class DataDirInUse(Exception):
    def __init__(self, data_dir: Path, holder: Holder | None) -> None:
        who = (
            f"karri (pid {holder.pid})"
            if holder and holder.alive()
            else "another karri (or front ends sharing it: karri up --no-local-node on "
            "PostgreSQL, each stopped by its pid)"
        )
        super().__init__(
            f"karri: the data dir {data_dir} is in use by {who}; "
            f"`karri down --data-dir {data_dir}` stops it"
        )
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    """The process that holds a data dir's lock."""

    pid: int
    start_ticks: int | None

    def alive(self) -> bool:
        return pid_alive(self.pid, self.start_ticks)


class DataDirLock:
    """Held from ``acquire()`` until ``release()`` or the end of the process."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None
        self.alone = False  # no other front end held it when it was taken
        self.shared = False  # taken to be shared (``share`` lets others in)

    def acquire(self, shared: bool = False) -> None:
        """Take the lock, or raise DataDirInUse naming the live holder.

        A holder that has just locked may not have written its pid yet: wait for it a
        moment, so the message can name it.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + SETTLE
        self.shared = shared
        if shared:
            self._acquire_shared(fd)
            return
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = read_holder(self.data_dir)
                if (holder and holder.alive()) or time.monotonic() > deadline:
                    os.close(fd)
                    raise DataDirInUse(self.data_dir, holder) from None
                time.sleep(0.1)
        self._hold(fd)

    def _hold(self, fd: int) -> None:
        pid = os.getpid()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{pid} {process_start_ticks(pid)}\n".encode(), 0)
        self._fd = fd
        self.alone = True

    def _acquire_shared(self, fd: int) -> None:
        """Alone (exclusively) if it can, else beside other shared holders; one that
        starts alone is waited for until it shares (``SHARE_WAIT``)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._hold(fd)
            return
        except BlockingIOError:
            pass
        deadline = time.monotonic() + SHARE_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                self._fd = fd
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise DataDirInUse(self.data_dir, read_holder(self.data_dir)) from None
                time.sleep(0.2)

    def share(self) -> None:
        """Let other shared holders in (after the sweeps only one front end may run); a
        lock not taken ``shared`` stays exclusive."""
        if self._fd is not None and self.shared:
            fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock; the file may stay
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def read_holder(data_dir: Path) -> Holder | None:
    """Who last took the lock (it may have ended since: see ``Holder.alive``)."""
    try:
        fields = (data_dir / LOCK_FILE).read_text().split()
        return Holder(int(fields[0]), int(fields[1]) if fields[1] != "None" else None)
    except (OSError, ValueError, IndexError):
        return None


def live_holder(data_dir: Path) -> Holder | None:
    """The live process holding the data dir's lock, if any."""
    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = read_holder(data_dir)
        return holder if holder and holder.alive() else None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return None
