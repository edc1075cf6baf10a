"""Helper daemons found again through their pid files (they outlive the process that
started them): a pid counts only while that process runs and is the one we started."""

from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def running_pid(pid_file: Path, mark: str) -> int | None:
    """The pid in ``pid_file`` if that process runs and its command line contains ``mark``
    (a path only our daemon's arguments name), else None: a daemon that died leaves its pid
    to be reused by anything, which must never be signalled."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not alive(pid):
        return None
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if mark.encode() in command_line else None
