"""Fixtures for the node controller's tests: the tiny guest image and an event loop.

The node is an asyncio component; its tests drive it from a loop running in a thread of
its own, so a module's guests and servers can outlive a single test. Guest tests need
root (network namespaces, taps) and QEMU, and boot real TCG guests of 64-128 MiB.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "guests: boots QEMU guests (root, TCG); its own file, runs beside the rest"
    )


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("qemu-system-x86_64") or not shutil.which("dnsmasq"),
    reason="needs root, qemu-system-x86_64 and dnsmasq",
)


class LoopThread:
    """An event loop in a thread; ``run`` hands it a coroutine and waits for the result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        """Run a plain function on the loop (the node is not thread-safe)."""

        async def call():
            return fn(*args)

        return self.run(call())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="session")
def tiny_image() -> Path:
    """vmlinux/vmlinuz, initrd and rootfs.img of the tiny guest (built once per machine)."""
    from karri.node.guestimage import ensure_built

    return ensure_built()


def kernel_of(image: Path, memory_mib: int) -> Path:
    """The uncompressed PVH ``vmlinux`` boots faster under TCG than the bzImage, when the
    build made it; but at 66 MB it does not fit a guest of less than 96 MiB."""
    vmlinux = image / "vmlinux"
    return vmlinux if vmlinux.exists() and memory_mib >= 96 else image / "vmlinuz"
