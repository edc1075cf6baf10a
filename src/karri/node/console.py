"""An instance's serial console log, kept bounded while QEMU keeps writing to it.

QEMU appends (``-chardev file,append=on``, so O_APPEND) to ``console.log`` and never
reopens it, so the file cannot be rotated by renaming. Trimming cuts the oldest bytes in
place with ``fallocate(FALLOC_FL_COLLAPSE_RANGE)``, which the kernel serialises with
QEMU's appends (ext4, xfs); on file systems without it the log is copied to
``console.log.0`` and truncated, which may lose the bytes written in the instant between
the last read and the truncation.
While the node controller is down nobody trims, so the log grows by what the guest prints.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

FALLOC_FL_COLLAPSE_RANGE = 0x08
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


class ConsoleLog:
    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.rotated = path.with_name(path.name + ".0")
        self.limit = limit

    def tail(self, max_bytes: int) -> bytes:
        """The last ``max_bytes`` the guest printed (across a copy-rotation)."""
        data = _read_tail(self.path, max_bytes)
        if len(data) < max_bytes:
            data = _read_tail(self.rotated, max_bytes - len(data)) + data
        return data

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def trim(self) -> bool:
        """Cut the log back to about half the limit once it passes the limit."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            st = os.fstat(fd)
            if st.st_size <= self.limit:
                return False
            block = st.st_blksize or 4096
            cut = (st.st_size - self.limit // 2) // block * block
            if cut <= 0:
                return False
            if _libc.fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, cut) == 0:
                return True
            err = ctypes.get_errno()
            if err not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise OSError(err, os.strerror(err), str(self.path))
            return self._copy_rotate(fd, st.st_size)
        finally:
            os.close(fd)

    def _copy_rotate(self, fd: int, size: int) -> bool:
        """Keep the newest half of the limit in ``console.log.0`` and empty the log. What
        the guest appended while the copy was written is added to it just before the
        truncation, so only bytes written between that last read and ``ftruncate`` (two
        system calls) are lost."""
        keep = min(size, self.limit // 2)
        tmp = self.rotated.with_name(self.rotated.name + ".tmp")
        tmp.write_bytes(os.pread(fd, keep, size - keep))
        tmp.replace(self.rotated)
        with open(self.rotated, "ab") as rotated:
            while (now := os.fstat(fd).st_size) > size:
                rotated.write(os.pread(fd, now - size, size))
                size = now
            os.ftruncate(fd, 0)
        return True

    def remove(self) -> None:
        for path in (self.path, self.rotated):
            path.unlink(missing_ok=True)


def _read_tail(path: Path, max_bytes: int) -> bytes:
    if max_bytes <= 0:
        return b""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            return f.read(max_bytes)
    except FileNotFoundError:
        return b""
