"""A QEMU with no guest (``-M none``) and its monitor, for tests that plug block nodes
into a running QEMU as the node does (``Qmp`` is the node's own monitor client)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from karri.node.qmp import Qmp


@contextlib.asynccontextmanager
async def bare_qemu(directory: Path) -> AsyncIterator[Qmp]:
    """A running QEMU's connected monitor; the QEMU is killed on the way out."""
    monitor = directory / "qmp.sock"
    process = subprocess.Popen(
        ["qemu-system-x86_64", "-M", "none", "-accel", "tcg", "-nodefaults", "-display",
         "none", "-qmp", f"unix:{monitor},server=on,wait=off"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        qmp = Qmp("test", lambda: process.poll() is None)
        for _ in range(200):
            if monitor.exists():
                break
            await asyncio.sleep(0.05)
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(monitor))
        await qmp.connect(sock)
        try:
            yield qmp
        finally:
            await qmp.disconnect()
    finally:
        process.kill()
        process.wait()
