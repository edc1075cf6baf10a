"""Running the host tools the node drives (ip, nft, qemu-img) without blocking the loop."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable

from karri.node.errors import NodeError

log = logging.getLogger("karri.node")
Process = tuple[int, int | None]  # a pid and its start ticks: see process_start_ticks


class CommandError(NodeError):
    def __init__(self, cmd: tuple[str, ...], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(cmd)}: exit {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


async def run(
    *cmd: str, stdin: bytes | None = None, check: bool = True, timeout: float = 60
) -> str:
    """Run ``cmd``, return its stdout; CommandError (with stderr) when it fails."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if check and proc.returncode != 0:
        raise CommandError(cmd, proc.returncode or 0, err.decode(errors="replace"))
    return out.decode(errors="replace")


PR_SET_PDEATHSIG = 1


def dies_with_us() -> Callable[[], None]:
    """A ``preexec_fn`` that has the child killed when this process (strictly: the thread
    that starts it) dies, however it dies, for helpers nobody must find running later."""
    parent = os.getpid()

    def set_death_signal() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # it died before the line above
            os._exit(1)

    return set_death_signal


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])


def process_state(pid: int | None) -> str | None:
    """The kernel's one-letter state of a process (``T``: stopped), None if gone."""
    stat = _stat(pid) if pid else None
    return stat[0] if stat else None


def process_start_ticks(pid: int) -> int | None:
    """The process's start time; with the pid, an identity no recycled pid can take."""
    stat = _stat(pid)
    return stat[1] if stat else None


def pid_alive(pid: int, start_ticks: int | None) -> bool:
    """True when ``pid`` runs (a zombie does not) and is the process that started then."""
    stat = _stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return start_ticks is None or stat[1] == start_ticks


def open_pidfd(pid: int, start_ticks: int | None) -> int | None:
    """A pidfd for ``pid`` if it is still the process that started at ``start_ticks``.

    The pidfd is taken first and the identity checked after, so a recycled pid can never
    be mistaken for ours.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if not pid_alive(pid, start_ticks):
        os.close(fd)
        return None
    return fd


def kill_pid(pid: int, start_ticks: int | None, sig: int = signal.SIGTERM) -> bool:
    """Signal our own process ``pid`` if it is still the one we started."""
    fd = open_pidfd(pid, start_ticks)
    if fd is None:
        return False
    try:
        signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)
    return True


def terminate(processes: list[Process], timeout: float, kill_after: float = 5.0) -> bool:
    """SIGTERM, then SIGKILL what still runs after ``timeout``; wait for the end.

    True when everything ended on SIGTERM. Only processes that still match their start
    ticks are signalled.
    """
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, kill_after)):
        for pid, ticks in processes:
            kill_pid(pid, ticks, sig)
        deadline = time.monotonic() + wait
        while processes := [p for p in processes if pid_alive(*p)]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        else:
            return sig == signal.SIGTERM
    return False
