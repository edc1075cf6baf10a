"""One instance's QEMU process: started or adopted, driven over QMP, watched until it ends.

QEMU runs in its own session with no tie to the node controller's lifetime (files in the
instance dir, QMP on a unix socket there), so it survives a SIGKILL of ``karri up``; a
restarted node adopts it through the pid and start time kept in ``instance.json``.
The end of the process is seen through a pidfd (works for adopted processes too, which
are not our children); why it ended comes from the QMP SHUTDOWN event (or, after a
restart, from the ``shutdown`` run state that ``-no-shutdown`` leaves), from what the
node itself asked for, and from the exit status when the node is QEMU's parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from karri.node import disks, qemu
from karri.node.commands import open_pidfd, process_start_ticks
from karri.node.console import ConsoleLog
from karri.node.errors import LaunchError, NodeError, UnknownInstance
from karri.node.qemu import InstanceFiles
from karri.node.qmp import EventListener, Qmp, QMPError, unix_connect
from karri.node.spec import ExitReason, InstanceExit, VmState
from karri.node.store import InstanceRecord

log = logging.getLogger("karri.node")

CONNECT_TIMEOUT = 30.0


class Vm:
    def __init__(
        self,
        record: InstanceRecord,
        files: InstanceFiles,
        console_limit: int,
        on_exit: Callable[[Vm], None],
        on_device_deleted: Callable[[Vm, str], Awaitable[None]],
        on_event: Callable[[Vm, str], None] = lambda vm, name: None,
    ) -> None:
        self.record = record
        self.files = files
        self.console = ConsoleLog(files.console, console_limit)
        self.state = VmState.STARTING
        self.exit: InstanceExit | None = record.exit
        self._on_exit = on_exit
        self._on_device_deleted = on_device_deleted
        self._on_event = on_event
        self.run_status = "running"
        """QEMU's run state as QMP last told it (``internal-error`` when the accelerator
        stopped the guest)."""
        self._reboot_pending = False
        self.qmp = Qmp(self.instance_id, lambda: self.alive)
        """The QEMU monitor: one typed method per command."""
        self._events: asyncio.Task | None = None
        self._pidfd: int | None = None
        self._popen: subprocess.Popen | None = None
        self._exited = asyncio.Event()
        self._shutdown: dict[str, Any] | None = None
        self._stop_requested = False
        self._kill_requested = False
        self._quiet = False
        self._log_offset = 0
        self._deleted: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task] = set()
        self._jobs: dict[str, asyncio.Future[tuple[str, dict[str, Any]]]] = {}
        if self.exit is not None:
            self.state = VmState.EXITED
            self._exited.set()

    @property
    def instance_id(self) -> str:
        return self.record.spec.instance_id

    @property
    def alive(self) -> bool:
        return self.state != VmState.EXITED

    # --- start / adopt -----------------------------------------------------------------
    async def spawn(self, cmd: list[str], pass_fds: tuple[int, ...] = ()) -> None:
        """Start QEMU (paused) with ``pass_fds`` (its taps), connect QMP, let the guest
        run."""
        self.files.qmp.unlink(missing_ok=True)
        self._log_offset = _size(self.files.log)
        self._quiet = True
        with open(self.files.log, "ab") as out:
            self._popen = subprocess.Popen(
                cmd,
                cwd=self.files.dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                pass_fds=pass_fds,
            )
        pid = self._popen.pid
        self.record.pid, self.record.start_ticks = pid, process_start_ticks(pid)
        self.record.exit = self.exit = None
        self._pidfd = os.pidfd_open(pid)
        self._watch()
        try:
            await self._connect(CONNECT_TIMEOUT)
            await self._throttle_disks()
            await self.qmp.cont()
        except (OSError, QMPError, NodeError, TimeoutError) as exc:
            self.kill()
            await self._exited.wait()
            raise LaunchError(f"QEMU did not start: {self._log_tail() or exc}") from exc
        finally:
            self._quiet = False
        self.state = VmState.RUNNING

    async def _throttle_disks(self) -> None:
        """The volumes' limits (their EBS types), set before the guest runs; a disk QEMU
        will not throttle boots unthrottled rather than not at all."""
        for name, limits in qemu.disk_limits(self.record.spec):
            try:
                await self.qmp.block_set_io_throttle(disks.io_throttle(name, limits))
            except QMPError as exc:
                log.warning("%s: cannot throttle disk %s: %s", self.instance_id, name, exc)

    async def adopt(self) -> bool:
        """Re-attach to a QEMU left running by an earlier node controller.

        False when the process is gone (``exit`` then says so). A process that runs but
        does not answer on QMP is kept (True) and logged: it is not ours to kill.
        """
        pid, ticks = self.record.pid, self.record.start_ticks
        fd = open_pidfd(pid, ticks) if pid else None
        if fd is None:
            tail = self._log_tail()
            detail = "QEMU ended while the node controller was not running"
            self._set_exit(ExitReason.CRASHED, f"{detail}: {tail}" if tail else detail)
            return False
        self._pidfd = fd
        self._log_offset = _size(self.files.log)
        self._quiet = True
        self._watch()
        try:
            await self._connect(10.0)
            status = await self.qmp.query_status()
            self.run_status = "running" if status == "prelaunch" else status
            if status == "internal-error":
                self._on_event(self, "internal-error")
            if status in ("shutdown", "guest-panicked"):  # it ended while nobody listened
                panic = status == "guest-panicked"
                self._shutdown = {"guest": True, "reason": "guest-panic" if panic else ""}
                self._spawn(self._quit())
            elif status == "prelaunch":  # the old node died between start and `cont`
                await self.qmp.cont()
            log.info("%s: adopted QEMU pid %d (%s)", self.instance_id, pid, status)
        except (NodeError, QMPError, OSError, TimeoutError) as exc:
            if self._pidfd is None:
                await self._exited.wait()
                return False
            log.error(
                "%s: QEMU pid %d runs but does not answer on QMP: %s", self.instance_id, pid, exc
            )
        finally:
            self._quiet = False
        if self.alive:
            self.state = VmState.RUNNING
        return True

    async def abort(self, detail: str) -> None:
        """End a launch that failed: QEMU (if it started) is killed without an on_exit."""
        self._quiet = True
        self.kill()
        if self._popen is not None and self.exit is None:
            await self._exited.wait()
        self.exit = self.record.exit = InstanceExit(
            self.instance_id, ExitReason.CRASHED, detail, time.time()
        )
        self.state = VmState.EXITED
        self._exited.set()

    async def _connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._pidfd is None:
                raise NodeError("QEMU exited")
            try:
                sock = await unix_connect(self.files.qmp)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise TimeoutError("no QMP socket") from None
                await asyncio.sleep(0.05)
        events = await self.qmp.connect(sock)
        self._events = asyncio.create_task(
            self._listen(events), name=f"qmp-events-{self.instance_id}"
        )

    # --- QMP events ----------------------------------------------------------------------

    async def _listen(self, listener: EventListener) -> None:
        async for event in listener:
            name, data = event["event"], event.get("data", {})
            if name == "SHUTDOWN":
                if data.get("guest") and self._reboot_pending and not self._stop_requested:
                    self._reboot_pending = False  # the ACPI half of a reboot is done
                    self._spawn(self._restart())
                    continue
                if self._shutdown is None:
                    self._shutdown = data
                if data.get("guest"):
                    self._spawn(self._quit())  # -no-shutdown left it paused
            elif name == "STOP":
                self._spawn(self._stopped())
            elif name == "RESUME":
                self.run_status = "running"
            elif name in ("GUEST_PANICKED", "RESET"):
                if name == "RESET":
                    self._reboot_pending = False
                log.log(
                    logging.WARNING if name == "GUEST_PANICKED" else logging.DEBUG,
                    "%s: %s %s",
                    self.instance_id,
                    name,
                    data,
                )
                self._on_event(self, name)
            elif name == "DEVICE_DELETED" and "device" in data:
                try:
                    await self._on_device_deleted(self, data["device"])
                except Exception:
                    log.exception("%s: after DEVICE_DELETED %s", self.instance_id, data["device"])
                self._deleted.setdefault(data["device"], asyncio.Event()).set()
            elif name in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"):
                job = self._jobs.pop(data.get("device", ""), None)
                if job and not job.done():
                    job.set_result((name, data))

    def device_deleted(self, device: str) -> asyncio.Event:
        """An event set when the guest has released ``device`` (create before device_del)."""
        event = self._deleted.get(device)
        if event is None or event.is_set():
            event = self._deleted[device] = asyncio.Event()
        return event

    async def start_job(
        self, job_id: str, start: Callable[[], Awaitable[None]]
    ) -> asyncio.Future[tuple[str, dict[str, Any]]]:
        """Start a block job (``start`` sends its command with ``job_id``); the future
        gives its end (event name, data)."""
        job = self._jobs[job_id] = asyncio.get_running_loop().create_future()
        try:
            await start()
        except BaseException:
            self._jobs.pop(job_id, None)
            raise
        return job

    async def _stopped(self) -> None:
        """QEMU paused the guest: find out why (the accelerator's internal error?)."""
        with contextlib.suppress(QMPError, NodeError, OSError, EOFError):
            self.run_status = await self.qmp.query_status()
        if self.run_status == "internal-error":
            log.error("%s: QEMU stopped the guest: %s", self.instance_id, self.fault)
            self._on_event(self, "internal-error")

    @property
    def fault(self) -> str | None:
        """QEMU's own words when the accelerator stopped the guest, else None."""
        if self.run_status != "internal-error":
            return None
        return _log_excerpt(self.files.log, self._log_offset) or "internal error"

    async def _restart(self) -> None:
        """Power the machine on again after the guest's ACPI shutdown (a soft reboot)."""
        with contextlib.suppress(QMPError, NodeError, OSError, EOFError):
            await self.qmp.system_reset()
            await self.qmp.cont()

    async def _quit(self) -> None:
        with contextlib.suppress(QMPError, NodeError, OSError, EOFError):
            await self.qmp.quit()

    # --- lifecycle requests ---------------------------------------------------------------
    async def reset(self) -> None:
        """A hard reset; a guest that QEMU holds stopped (shut down, faulted) runs again."""
        self._reboot_pending = False
        await self.qmp.system_reset()
        if await self.qmp.query_status() != "running":
            await self.qmp.cont()

    async def reboot(self) -> None:
        """The soft half of a reboot: ACPI power button; the guest's shutdown then resets
        the machine instead of ending QEMU. Returns at once; ``rebooting`` says whether
        the guest has not yet gone down."""
        self._reboot_pending = True
        await self.qmp.system_powerdown()

    @property
    def rebooting(self) -> bool:
        return self._reboot_pending

    async def powerdown(self) -> None:
        self._stop_requested = True
        self.state = VmState.STOPPING
        await self.qmp.system_powerdown()

    async def quit(self) -> None:
        self._kill_requested = True
        await self._quit()

    def kill(self) -> None:
        if self._pidfd is not None:
            self._kill_requested = True
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    async def wait_exited(self, timeout: float | None) -> bool:
        try:
            await asyncio.wait_for(self._exited.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def release(self) -> None:
        """Let go of a running QEMU without touching it (the node controller stops)."""
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        await self._disconnect()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the end ---------------------------------------------------------------------------
    def _watch(self) -> None:
        assert self._pidfd is not None
        asyncio.get_running_loop().add_reader(self._pidfd, self._process_ended)

    def _process_ended(self) -> None:
        assert self._pidfd is not None
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._spawn(self._finish())

    async def _finish(self) -> None:
        returncode = self._popen.wait() if self._popen else None
        reason, detail = self._why(returncode)
        await self._disconnect()
        self._set_exit(reason, detail)
        log.info("%s: QEMU ended: %s (%s)", self.instance_id, reason.value, detail)
        if not self._quiet:
            self._on_exit(self)

    def _set_exit(self, reason: ExitReason, detail: str) -> None:
        self.exit = self.record.exit = InstanceExit(self.instance_id, reason, detail, time.time())
        self.state = VmState.EXITED
        self._exited.set()
        for job in self._jobs.values():
            if not job.done():
                job.set_exception(NodeError(f"{self.instance_id}: QEMU ended ({detail})"))
        self._jobs.clear()

    async def _disconnect(self) -> None:
        if self._events:
            self._events.cancel()
            self._events = None
        with contextlib.suppress(Exception):
            await self.qmp.disconnect()

    def _why(self, returncode: int | None) -> tuple[ExitReason, str]:
        shutdown = self._shutdown or {}
        cause = shutdown.get("reason")
        if cause == "guest-panic":
            return ExitReason.GUEST_PANIC, "the guest kernel panicked"
        if shutdown.get("guest"):
            if self._stop_requested:
                return ExitReason.HOST_SHUTDOWN, "the guest powered off on the ACPI power button"
            return ExitReason.GUEST_SHUTDOWN, "the guest powered itself off"
        if self._kill_requested:
            if self._stop_requested:
                return ExitReason.HOST_KILLED, "the guest did not power off in time; QEMU was ended"
            return ExitReason.HOST_KILLED, "QEMU was ended by the node"
        tail = self._log_tail()
        if returncode is not None and returncode < 0:
            detail = f"QEMU was killed by signal {-returncode} ({signal.Signals(-returncode).name})"
        elif returncode:
            detail = f"QEMU exited with status {returncode}"
        elif cause:
            detail = f"QEMU shut down ({cause})"
        else:
            detail = "QEMU ended without a shutdown (killed or crashed)"
        return ExitReason.CRASHED, f"{detail}: {tail}" if tail else detail

    def _log_tail(self) -> str:
        """The last line QEMU wrote to qemu.log since this node started watching it."""
        try:
            with open(self.files.log, "rb") as f:
                f.seek(self._log_offset)
                lines = f.read()[-4096:].decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""


def vm_of(vms: Mapping[str, Vm], instance_id: str) -> Vm:
    """The instance's Vm; UnknownInstance if the node has none."""
    try:
        return vms[instance_id]
    except KeyError:
        raise UnknownInstance(instance_id) from None


def running_vm(vms: Mapping[str, Vm], instance_id: str) -> Vm:
    """The instance's Vm, whose QEMU must run (NodeError otherwise)."""
    vm = vm_of(vms, instance_id)
    if not vm.alive:
        raise NodeError(f"{instance_id} is not running")
    return vm


def _log_excerpt(path, offset: int) -> str:
    """QEMU's first lines about an internal error since ``offset`` (one line, short)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read(65536).decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "internal error" in line.lower():
            return " ".join(lines[i : i + 2])[:300]
    return lines[-1][:300] if lines else ""


def _size(path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
