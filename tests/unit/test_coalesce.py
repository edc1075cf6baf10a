"""Coalesced runs (``cloud/instances/coalesce.py``): the reconciler's pushes of a VPC, and
the reads and records of a wave of launches, batched."""

from __future__ import annotations

import asyncio

import pytest

from karri.cloud.instances.coalesce import Batched, Coalesced


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


class Reads:
    """A batch read (``many``) that records its batches and waits for ``go``; ``bad``
    items fail it, and fail when read alone (``one``)."""

    def __init__(self, bad: frozenset[int] = frozenset()) -> None:
        self.batches: list[list[int]] = []
        self.alone: list[int] = []
        self.go = asyncio.Event()
        self.bad = bad

    async def many(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.go.wait()
        if self.bad & set(items):
            raise RuntimeError("a bad item")
        return [i * 10 for i in items]

    async def one(self, item: int) -> int:
        self.alone.append(item)
        if item in self.bad:
            raise RuntimeError(f"bad {item}")
        return item * 10


def test_callers_of_a_batch_each_get_their_own_result() -> None:
    async def main() -> None:
        reads = Reads()
        batched = Batched(reads.many, reads.one, limit=100)
        reads.go.set()
        results = await asyncio.gather(*(batched(i) for i in range(50)))
        assert results == [i * 10 for i in range(50)]
        assert sorted(i for b in reads.batches for i in b) == list(range(50))
        assert len(reads.batches) == 1  # came at the same time: read together

    asyncio.run(main())


def test_an_item_asked_for_during_a_batch_is_read_by_the_next_one() -> None:
    async def main() -> None:
        reads = Reads()
        batched = Batched(reads.many, reads.one, limit=100)
        first = asyncio.create_task(batched(1))
        await asyncio.sleep(0.01)
        assert reads.batches == [[1]]  # begun, waiting for ``go``
        later = [asyncio.create_task(batched(i)) for i in (2, 3)]
        await asyncio.sleep(0.01)
        assert reads.batches == [[1]]
        reads.go.set()
        assert await asyncio.gather(first, *later) == [10, 20, 30]
        assert reads.batches == [[1], [2, 3]]

    asyncio.run(main())


def test_batches_are_at_most_the_limit() -> None:
    async def main() -> None:
        reads = Reads()
        batched = Batched(reads.many, reads.one, limit=3)
        reads.go.set()
        assert await asyncio.gather(*(batched(i) for i in range(7))) == [i * 10 for i in range(7)]
        assert max(len(b) for b in reads.batches) == 3
        assert sorted(i for b in reads.batches for i in b) == list(range(7))

    asyncio.run(main())


def test_a_failed_batch_is_read_again_each_alone_and_only_the_bad_item_fails() -> None:
    async def main() -> None:
        reads, failures = Reads(bad=frozenset({2})), []
        batched = Batched(reads.many, reads.one, limit=100, log_failure=failures.append)
        reads.go.set()
        results = await asyncio.gather(*(batched(i) for i in range(4)), return_exceptions=True)
        assert results[:2] == [0, 10] and results[3] == 30
        assert isinstance(results[2], RuntimeError) and str(results[2]) == "bad 2"
        assert sorted(reads.alone) == [0, 1, 2, 3] and failures == [4]

    asyncio.run(main())


def test_callers_woken_by_one_batch_ask_for_the_next_together() -> None:
    async def main() -> None:
        reads = Reads()
        first, then = Batched(reads.many, reads.one, 100), Batched(reads.many, reads.one, 100)
        reads.go.set()

        async def launch(i: int) -> int:  # a launch's reads, one after the other
            return await then(await first(i))

        assert await asyncio.gather(*(launch(i) for i in range(20))) == [i * 100 for i in range(20)]
        assert len(reads.batches) == 2  # the first to wake did not go on alone

    asyncio.run(main())
