"""The background-work engine: API calls record intent in the database, and a loop converges
the resources to it.

A user of the engine says two things: *what to scan* (the rows whose intent is not met yet,
as one ``Job`` each) and *what each job does*. The engine does the rest, alike for the EBS
worker and the images (threads) and the instance reconciler (asyncio, as it drives the
node's async API):

- it scans when woken (``wake``: an API call left work, a job ended) and every ``every``
  seconds otherwise;
- it runs one job at a time per resource (``Job.key``); a scan finding a busy resource
  leaves it alone, the next scan looks again;
- a job that raised is not run again at once: its step of that resource (``Job.step``)
  waits longer after each failure (``karri.backoff``), and each failure is logged once,
  with that wait; a success, or another step, starts afresh;
- a job may say ``NotYet`` (it waits for something else: tried at the next scan, no
  failure) or stop with ``Cancelled`` (karri stops, or its resource is being deleted: it
  resumes later, no failure);
- ``stop``/``close`` cancels the running jobs (their cancel flag, and asyncio's
  cancellation) and drops the queued ones: the database still holds their intent, so the
  next start resumes them.

Work that does not come from a scan (what the node reports) is submitted with
``queue=True``: it is never dropped, but waits for the resource's running job to end.

``Ledger`` decides all this; ``Converger`` (threads) and ``AsyncConverger`` (tasks) only
run what it lets through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from karri.backoff import Backoff

SCAN_SECONDS = 5.0

W = TypeVar("W")


class Cancelled(Exception):
    """A job stopped because karri is stopping or its resource is being deleted."""


class NotYet(Exception):
    """A job must wait for something else (an instance that is stopping); tried again at
    the next scan."""


@dataclass(frozen=True)
class Job(Generic[W]):
    """One piece of work on one resource. ``step`` names what it does to the resource
    (its failures back off per resource and step); work without a step is not backed off
    (it was asked for once, not found by a scan)."""

    key: str
    work: W
    step: str | None = None


# What a job is, to each runner: threads pass the job's cancel flag; tasks are cancelled.
ThreadWork = Callable[[threading.Event], None]
TaskWork = Callable[[], Awaitable[None]]


class Ledger(Generic[W]):
    """The policy both runners share: which job may start, and what its end means."""

    def __init__(
        self,
        log: logging.Logger,
        backoff: Backoff,
        interrupted: tuple[type[Exception], ...] = (),
    ) -> None:
        """``interrupted``: exceptions that, like ``Cancelled``, mean "resumes later"."""
        self.log = log
        self._backoff = backoff
        self._interrupted = (Cancelled, *interrupted)
        self._lock = threading.Lock()
        self._running: dict[str, threading.Event] = {}  # key -> its job's cancel flag
        self._waiting: dict[str, deque[Job[W]]] = {}  # key -> jobs queued behind it
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def busy(self, key: str) -> bool:
        """Whether a job for ``key`` is queued or running."""
        with self._lock:
            return key in self._running

    def claim(self, job: Job[W], *, queue: bool = False) -> threading.Event | None:
        """The job's cancel flag if it may start now; None if its key is busy (with
        ``queue``, the job then runs after the current one) or its step backs off."""
        with self._lock:
            if self.stopping:
                return None
            if job.key in self._running:
                if queue:
                    self._waiting.setdefault(job.key, deque()).append(job)
                return None
            if not queue and job.step is not None and self._backoff.waiting(_retry_key(job)):
                return None
            cancel = self._running[job.key] = threading.Event()
            return cancel

    def finish(
        self, job: Job[W], error: BaseException | None
    ) -> tuple[Job[W], threading.Event] | None:
        """Record how the job ended and free its key; returns the job queued next for that
        key, claimed already, if any."""
        failed = error is not None and not isinstance(error, NotYet)
        if isinstance(error, self._interrupted):
            failed = False
            self.log.info("%s: interrupted; it resumes later", job.key)
        with self._lock:
            delay = None
            if job.step is not None:
                delay = self._backoff.record(_retry_key(job), failed=failed)
            del self._running[job.key]
            follower = self._next(job.key)
        if failed:
            retry = f"; tried again in {delay:.0f}s" if delay is not None else ""
            what = f"{job.step} " if job.step else ""
            self.log.error("%s: %sfailed%s", job.key, what, retry, exc_info=error)
        return follower

    def _next(self, key: str) -> tuple[Job[W], threading.Event] | None:
        waiting = self._waiting.get(key)
        if not waiting or self.stopping:
            return None
        follower = waiting.popleft()
        if not waiting:
            del self._waiting[key]
        cancel = self._running[key] = threading.Event()
        return follower, cancel

    def cancel(self, key: str) -> None:
        """Ask the running job of ``key`` to stop (its resource is being deleted)."""
        with self._lock:
            cancel = self._running.get(key)
        if cancel is not None:
            cancel.set()

    def stop(self) -> None:
        """No job starts any more; running ones are asked to stop, queued ones dropped."""
        self._stopping.set()
        with self._lock:
            for cancel in self._running.values():
                cancel.set()
            self._waiting.clear()

    def scanned(
        self, scan: Callable[[], Iterable[Job[W]]], submit: Callable[[Job[W]], None]
    ) -> None:
        """Submit what ``scan`` finds; a failing scan is logged, and the next one tries."""
        try:
            for job in scan():
                submit(job)
        except Exception:
            self.log.exception("scanning for work failed")


def _retry_key(job: Job) -> str:
    return f"{job.key}:{job.step}"


def _raised(found: Iterable[Job[W]] | BaseException) -> Iterable[Job[W]]:
    """What an awaited scan found, or its exception raised again (to be logged)."""
    if isinstance(found, BaseException):
        raise found
    return found


class _Runner(Generic[W]):
    """What both runners have: the ledger, a name for their threads or tasks, a pace."""

    def __init__(
        self,
        log: logging.Logger,
        name: str,
        every: float,
        interrupted: tuple[type[Exception], ...],
        backoff: Backoff | None,
    ) -> None:
        self.ledger: Ledger[W] = Ledger(log, backoff or Backoff(every), interrupted)
        self.name = name
        self.every = every

    def busy(self, key: str) -> bool:
        return self.ledger.busy(key)

    def cancel(self, key: str) -> None:
        """Ask the running job of ``key`` to stop (its resource is being deleted)."""
        self.ledger.cancel(key)


class Converger(_Runner[ThreadWork]):
    """The engine on threads: a scanning thread (when ``scan`` is given) and a few daemon
    worker threads, started with the first job.

    ``scan`` may be a generator: chores it does between its jobs happen in that order."""

    def __init__(
        self,
        log: logging.Logger,
        name: str,
        *,
        scan: Callable[[], Iterable[Job[ThreadWork]]] | None = None,
        every: float = SCAN_SECONDS,
        threads: int = 4,
        wakeup: threading.Event | None = None,
        interrupted: tuple[type[Exception], ...] = (),
        backoff: Backoff | None = None,
    ) -> None:
        """``wakeup`` may be made first, so that what wakes the engine exists before it."""
        super().__init__(log, name, every, interrupted, backoff)
        self._scan = scan
        self._threads = threads
        self._wakeup = wakeup or threading.Event()
        self._queue: queue.Queue[tuple[Job[ThreadWork], threading.Event] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._scanner: threading.Thread | None = None

    def start(self) -> None:
        """Begin scanning."""
        if self._scan is not None:
            self._scanner = threading.Thread(
                target=self._scan_loop, name=f"{self.name}-scan", daemon=True
            )
            self._scanner.start()

    def stop(self) -> None:
        """Stop scanning, cancel the running jobs and wait for them to return."""
        self.ledger.stop()
        self._wakeup.set()
        if self._scanner is not None:
            self._scanner.join(timeout=10)
        with self._lock:
            workers = list(self._workers)
        for _ in workers:
            self._queue.put(None)
        for worker in workers:
            worker.join()

    def wake(self) -> None:
        self._wakeup.set()

    def submit(self, job: Job[ThreadWork], *, queue: bool = False) -> None:
        cancel = self.ledger.claim(job, queue=queue)
        if cancel is not None:
            self._put(job, cancel)

    def _put(self, job: Job[ThreadWork], cancel: threading.Event) -> None:
        with self._lock:
            while len(self._workers) < self._threads:
                worker = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._workers)}", daemon=True
                )
                worker.start()
                self._workers.append(worker)
        self._queue.put((job, cancel))

    def _scan_loop(self) -> None:
        assert self._scan is not None
        while not self.ledger.stopping:
            self._wakeup.clear()
            self.ledger.scanned(self._scan, self.submit)
            self._wakeup.wait(self.every)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            job, cancel = item
            error: Exception | None = None
            if not self.ledger.stopping:  # a job still queued at a stop is dropped
                try:
                    job.work(cancel)
                except Exception as failure:
                    error = failure
            follower = self.ledger.finish(job, error)
            if follower is not None:
                self._put(*follower)
            self.wake()  # what waited for this job may go on now


class AsyncConverger(_Runner[TaskWork]):
    """The engine on the event loop: a scanning task and one task per running job."""

    def __init__(
        self,
        log: logging.Logger,
        name: str,
        *,
        scan: Callable[[], Awaitable[Iterable[Job[TaskWork]]]],
        every: float = SCAN_SECONDS,
        interrupted: tuple[type[Exception], ...] = (),
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(log, name, every, interrupted, backoff)
        self._scan = scan
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scanner: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> None:
        """Begin scanning (on the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._scanner = asyncio.create_task(self._scan_loop(), name=f"{self.name}-scan")

    async def close(self) -> None:
        """Stop scanning and cancel the running jobs."""
        self.ledger.stop()
        tasks = [*self._tasks, *([self._scanner] if self._scanner else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self) -> None:
        """Scan now; callable from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    def submit(self, job: Job[TaskWork], *, queue: bool = False) -> None:
        """Start the job (on the running loop) if the ledger lets it."""
        if self.ledger.claim(job, queue=queue) is not None:
            self._spawn(job)

    def _spawn(self, job: Job[TaskWork]) -> None:
        task = asyncio.create_task(self._run(job), name=f"{self.name}-{job.key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _scan_loop(self) -> None:
        # ``stopping`` too, as wait_for may swallow a cancellation (Python < 3.12)
        while not self.ledger.stopping:
            self._event.clear()
            found = await asyncio.gather(self._scan(), return_exceptions=True)
            self.ledger.scanned(partial(_raised, found[0]), self.submit)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), self.every)

    async def _run(self, job: Job[TaskWork]) -> None:
        error: Exception | None = None
        try:
            await job.work()
        except Exception as failure:
            error = failure
        finally:  # also when cancelled by ``close``
            follower = self.ledger.finish(job, error)
            if follower is not None:
                self._spawn(follower[0])
            self.wake()
