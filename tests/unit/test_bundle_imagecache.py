"""The node's image cache: one fetch per image, shared, freed when deregistered and unused."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from karri.node.imagecache import ImageCache


def slow_fetch(calls: list[str], data: bytes = b"disk"):
    def fetch(dest: Path) -> None:
        calls.append(threading.current_thread().name)
        time.sleep(0.2)
        dest.write_bytes(data)

    return fetch


def test_concurrent_first_launches_fetch_once(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "images")
    calls: list[str] = []

    async def launch_many() -> list[Path]:
        return await asyncio.gather(
            *(
                cache.ensure("emi-12345678", slow_fetch(calls), user=f"i-0000000{n}")
                for n in range(10)
            )
        )

    paths = asyncio.run(launch_many())
    assert len(calls) == 1 and cache.fetches == 1
    assert len(set(paths)) == 1 and paths[0].read_bytes() == b"disk"
    assert len(cache.users("emi-12345678")) == 10


def test_async_fetch_and_reuse(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)

    async def fetch(dest: Path) -> None:
        dest.write_bytes(b"kernel")

    async def twice() -> tuple[Path, Path]:
        return (
            await cache.ensure("eki-12345678", fetch),
            await cache.ensure("eki-12345678", fetch),
        )

    first, second = asyncio.run(twice())
    assert first == second and cache.fetches == 1


def test_deregistered_entry_is_freed_when_unused(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    asyncio.run(cache.ensure("emi-aaaaaaaa", slow_fetch([]), user="i-11111111"))
    cache.forget("emi-aaaaaaaa")
    assert cache.path("emi-aaaaaaaa") is not None  # still used by i-11111111
    cache.release("emi-aaaaaaaa", "i-11111111")
    assert cache.path("emi-aaaaaaaa") is None
    assert not (tmp_path / "emi-aaaaaaaa").exists()


def test_released_but_registered_entry_stays(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    asyncio.run(cache.ensure("emi-bbbbbbbb", slow_fetch([]), user="i-22222222"))
    cache.release("emi-bbbbbbbb", "i-22222222")
    assert cache.path("emi-bbbbbbbb") is not None


def test_reconcile_after_restart(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    asyncio.run(cache.ensure("emi-cccccccc", slow_fetch([]), user="i-33333333"))
    asyncio.run(cache.ensure("emi-cccccccc", slow_fetch([]), user="i-44444444"))
    cache.forget("emi-cccccccc")
    restarted = ImageCache(tmp_path)
    restarted.reconcile({"i-44444444"})
    assert restarted.users("emi-cccccccc") == {"i-44444444"}
    restarted.reconcile(set())
    assert restarted.path("emi-cccccccc") is None


def test_failed_fetch_leaves_nothing(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)

    def broken(dest: Path) -> None:
        dest.write_bytes(b"half")
        raise OSError("walrus went away")

    with pytest.raises(OSError):
        asyncio.run(cache.ensure("emi-dddddddd", broken))
    assert cache.path("emi-dddddddd") is None
    assert not (tmp_path / "emi-dddddddd" / ".image.partial").exists()


def test_ids_cannot_escape(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    with pytest.raises(ValueError):
        asyncio.run(cache.ensure("../etc", slow_fetch([])))
