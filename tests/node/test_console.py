"""The console log stays bounded while a writer keeps appending, and loses nothing recent."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from karri.node.console import ConsoleLog

LIMIT = 64 * 1024


def _write_lines(path: Path, count: int) -> None:
    """Append numbered lines the way QEMU does (O_APPEND, never reopened)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for i in range(count):
            os.write(fd, f"line {i:08d} {'x' * 40}\n".encode())
    finally:
        os.close(fd)


def _trim_while(console: ConsoleLog, writer: threading.Thread) -> int:
    trims = 0
    while writer.is_alive():
        trims += console.trim()
    return trims + console.trim()


@pytest.mark.parametrize("where", ["disk", "tmpfs"])
def test_trim_keeps_the_log_bounded(tmp_path: Path, where: str) -> None:
    if where == "tmpfs":  # no collapse-range there: the copy-and-truncate fallback
        if not Path("/dev/shm").is_dir():
            pytest.skip("no /dev/shm")
        tmp_path = Path("/dev/shm") / f"karri-console-{os.getpid()}"
        tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "console.log"
    console = ConsoleLog(path, LIMIT)
    writer = threading.Thread(target=_write_lines, args=(path, 20000))  # ~1 MiB
    writer.start()
    trims = _trim_while(console, writer)
    writer.join()
    assert trims > 0
    assert console.size() <= LIMIT
    tail = console.tail(8192).decode()
    assert tail.endswith(f"line {19999:08d} {'x' * 40}\n")
    kept = [int(line.split()[1]) for line in path.read_text().splitlines()[1:]]
    if kept:  # what the file holds since its last trim is contiguous to the end
        assert kept == list(range(kept[0], 20000))
    # Copy-and-truncate (tmpfs) may lose the lines written between its copy and its
    # truncate, as console.py says; collapse-range loses nothing, across the tail too.
    if where == "disk":
        numbers = [int(line.split()[1]) for line in tail.splitlines()[1:]]
        assert numbers == list(range(numbers[0], 20000))
    console.remove()
    assert not path.exists()
    if where == "tmpfs":
        tmp_path.rmdir()


def test_tail_of_missing_or_small_logs(tmp_path: Path) -> None:
    console = ConsoleLog(tmp_path / "console.log", LIMIT)
    assert console.tail(100) == b""
    assert not console.trim()
    (tmp_path / "console.log").write_bytes(b"hello\n")
    assert console.tail(100) == b"hello\n"
    assert console.tail(3) == b"lo\n"
    assert not console.trim()
