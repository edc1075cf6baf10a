"""The background-work engine: its policy (``Ledger``) with a fake clock, and both runners
(threads, asyncio) with jobs that wait on events. No database, no QEMU; well under a second
each."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable

import pytest

from karri.backoff import Backoff
from karri.cloud.converge import (
    AsyncConverger,
    Cancelled,
    Converger,
    Job,
    Ledger,
    NotYet,
    TaskWork,
    ThreadWork,
)

log = logging.getLogger("karri.test-converge")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ledger(clock: Clock) -> Ledger[str]:
    return Ledger(log, Backoff(5.0, clock=clock))


def ended(book: Ledger[str], job: Job[str], error: BaseException | None = None) -> None:
    assert book.finish(job, error) is None


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.005)


# -- the policy ---------------------------------------------------------------------------


def test_one_job_per_key_at_a_time() -> None:
    book = ledger(Clock())
    first = Job("vol-1", "create", step="create")
    assert book.claim(first) is not None
    assert book.busy("vol-1")
    assert book.claim(Job("vol-1", "create again", step="create")) is None
    assert book.claim(Job("vol-1", "delete", step="delete")) is None
    assert book.claim(Job("vol-2", "create", step="create")) is not None
    ended(book, first)
    assert not book.busy("vol-1")
    assert book.claim(Job("vol-1", "delete", step="delete")) is not None


def test_a_failing_step_backs_off_and_a_success_starts_afresh(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    book = ledger(clock)
    job = Job("vol-1", "create", step="create")
    for wait in (5.0, 10.0):
        assert book.claim(job) is not None
        with caplog.at_level(logging.ERROR, log.name):
            ended(book, job, RuntimeError("disk full"))
        assert caplog.messages[-1] == f"vol-1: create failed; tried again in {wait:.0f}s"
        assert caplog.records[-1].exc_info is not None  # with its traceback, once
        assert book.claim(job) is None
        assert book.claim(Job("vol-1", "delete", step="delete")) is not None  # another step
        ended(book, Job("vol-1", "delete", step="delete"))
        clock.now += wait + 0.1
    assert book.claim(job) is not None
    ended(book, job)  # a success forgets the failures
    assert book.claim(job) is not None
    ended(book, job, RuntimeError("disk full"))
    clock.now += 5.1
    assert book.claim(job) is not None


def test_not_yet_and_cancelled_are_no_failures(caplog: pytest.LogCaptureFixture) -> None:
    book = Ledger(log, Backoff(5.0, clock=Clock()), interrupted=(ConnectionError,))
    job = Job("snap-1", "snapshot", step="snapshot")
    with caplog.at_level(logging.INFO, log.name):
        for error in (NotYet(), Cancelled(), ConnectionError("the node went away")):
            assert book.claim(job) is not None
            ended(book, job, error)
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.INFO]
    assert caplog.messages[0] == "snap-1: interrupted; it resumes later"
    assert book.claim(job) is not None


def test_queued_work_runs_after_the_current_job_and_ignores_back_off() -> None:
    book = ledger(Clock())
    launch = Job("i-1", "launch", step="pending")
    exited = Job("i-1", "exited")
    assert book.claim(launch) is not None
    assert book.claim(exited, queue=True) is None
    follower = book.finish(launch, RuntimeError("no memory"))
    assert follower is not None and follower[0] == exited and book.busy("i-1")
    ended(book, exited)
    assert not book.busy("i-1")


def test_stop_cancels_running_jobs_and_drops_queued_ones() -> None:
    book = ledger(Clock())
    job = Job("vol-1", "create")
    cancel = book.claim(job)
    assert cancel is not None and not cancel.is_set()
    book.claim(Job("vol-1", "after"), queue=True)
    book.stop()
    assert cancel.is_set()
    assert book.claim(Job("vol-2", "create")) is None
    ended(book, job)  # the queued job does not start


def test_cancel_asks_the_running_job_of_one_key_to_stop() -> None:
    book = ledger(Clock())
    one, two = book.claim(Job("snap-1", "copy")), book.claim(Job("snap-2", "copy"))
    assert one is not None and two is not None
    book.cancel("snap-1")
    book.cancel("snap-3")  # nothing running: nothing to do
    assert one.is_set() and not two.is_set()


# -- on threads -----------------------------------------------------------------------------


class Scan:
    """A scan that finds what the test put in ``found``, and counts its passes."""

    def __init__(self) -> None:
        self.found: list[Job] = []
        self.passes = 0

    def __call__(self) -> Iterable[Job]:
        self.passes += 1
        return list(self.found)


def test_threads_run_one_job_per_key_and_wake_up_to_scan() -> None:
    scan = Scan()
    release = threading.Event()
    runs: list[str] = []

    def work(name: str) -> ThreadWork:
        def run(_cancel: threading.Event) -> None:
            runs.append(name)
            release.wait(5)

        return run

    engine = Converger(log, "test", scan=scan, every=60.0, threads=3)
    engine.start()
    try:
        eventually(lambda: scan.passes == 1)
        scan.found = [Job("vol-1", work("a"), step="x"), Job("vol-2", work("b"), step="x")]
        engine.wake()
        eventually(lambda: sorted(runs) == ["a", "b"])
        engine.wake()
        eventually(lambda: scan.passes >= 3)
        time.sleep(0.05)
        assert sorted(runs) == ["a", "b"]  # still running: not started twice
        scan.found = []
        release.set()
        eventually(lambda: not engine.busy("vol-1") and not engine.busy("vol-2"))
    finally:
        engine.stop()


def test_threads_stop_cancels_the_running_job_and_waits_for_it() -> None:
    started, returned = threading.Event(), threading.Event()

    def copy(cancel: threading.Event) -> None:
        started.set()
        assert cancel.wait(5)
        returned.set()
        raise Cancelled

    engine = Converger(log, "test", threads=1)
    engine.submit(Job("snap-1", copy))
    engine.submit(Job("snap-2", copy))  # queued behind it on the one thread: dropped
    assert started.wait(5)
    engine.stop()
    assert returned.is_set()
    assert not engine.busy("snap-1") and not engine.busy("snap-2")


def test_threads_back_off_a_failing_job_found_again_by_each_scan() -> None:
    scan = Scan()
    runs: list[float] = []

    def failing(_cancel: threading.Event) -> None:
        runs.append(time.monotonic())
        raise RuntimeError("broken")

    scan.found = [Job("vol-1", failing, step="create")]
    engine = Converger(log, "test", scan=scan, every=0.01, backoff=Backoff(0.3))
    engine.start()
    try:
        eventually(lambda: len(runs) == 2)
        assert runs[1] - runs[0] >= 0.3
        assert scan.passes > 10  # scanned all along, run only once its wait was over
    finally:
        engine.stop()


def test_threads_scan_again_after_a_failing_scan() -> None:
    passes = 0

    def scan() -> Iterable[Job]:
        nonlocal passes
        passes += 1
        raise RuntimeError("database locked")

    engine = Converger(log, "test", scan=scan, every=0.01)
    engine.start()
    try:
        eventually(lambda: passes >= 3)
    finally:
        engine.stop()


# -- on the event loop ----------------------------------------------------------------------


def run_async(test: Callable[[], object]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))  # type: ignore[arg-type]


def test_tasks_run_one_job_per_key_and_queue_what_the_node_reports() -> None:
    async def test() -> None:
        release = asyncio.Event()
        order: list[str] = []
        passes = 0

        def work(name: str) -> TaskWork:
            async def run() -> None:
                order.append(name)
                await release.wait()

            return run

        async def scan() -> list[Job[TaskWork]]:
            nonlocal passes
            passes += 1
            return [Job("i-1", work(f"pass {passes}"), step="pending")] if passes < 3 else []

        engine = AsyncConverger(log, "test", scan=scan, every=60.0)
        engine.start()
        try:
            while passes < 1:
                await asyncio.sleep(0.005)
            engine.submit(Job("i-1", work("exited")), queue=True)
            engine.wake()
            while passes < 2:
                await asyncio.sleep(0.005)
            assert order == ["pass 1"]
            release.set()
            while len(order) < 2:
                await asyncio.sleep(0.005)
            assert order[:2] == ["pass 1", "exited"]  # the report first, then the next scan
        finally:
            await engine.close()

    run_async(test)


def test_tasks_close_cancels_running_jobs() -> None:
    async def test() -> None:
        cancelled = asyncio.Event()

        async def stop() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async def scan() -> list[Job[TaskWork]]:
            return [Job("i-1", stop, step="stopping")]

        engine = AsyncConverger(log, "test", scan=scan, every=60.0)
        engine.start()
        while not engine.busy("i-1"):
            await asyncio.sleep(0.005)
        await engine.close()
        assert cancelled.is_set() and not engine.busy("i-1")

    run_async(test)


def test_tasks_back_off_a_failure_and_retry_not_yet_at_the_next_scan() -> None:
    async def test() -> None:
        clock = Clock()
        runs: list[str] = []

        async def failing() -> None:
            runs.append("fail")
            raise RuntimeError("launch failed")

        async def waiting() -> None:
            runs.append("not yet")
            raise NotYet

        async def scan() -> list[Job[TaskWork]]:
            return [Job("i-1", failing, step="pending"), Job("i-2", waiting, step="pending")]

        engine = AsyncConverger(
            log, "test", scan=scan, every=0.01, backoff=Backoff(5.0, clock=clock)
        )
        engine.start()
        try:
            while runs.count("not yet") < 3:
                await asyncio.sleep(0.005)
            assert runs.count("fail") == 1  # backing off
            clock.now += 5.1
            while runs.count("fail") < 2:
                await asyncio.sleep(0.005)
        finally:
            await engine.close()

    run_async(test)
