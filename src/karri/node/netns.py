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


def _ns_key(path: str | Path) -> tuple[int, int] | None:
    """The (device, inode) of a namespace file (or any file), None if it is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def namespace_processes(name: str) -> list[Process]:
    """The live processes whose network namespace is ``name``."""
    target = _ns_key(NETNS_DIR / name)
    if target is None:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        ticks = process_start_ticks(pid)
        same = _ns_key(f"/proc/{pid}/ns/net") == target
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

    def attached(self) -> bool:
        """Whether the name holds a network namespace (its file a mount of one, on the
        namespaces' own file system), not only a file left without its mount."""
        key, own = _ns_key(self.path), _ns_key("/proc/self/ns/net")
        return key is not None and own is not None and key[0] == own[0]

    async def adopt(self, holders: Iterable[int]) -> bool:
        """Give the name back its namespace, from a process still in it, if the name lost
        it: ``ip netns add`` mounts the namespace on the name in the caller's mount
        namespace, and a `karri node` run in a mount namespace of its own (``ip netns
        exec``, which also keeps its mounts from the host's; a service's private mounts)
        takes that mount with it when it ends, while the namespace lives on with its
        guests and dnsmasq. ``holders``: pids that may run in it (those in this process's
        own network namespace are passed over). With none, a name left without its
        namespace is removed (a new one is made). Whether the name holds one now."""
        if self.attached():
            return True
        own = _ns_key("/proc/self/ns/net")
        for pid in holders:
            key = _ns_key(f"/proc/{pid}/ns/net")
            if key is None or key == own:
                continue
            NETNS_DIR.mkdir(parents=True, exist_ok=True)
            self.path.touch(exist_ok=True)
            await run("mount", "--bind", f"/proc/{pid}/ns/net", str(self.path))
            return True
        self.path.unlink(missing_ok=True)
        return False

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
