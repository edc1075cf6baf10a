"""Coalesced runs (``cloud/instances/coalesce.py``): the reconciler's pushes of a VPC."""

from __future__ import annotations

import asyncio

import pytest

from karri.cloud.instances.coalesce import Coalesced


class Work:
    """A run that records when it began and waits for ``go`` to end."""

    def __init__(self) -> None:
        self.runs = 0
        self.running = 0
        self.most = 0
        self.go = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self) -> None:
        self.runs += 1
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.go.wait()
            if self.fail:
                raise self.fail
        finally:
            self.running -= 1


def test_callers_during_a_run_share_the_next_one() -> None:
    async def main() -> None:
        coalesced, work = Coalesced(), Work()
        first = asyncio.create_task(coalesced("vpc", work))
        await asyncio.sleep(0)
        assert work.runs == 1
        later = [asyncio.create_task(coalesced("vpc", work)) for _ in range(50)]
        await asyncio.sleep(0)
        assert work.runs == 1  # the run begun before they came does not serve them
        work.go.set()
        await asyncio.gather(first, *later)
        assert work.runs == 2 and work.most == 1

    asyncio.run(main())


def test_a_caller_waits_for_a_run_begun_after_its_call() -> None:
    async def main() -> None:
        coalesced, work = Coalesced(), Work()
        first = asyncio.create_task(coalesced("vpc", work))
        await asyncio.sleep(0)
        second = asyncio.create_task(coalesced("vpc", work))
        await asyncio.sleep(0)
        assert not second.done()
        work.go.set()
        await first
        await second
        assert work.runs == 2

    asyncio.run(main())


def test_keys_run_apart() -> None:
    async def main() -> None:
        coalesced, work = Coalesced(), Work()
        tasks = [asyncio.create_task(coalesced(k, work)) for k in ("a", "b")]
        await asyncio.sleep(0)
        assert work.running == 2
        work.go.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_a_failed_run_fails_its_callers_and_the_next_run_is_new() -> None:
    async def main() -> None:
        coalesced, work = Coalesced(), Work()
        first = asyncio.create_task(coalesced("vpc", work))
        await asyncio.sleep(0)
        shared = [asyncio.create_task(coalesced("vpc", work)) for _ in range(3)]
        await asyncio.sleep(0)
        work.fail = RuntimeError("node down")
        work.go.set()
        for task in (first, *shared):
            with pytest.raises(RuntimeError, match="node down"):
                await task
        assert work.runs == 2
        work.fail = None
        await coalesced("vpc", work)
        assert work.runs == 3

    asyncio.run(main())


def test_a_cancelled_leader_leaves_its_waiters_a_run_of_their_own() -> None:
    async def main() -> None:
        coalesced, work = Coalesced(), Work()
        first = asyncio.create_task(coalesced("vpc", work))
        await asyncio.sleep(0)
        leader = asyncio.create_task(coalesced("vpc", work))  # waits for the next run
        await asyncio.sleep(0)
        waiter = asyncio.create_task(coalesced("vpc", work))  # shares it
        await asyncio.sleep(0)
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        work.go.set()
        await asyncio.gather(first, waiter)
        assert work.runs == 2

    asyncio.run(main())
