"""Coalesced runs of one piece of work per key, on the event loop.

A VPC's push reads the database, then tells the nodes what it read. A caller needs a push
that *began* after its call (it then read what the caller committed); it does not need a
push of its own. ``Coalesced`` runs the work for a key one run at a time, and every caller
that arrives while a run is going on waits for the next run, which all of them share: 200
launches in one VPC asking for its push at once make two or three pushes, not 200, and
each of them still returns only after a push that read the database after it asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable


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
