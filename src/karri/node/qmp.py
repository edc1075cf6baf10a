"""The QMP commands karri sends to QEMU, one typed method each (incus's ``qmp/commands.go``).

Nothing else in karri spells a QMP command: the instance's process (``vm.py``) and the
volume hot-plug (``hotplug.py``) call these methods, and only this module imports
qemu.qmp. Errors are qemu.qmp's ``QMPError`` (QEMU refused the command, or the connection
broke) and ``NodeError`` when the instance does not run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from qemu.qmp import EventListener, ExecuteError, QMPClient, QMPError

from karri.node.errors import NodeError

__all__ = ["EventListener", "QMPError", "Qmp", "unix_connect"]

UNIX_PATH_MAX = 107

PERIPHERALS = "/machine/peripheral"
"""Where QEMU lists the devices added with an id (``-device``, ``device_add``)."""


class Qmp:
    """One QEMU's monitor. ``alive`` says whether commands may be sent at all."""

    def __init__(self, name: str, alive: Callable[[], bool]) -> None:
        self._name = name
        self._alive = alive
        self._client: QMPClient | None = None

    async def connect(self, sock: socket.socket) -> EventListener:
        """Connect over ``sock``; the answer hears every event (its only reader)."""
        client = QMPClient(self._name)
        await client.connect(sock)
        self._client = client
        return client.events

    async def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.disconnect()

    async def _run(self, command: str, arguments: Mapping[str, object] | None = None) -> Any:
        if self._client is None or not self._alive():
            raise NodeError(f"{self._name} is not running")
        return await self._client.execute(command, arguments)

    # --- the machine ------------------------------------------------------------------
    async def cont(self) -> None:
        """Let the guest run (QEMU starts paused, ``-S``; or resume a stopped one)."""
        await self._run("cont")

    async def stop(self) -> None:
        """Pause the guest."""
        await self._run("stop")

    async def quit(self) -> None:
        """End QEMU."""
        await self._run("quit")

    async def system_reset(self) -> None:
        await self._run("system_reset")

    async def system_powerdown(self) -> None:
        """Press the ACPI power button."""
        await self._run("system_powerdown")

    async def query_status(self) -> str:
        """QEMU's run state: ``running``, ``paused``, ``shutdown``, ``internal-error``, …"""
        return (await self._run("query-status"))["status"]

    # --- block nodes and devices ----------------------------------------------------------
    async def blockdev_add(self, options: Mapping[str, Any]) -> None:
        await self._run("blockdev-add", options)

    async def blockdev_del(self, node_name: str) -> None:
        await self._run("blockdev-del", {"node-name": node_name})

    async def blockdev_reopen(self, options: Mapping[str, Any]) -> None:
        """Reopen one node with new options (e.g. another ``file`` child)."""
        await self._run("blockdev-reopen", {"options": [options]})

    async def query_named_block_nodes(self) -> list[str]:
        """The names of every named block node (top-level and children)."""
        nodes = await self._run("query-named-block-nodes", {"flat": True})
        return [node["node-name"] for node in nodes]

    async def block_node_size(self, node_name: str) -> int | None:
        """A named node's size in bytes (None: there is no such node)."""
        for node in await self._run("query-named-block-nodes", {"flat": True}):
            if node["node-name"] == node_name:
                return int(node["image"]["virtual-size"])
        return None

    async def secret_add(self, object_id: str, data: str) -> None:
        """A ``secret`` object holding ``data`` (a LUKS passphrase): passed over the QMP
        socket, never on a command line."""
        await self._run(
            "object-add", {"qom-type": "secret", "id": object_id, "data": data, "format": "raw"}
        )

    async def object_add(self, options: Mapping[str, Any]) -> None:
        await self._run("object-add", options)

    async def has_object(self, object_id: str) -> bool:
        """Whether a user object (``-object``, ``object-add``) has this id."""
        try:
            return object_id in await self.qom_list("/objects")
        except ExecuteError:  # no user object yet: QEMU makes /objects with the first
            return False

    async def object_del(self, object_id: str) -> None:
        await self._run("object-del", {"id": object_id})

    async def device_add(self, device: Mapping[str, Any]) -> None:
        await self._run("device_add", device)

    async def getfd(self, name: str, fd: int) -> None:
        """Hand QEMU a descriptor (SCM_RIGHTS on the monitor's socket) as ``name``."""
        if self._client is None or not self._alive():
            raise NodeError(f"{self._name} is not running")
        # qemu.qmp's send_fd_scm needs asyncio's own socket object (uvloop has another):
        # the message goes out on a duplicate of the monitor socket's descriptor
        writer = self._client._writer  # the library keeps it private
        assert writer is not None
        monitor = writer.transport.get_extra_info("socket")
        with socket.socket(fileno=os.dup(monitor.fileno())) as sock:
            sock.sendmsg([b" "], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("@i", fd))])
        await self._run("getfd", {"fdname": name})

    async def netdev_add(self, options: Mapping[str, Any]) -> None:
        await self._run("netdev_add", options)

    async def netdev_del(self, netdev_id: str) -> None:
        await self._run("netdev_del", {"id": netdev_id})

    async def device_del(self, device_id: str) -> None:
        """Ask the guest to release a device (ACPI eject); ``DEVICE_DELETED`` follows."""
        await self._run("device_del", {"id": device_id})

    async def qom_list(self, path: str) -> list[str]:
        """The names of the children of a QOM path."""
        return [child["name"] for child in await self._run("qom-list", {"path": path})]

    async def blockdev_backup(self, job_id: str, device: str, target: str) -> None:
        """Start a full copy-before-write backup job of ``device`` into node ``target``;
        ``BLOCK_JOB_COMPLETED`` (or ``_CANCELLED``) with ``job_id`` ends it."""
        await self._run(
            "blockdev-backup",
            {"job-id": job_id, "device": device, "target": target, "sync": "full"},
        )

    async def block_set_io_throttle(self, arguments: Mapping[str, Any]) -> None:
        """Set (or, all zero, lift) a disk's I/O limits; ``disks.io_throttle`` builds them."""
        await self._run("block_set_io_throttle", arguments)

    async def block_resize(self, node_name: str, size: int) -> None:
        """Grow a block node (and the file under it) to ``size`` bytes; a virtio disk
        tells the guest its new capacity."""
        await self._run("block_resize", {"node-name": node_name, "size": size})


async def unix_connect(path: Path) -> socket.socket:
    """A connected unix socket; paths past the kernel's limit go through /proc/self/fd."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    target, dirfd = str(path), None
    if len(target.encode()) > UNIX_PATH_MAX:
        dirfd = os.open(path.parent, os.O_PATH | os.O_CLOEXEC)
        target = f"/proc/self/fd/{dirfd}/{path.name}"
    try:
        await asyncio.get_running_loop().sock_connect(sock, target)
    except BaseException:
        sock.close()
        raise
    finally:
        if dirfd is not None:
            os.close(dirfd)
    return sock
