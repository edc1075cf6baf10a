"""Coalesced runs of one piece of work per key, on the event loop.

A VPC's push reads the database, then tells the nodes what it read. A caller needs a push
that *began* after its call (it then read what the caller committed); it does not need a
push of its own. ``Coalesced`` runs the work for a key one run at a time, and every caller
that arrives while a run is going on waits for the next run, which all of them share: 200
launches in one VPC asking for its push at once make two or three pushes, not 200, and
each of them still returns only after a push that read the database after it asked.

``Batched`` does the same for work on many items at once: a caller's item is read (or
written) by a run begun after its call, together with the items of every caller that came
meanwhile: 200 launches each reading their interfaces make one or two reads, not 200.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

QUIET_TURNS = 3  # turns of the loop that queued no item: a batch is taken

T = TypeVar("T")
R = TypeVar("R")


class Coalesced:
    """``await coalesced(key, work)``: returns once a run of ``work`` for ``key`` that
    began after this call has ended (raising what that run raised). Runs of one key never
    overlap; a run's callers share its outcome."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._next: dict[Hashable, asyncio.Future[None]] = {}  # the run not begun yet

    async def __call__(self, key: Hashable, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            waiting = self._next.get(key)
            if waiting is None:
                return await self._lead(key, work)
            try:
                return await asyncio.shield(waiting)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not waiting.cancelled() or (task is not None and task.cancelling()):
                    raise  # this caller was cancelled, not the run it waited for
                # the run's own caller was cancelled before it ended: run it anew

    async def _lead(self, key: Hashable, work: Callable[[], Awaitable[None]]) -> None:
        """Begin the next run of ``key`` once the current one ends, for every caller that
        comes meanwhile too."""
        outcome = asyncio.get_running_loop().create_future()
        self._next[key] = outcome
        try:
            async with self._locks.setdefault(key, asyncio.Lock()):
                if self._next.get(key) is outcome:
                    del self._next[key]  # begun: later callers wait for the run after it
                await work()
        except Exception as error:
            outcome.set_exception(error)
            outcome.exception()  # retrieved: nobody else may have waited for it
            raise
        else:
            outcome.set_result(None)
        finally:  # cancelled (before or while it ran): its waiters run it anew
            if self._next.get(key) is outcome:
                del self._next[key]
            if not outcome.done():
                outcome.cancel()


class Batched(Generic[T, R]):
    """``await batched(item)``: ``item``'s result from a run begun after this call, which
    took along the items of every caller that came meanwhile, up to ``limit``:
    ``many(items)`` (their results, in order) once for all of them; should that fail,
    ``one(item)`` for each, and only those that fail raise. Runs never overlap: a task of
    their own runs them one after another while items are queued, and each caller is woken
    by its own result."""

    def __init__(
        self,
        many: Callable[[list[T]], Awaitable[Sequence[R]]],
        one: Callable[[T], Awaitable[R]],
        limit: int,
        log_failure: Callable[[int], None] | None = None,
    ) -> None:
        self._many = many
        self._one = one
        self._limit = limit
        self._log_failure = log_failure  # called (with the batch's size) when many fails
        self._queued: dict[object, tuple[T, asyncio.Future[R]]] = {}
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        key = object()
        result: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queued[key] = (item, result)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._runs(), name="batched")
        try:
            return await asyncio.shield(result)  # set by the run that took it
        finally:
            self._queued.pop(key, None)  # cancelled before a run took it: left out

    async def _runs(self) -> None:
        try:
            while self._queued:
                await self._gathered()
                batch = list(self._queued.items())[: self._limit]
                for key, _taken in batch:
                    del self._queued[key]
                if batch:  # (its callers may all have been cancelled meanwhile)
                    await self._run([taken for _key, taken in batch])
        finally:
            self._runner = None

    async def _gathered(self) -> None:
        """The callers woken with the last one (a few turns of the loop behind it, through
        shielded futures) queue their items too: taken once ``QUIET_TURNS`` turns queued
        none."""
        quiet = 0
        while quiet < QUIET_TURNS and len(self._queued) < self._limit:
            queued = len(self._queued)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self._queued) == queued else 0

    async def _run(self, taken: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            try:
                results = await self._many([item for item, _result in taken])
            except Exception:
                if self._log_failure is not None:
                    self._log_failure(len(taken))
            else:
                for (_item, result), value in zip(taken, results, strict=True):
                    result.set_result(value)
                return
            for item, result in taken:
                try:
                    result.set_result(await self._one(item))
                except Exception as error:
                    result.set_exception(error)
        finally:  # cancelled (the loop is closing): their callers end with it
            for _item, result in taken:
                if not result.done():
                    result.cancel()
