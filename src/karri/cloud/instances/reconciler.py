"""Drive the node to the state the database asks for, and record what the node reports.

API calls only write intent (``Instance.desired``) and wake the reconciler; it launches,
stops and destroys guests, and moves instances to their next state. After a restart (even
a SIGKILL) it re-adopts the guests still running and resumes unfinished work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from karri.cloud.instances import states
from karri.cloud.instances.models import Instance
from karri.cloud.instances.service import Capacity, Instances
from karri.db.engine import Database

log = logging.getLogger("karri.reconciler")

STOP_TIMEOUT = 30.0
PASS_INTERVAL = 5.0
TRANSITIONAL = (states.PENDING, states.SHUTTING_DOWN, states.STOPPING)


@dataclass(frozen=True)
class BootDisks:
    """Where an instance boots from on the node."""

    root: Path  # instance-store: the cached base image; ebs: the root volume
    root_persistent: bool  # True for an EBS root (no overlay, nothing discarded)
    kernel: Path | None = None
    ramdisk: Path | None = None
    extra_volumes: tuple[tuple[str, Path], ...] = ()  # (volume id, file) attached at boot


class DiskResolver(Protocol):
    """The images (and volumes) service: makes an instance's disks ready on the node."""

    async def prepare(self, instance: Instance) -> BootDisks: ...


@dataclass(frozen=True)
class ExitReport:
    instance_id: str
    guest_initiated: bool  # the guest powered itself off
    reason: str


class Reconciler:
    def __init__(self, db: Database, instances: Instances, node: Any) -> None:
        self.db = db
        self.instances = instances
        self.node = node
        self.disks: DiskResolver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event = asyncio.Event()
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._main: asyncio.Task | None = None

    # -- the InstanceDriver side, called from API worker threads ----------------------

    def wake(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    def reboot(self, instance_id: str) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self.node.reboot(instance_id), self._loop).result(60)

    def console_output(self, instance_id: str) -> bytes:
        return self.node.console_output(instance_id)

    def capacity(self) -> Capacity:
        total = self.node.capacity()
        return Capacity(total.vcpus, total.memory_mib)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.instances.driver = self
        self.node.on_exit = self._on_exit
        await self._adopt()
        self._main = asyncio.create_task(self._run(), name="reconciler")

    async def close(self) -> None:
        if self._main:
            self._main.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(
            *self._tasks, *([self._main] if self._main else []), return_exceptions=True
        )

    async def _adopt(self) -> None:
        """Re-attach to guests that kept running while karri was down."""
        rows = await self._db(
            lambda s: list(
                s.scalars(
                    select(Instance).where(
                        Instance.state.in_(
                            (states.RUNNING, states.STOPPING, states.SHUTTING_DOWN, states.PENDING)
                        )
                    )
                )
            )
        )
        alive = set(await self.node.adopt([i.id for i in rows]))
        for instance in rows:
            if instance.state in (states.RUNNING, states.STOPPING) and instance.id not in alive:
                await self._exited(
                    ExitReport(
                        instance.id, False, "The instance's QEMU process ended while karri was down"
                    )
                )
        log.info("adopted %d running instance(s)", len(alive))

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), PASS_INTERVAL)
            self._event.clear()
            try:
                await self._pass()
            except Exception:
                log.exception("reconciler pass failed")

    async def _pass(self) -> None:
        rows = await self._db(
            lambda s: list(s.scalars(select(Instance).where(Instance.state.in_(TRANSITIONAL))))
        )
        for instance in rows:
            if instance.id in self._busy:
                continue
            work = self._work_for(instance)
            if work is not None:
                self._spawn(instance.id, work)
        await asyncio.to_thread(self.instances.forget_expired)

    def _work_for(self, instance: Instance) -> Callable[[], Awaitable[None]] | None:
        if instance.state == states.PENDING and instance.desired == states.RUNNING:
            return lambda: self._launch(instance)
        if instance.state == states.SHUTTING_DOWN:
            return lambda: self._destroy(instance.id)
        if instance.state == states.STOPPING:
            return lambda: self._stop(instance.id)
        return None

    def _spawn(self, instance_id: str, work: Callable[[], Awaitable[None]]) -> None:
        self._busy.add(instance_id)

        async def run() -> None:
            try:
                await work()
            except Exception:
                log.exception("work on %s failed", instance_id)
            finally:
                self._busy.discard(instance_id)

        task = asyncio.create_task(run(), name=f"reconcile-{instance_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the transitions ---------------------------------------------------------------

    async def _launch(self, instance: Instance) -> None:
        try:
            if self.disks is None:
                raise RuntimeError("no disk resolver is configured")
            disks = await self.disks.prepare(instance)
            public_ip = await self.node.launch(instance, disks)
        except Exception as error:
            log.exception("launch of %s failed", instance.id)
            await self._finish(
                instance.id,
                states.TERMINATED if instance.root_device_type != "ebs" else states.STOPPED,
                (states.SERVER_ERROR, f"{states.SERVER_ERROR}: launch failed: {error}"),
            )
            return

        def mark(session) -> bool:
            row = session.get(Instance, instance.id)
            if row is None or row.state != states.PENDING:
                return False
            row.state = states.RUNNING
            row.public_ip = public_ip
            row.boot_count += 1
            return True

        if not await self._db(mark):
            self.wake()  # terminated or stopped meanwhile: the next pass undoes the launch

    async def _destroy(self, instance_id: str) -> None:
        await self.node.destroy(instance_id)
        await self._finish(instance_id, states.TERMINATED, None)

    async def _stop(self, instance_id: str) -> None:
        await self.node.shutdown(instance_id, STOP_TIMEOUT)
        await self._finish(instance_id, states.STOPPED, None)

    async def _finish(self, instance_id: str, state: str, reason: tuple[str, str] | None) -> None:
        def update(session) -> None:
            row = session.get(Instance, instance_id)
            if row is None:
                return
            row.state = row.desired = state
            if reason:
                row.state_reason_code, row.state_reason_message = reason
            if state in (states.TERMINATED, states.STOPPED):
                row.public_ip = None
            if state == states.TERMINATED:
                row.terminated_at = datetime.now(UTC)
                row.private_ip = row.mac = None

        await self._db(update)

    # -- guests that end on their own ----------------------------------------------------

    def _on_exit(self, report: ExitReport) -> None:
        """The node saw a QEMU process end; called on the event loop."""
        if report.instance_id in self._busy:
            return  # we are stopping or destroying it ourselves
        self._spawn(report.instance_id, lambda: self._exited(report))

    async def _exited(self, report: ExitReport) -> None:
        row = await self._db(lambda s: s.get(Instance, report.instance_id))
        if row is None or row.state not in (states.RUNNING, states.STOPPING):
            return
        ebs = row.root_device_type == "ebs"
        if report.guest_initiated:
            reason = states.GUEST_INITIATED
            stop = ebs and row.shutdown_behavior == "stop"
        else:
            reason = (states.SERVER_ERROR, f"{states.SERVER_ERROR}: {report.reason}")
            stop = ebs
        await self.node.destroy(report.instance_id, keep_disks=stop)
        await self._finish(
            report.instance_id, states.STOPPED if stop else states.TERMINATED, reason
        )

    async def _db(self, work: Callable[[Any], Any]) -> Any:
        def run() -> Any:
            with self.db.session() as session:
                return work(session)

        return await asyncio.to_thread(run)
