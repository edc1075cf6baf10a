"""What tests leave on the host: ended at teardown, and checked once the whole run is over.

A data dir is any directory a few levels below a test's temporary directory that holds a
karri lock or a node's state. Ending one is `karri down --guests`: its karri up, guests,
dnsmasq and namespace go, also after a test killed karri up with SIGKILL. Only this run's
temporary directories are looked at: runs of other worktrees on the machine are left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from karri.down import down
from karri.lock import LOCK_FILE
from karri.node.commands import Process, pid_alive, process_start_ticks, terminate
from karri.node.netns import data_dir_namespaces

DEPTH = 4  # basetemp/popen-gwN/test-dir/data


def data_dirs(root: Path, depth: int = DEPTH) -> Iterator[Path]:
    """The data dirs at most ``depth`` levels below ``root`` (``root`` included)."""
    if (root / LOCK_FILE).exists() or (root / "node").is_dir():
        yield root
        return
    if depth == 0:
        return
    try:
        children = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return
    for child in children:
        yield from data_dirs(child, depth - 1)


def end_all(root: Path) -> None:
    """End everything of every data dir below ``root``: karri up, guests, dnsmasq, namespace."""
    for data_dir in data_dirs(root):
        down(data_dir, guests=True, timeout=60)


def namespaces_left(root: Path) -> list[str]:
    """The namespaces (of any VPC) of data dirs below ``root`` that still exist."""
    return sorted({name for d in data_dirs(root) for name in data_dir_namespaces(d)})


def processes_left(root: Path) -> list[tuple[Process, str]]:
    """Live processes (not this one, nor its ancestors) whose command line or working
    directory lies under ``root``, each with its command line."""
    prefix = f"{root.resolve()}/"
    ours = _ancestors(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in ours:
            continue
        pid = int(entry)
        ticks = process_start_ticks(pid)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(f"/proc/{pid}/cwd") + "/"
        except (OSError, UnicodeDecodeError):
            continue
        if (prefix in cmdline or cwd.startswith(prefix)) and pid_alive(pid, ticks):
            found.append(((pid, ticks), cmdline.strip()))
    return found


def end_processes(found: list[tuple[Process, str]]) -> None:
    terminate([process for process, _ in found], timeout=10)


def _ancestors(pid: int) -> set[int]:
    chain = set()
    while pid > 1:
        chain.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            break
        pid = int(stat[stat.rindex(b")") + 2 :].split()[1])
    return chain
