"""A network namespace owned by one data dir, and sockets opened inside it.

Python 3.11 has no ``os.setns``: a dedicated short-lived thread enters the namespace with
libc's ``setns(fd, CLONE_NEWNET)``, creates the socket and ends. A socket keeps the
namespace it was created in, so the karri process listens and connects inside the
namespace without any helper process. The thread is never a pooled one: a pool would hand
the namespace on to unrelated work.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from karri.node.commands import CommandError, Process, pid_alive, process_start_ticks, run

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
NETNS_DIR = Path("/run/netns")

_libc = ctypes.CDLL(None, use_errno=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def namespace_name(data_dir: Path, vpc_id: str | None = None) -> str:
    """``karri-<hash of the data dir>-<hash of the VPC id>``: one namespace per VPC, and
    several clouds on one host never collide. Without a VPC: the prefix every namespace
    of the data dir starts with (the single namespace of karri before VPCs)."""
    prefix = f"karri-{_digest(str(data_dir.resolve()))}"
    return f"{prefix}-{_digest(vpc_id)}" if vpc_id else prefix


def host_link_name(data_dir: Path, vpc_id: str) -> str:
    """The host's end of a VPC namespace's veth: ``kv`` + 10 hex digits (15 characters
    at most), unique per data dir and VPC."""
    return "kv" + _digest(f"{data_dir.resolve()}:{vpc_id}")


def data_dir_namespaces(data_dir: Path) -> list[str]:
    """Every namespace of the data dir that exists now (of any VPC, and the pre-VPC one)."""
    prefix = namespace_name(data_dir)
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return []
    return sorted(n for n in names if n == prefix or n.startswith(prefix + "-"))


def namespace_processes(name: str) -> list[Process]:
    """The live processes whose network namespace is ``name``."""
    try:
        target = os.stat(NETNS_DIR / name)
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        ticks = process_start_ticks(pid)
        try:
            ns = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        same = (ns.st_dev, ns.st_ino) == (target.st_dev, target.st_ino)
        # the ticks read again after the check show it was this very process
        if same and ticks is not None and pid_alive(pid, ticks):
            found.append((pid, ticks))
    return found


class Namespace:
    def __init__(self, name: str) -> None:
        self.name = name
        self.path = NETNS_DIR / name

    def exists(self) -> bool:
        return self.path.exists()

    async def create(self) -> None:
        await run("ip", "netns", "add", self.name)

    async def delete(self) -> None:
        try:
            await run("ip", "netns", "delete", self.name)
        except CommandError:
            if self.exists():
                raise

    def exec_args(self, *cmd: str) -> list[str]:
        """A command line that runs ``cmd`` inside the namespace."""
        return ["ip", "netns", "exec", self.name, *cmd]

    async def ip(self, *args: str) -> str:
        return await run("ip", "-n", self.name, *args)

    async def ip_batch(self, commands: list[str], *, force: bool = False) -> None:
        """Several ``ip`` commands in one process (``force``: go on past failures)."""
        if commands:
            flags = ("-force",) if force else ()
            await run(
                "ip",
                "-n",
                self.name,
                *flags,
                "-batch",
                "-",
                stdin="\n".join(commands).encode(),
                check=not force,
            )

    async def nft(self, script: str) -> str:
        return await run(*self.exec_args("nft", "-f", "-"), stdin=script.encode())

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a fresh thread that has entered the namespace."""
        result: list[T] = []
        error: list[BaseException] = []

        def target() -> None:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns {self.name}: {os.strerror(err)}")
                finally:
                    os.close(fd)
                result.append(fn())
            except BaseException as exc:  # handed to the caller's thread
                error.append(exc)

        thread = threading.Thread(target=target, name=f"netns-{self.name}", daemon=True)
        thread.start()
        thread.join()
        if error:
            raise error[0]
        return result[0]

    def open_tap(self, name: str) -> int:
        """A descriptor of the namespace's tap ``name`` (``/dev/net/tun`` attached to it,
        as QEMU's ``ifname=`` would), for a QEMU outside the namespace (``fd=``); the
        caller closes it once QEMU has its own."""
        return self.call(lambda: _open_tap(name))

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        """A non-blocking socket that lives in the namespace."""
        sock = self.call(lambda: socket.socket(family, type))
        sock.setblocking(False)
        return sock


def _open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        request = struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        fcntl.ioctl(fd, TUNSETIFF, request)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def tap_fds(ns: Namespace, names: Iterable[str]) -> Iterator[dict[str, int]]:
    """The descriptors of the namespace's taps ``names``, by name, closed on the way out
    (a QEMU started meanwhile keeps its own copies)."""
    fds: dict[str, int] = {}
    try:
        for name in names:
            fds[name] = ns.open_tap(name)
        yield fds
    finally:
        for fd in fds.values():
            os.close(fd)
