"""Which front end runs the cloud's background work (many-hosts step 7).

Several `karri up --no-local-node` on PostgreSQL serve one cloud's API; the background
work (the reconciler, the EBS worker, the images pipeline, lifecycle and sweeps) runs in
exactly one of them, the leader: the holder of a lock (``db/leader_lock.py``). A standby
asks for it every ``poll`` seconds (``elected`` returns once it has it); the leader checks
every ``poll`` seconds that it still holds it (``lost`` returns when it does not, or when
the database did not answer within ``timeout``), and then must stop its background work
at once (`karri up` exits). Bounds: the leader gives up after at most ``poll + timeout``
seconds of silence (7 s), before PostgreSQL drops the lock of a connection it no longer
hears (its keepalives: about 11 s), so two leaders never run at once; a standby takes over
within ``poll`` seconds of the lock's release.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

log = logging.getLogger("karri.leadership")

POLL = 2.0
TIMEOUT = 5.0
LEADER, STANDBY, LOST = "leader", "standby", "lost"


class LeaderLock(Protocol):
    def try_acquire(self) -> bool:
        """True once this front end holds the lock (blocking; may raise)."""
        ...

    def holds(self) -> bool:
        """Whether it still does (blocking; raises when the database does not answer)."""
        ...

    def release(self) -> None: ...


class Leadership:
    def __init__(self, lock: LeaderLock, poll: float = POLL, timeout: float = TIMEOUT) -> None:
        self.lock = lock
        self.poll = poll
        self.timeout = timeout
        self.role = STANDBY
        # a thread of its own: never queued behind the loop's other blocking work, whose
        # wait would read as the database's silence (and end a busy leader for nothing)
        self._asker = ThreadPoolExecutor(1, thread_name_prefix="leadership")

    async def _ask(self, question: Callable[[], bool]) -> bool:
        asked = asyncio.get_running_loop().run_in_executor(self._asker, question)
        return await asyncio.wait_for(asked, self.timeout)

    async def elected(self) -> None:
        """Return once this front end leads (at once when it can)."""
        waited = False
        while True:
            try:
                if await self._ask(self.lock.try_acquire):
                    self.role = LEADER
                    log.info("this front end leads the background work")
                    return
            except Exception as error:  # the database out of reach: asked again
                log.warning("asking for the leadership: %s", error or type(error).__name__)
            if not waited:
                log.info("another front end leads the background work: standing by")
                waited = True
            await asyncio.sleep(self.poll)

    async def lost(self) -> None:
        """Return when this front end (the leader) no longer surely holds the lock."""
        while True:
            await asyncio.sleep(self.poll)
            try:
                if await self._ask(self.lock.holds):
                    continue
                why = "the lock is no longer held"
            except Exception as error:  # TimeoutError too: a leader unsure is no leader
                why = f"the database did not answer: {error or type(error).__name__}"
            self.role = LOST
            log.error("leadership lost (%s): the background work stops", why)
            return
