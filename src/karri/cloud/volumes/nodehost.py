"""``VolumeHost`` over the node controller, called from the EBS worker's threads.

``NodeVolumes`` is what it needs of the node: the volume half of the node contract
(``NodeDriver`` in ``cloud/instances/node_driver.py``), which ``Node`` and ``FakeNode``
implement.

With nodes on other hosts (``VolumeRouting``: the reconciler), each call goes to the
instance's node, and a volume plugged into a guest on another host is opened there over
NBD (``NodeTargets``: ``targets.VolumeExports``), its export ended once it is unplugged;
its snapshots are copied by its export's daemon, on this host (``exportjobs``), and it is
not grown while plugged in there (``CannotGrow``: QEMU's NBD client keeps its size).

The node lives on the event loop of `karri up`; each call is handed to that loop and
waited for, so the worker never touches the node's state from another thread. ``close``
(when the node goes down) cancels the calls still waiting, so no worker thread hangs on a
loop that has stopped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from karri.cloud.volumes.host import CannotGrow, GuestGone, HostUnavailable
from karri.cloud.volumes.targets import node_target
from karri.node import (
    DetachTimeout,
    DiskFormat,
    DiskLimits,
    InstanceInfo,
    UnknownInstance,
    VmState,
)
from karri.node import VolumeTarget as NodeTarget
from karri.storage import VolumeTarget

T = TypeVar("T")
CALL_TIMEOUT = 120.0
BACKUP_TIMEOUT = 6 * 3600.0


@runtime_checkable
class NodeVolumes(Protocol):
    """Volumes in a node's running guests (async, on the node's loop)."""

    def info(self, instance_id: str) -> InstanceInfo:
        """What the node knows of the instance; ``UnknownInstance`` if nothing."""
        ...

    async def attach_volume(
        self,
        instance_id: str,
        volume_id: str,
        target: NodeTarget,
        fmt: DiskFormat = "raw",
        limits: DiskLimits | None = None,
        secret: str | None = None,
    ) -> None:
        """Hot-plug the volume (its file or NBD export; serial: the volume id), throttled
        to ``limits``; an encrypted one (``qcow2-luks``, legacy ``luks``) opened with
        ``secret``."""
        ...

    async def resize_volume(self, instance_id: str, volume_id: str, size: int) -> None:
        """Grow a plugged-in volume (or the EBS root) to ``size`` bytes."""
        ...

    async def throttle_volume(self, instance_id: str, volume_id: str, limits: DiskLimits) -> None:
        """Change a plugged-in volume's (or the EBS root's) I/O limits."""
        ...

    async def detach_volume(
        self, instance_id: str, volume_id: str, force: bool = False, timeout: float | None = None
    ) -> None:
        """Hot-unplug; ``DetachTimeout`` while the guest has not let go (unless ``force``)."""
        ...

    async def backup_volume(
        self,
        instance_id: str,
        volume_id: str,
        target: Path,
        fmt: DiskFormat = "raw",
        secret: str | None = None,
    ) -> None:
        """Copy the plugged-in volume (or the EBS root) as it is now into ``target``."""
        ...


class VolumeRouting(Protocol):
    def volume_node(self, instance_id: str) -> tuple[NodeVolumes, str | None]:
        """The instance's node and its name (None: the cloud's own); blocking."""
        ...


class NodeTargets(Protocol):
    def target(self, volume_id: str, node: str | None = None) -> NodeTarget: ...
    def release(self, volume_id: str) -> None: ...
    def backup(self, volume_id: str, target: VolumeTarget, name: str) -> None: ...


class NodeVolumeHost:
    def __init__(
        self,
        node: NodeVolumes,
        loop: asyncio.AbstractEventLoop,
        routing: VolumeRouting | None = None,
        targets: NodeTargets | None = None,
    ) -> None:
        self.node = node
        self.loop = loop
        self.routing = routing
        self.targets = targets
        self._lock = threading.Lock()
        self._pending: set[concurrent.futures.Future] = set()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pending = list(self._pending)
        for future in pending:
            future.cancel()

    def _run(self, make: Callable[[], Awaitable[T]], timeout: float = CALL_TIMEOUT) -> T:
        async def call() -> T:
            return await make()

        with self._lock:
            if self._closed:
                raise HostUnavailable("the node is down")
            future = asyncio.run_coroutine_threadsafe(call(), self.loop)
            self._pending.add(future)
        try:
            return future.result(timeout)
        except concurrent.futures.CancelledError:
            raise HostUnavailable("the node went down") from None
        finally:
            with self._lock:
                self._pending.discard(future)

    def _node(self, instance_id: str) -> tuple[NodeVolumes, str | None]:
        return (self.node, None) if self.routing is None else self.routing.volume_node(instance_id)

    def _info(self, instance_id: str) -> Any:
        node = self._node(instance_id)[0]

        async def info() -> Any:
            try:
                return node.info(instance_id)
            except UnknownInstance:
                return None

        return self._run(info)

    def running(self, instance_id: str) -> bool:
        info = self._info(instance_id)
        return info is not None and info.state == VmState.RUNNING

    def attached(self, instance_id: str) -> set[str]:
        info = self._info(instance_id)
        return {a.volume_id for a in info.volumes} if info is not None else set()

    def attach(
        self,
        instance_id: str,
        volume_id: str,
        target: VolumeTarget,
        limits: DiskLimits,
        secret: str | None = None,
    ) -> None:
        node, name = self._node(instance_id)
        where, fmt = node_target(target), target.format
        if name is not None:  # on another host: an NBD export for that node
            if self.targets is None:
                raise HostUnavailable(f"no NBD exports for node {name}: volumes stay local")
            where = self.targets.target(volume_id, name)  # type: ignore[assignment]
        try:
            self._run(
                lambda: node.attach_volume(instance_id, volume_id, where, fmt, limits, secret)  # type: ignore[arg-type]
            )
        except UnknownInstance:
            raise GuestGone(instance_id) from None

    def resize(self, instance_id: str, volume_id: str, size_bytes: int) -> None:
        node, name = self._node(instance_id)
        if name is not None:  # QEMU's NBD client keeps the size it connected with
            raise CannotGrow(
                f"{volume_id} is in use over NBD on node {name}, where it cannot grow: "
                "detach it or stop the instance, then modify it"
            )
        try:
            self._run(lambda: node.resize_volume(instance_id, volume_id, size_bytes))
        except UnknownInstance:
            raise GuestGone(instance_id) from None

    def throttle(self, instance_id: str, volume_id: str, limits: DiskLimits) -> None:
        node = self._node(instance_id)[0]
        try:
            self._run(lambda: node.throttle_volume(instance_id, volume_id, limits))
        except UnknownInstance:
            raise GuestGone(instance_id) from None

    def detach(self, instance_id: str, volume_id: str, force: bool) -> bool:
        node, name = self._node(instance_id)
        try:
            self._run(lambda: node.detach_volume(instance_id, volume_id, force))
        except DetachTimeout:
            return False
        if name is not None and self.targets is not None:
            self.targets.release(volume_id)  # the other host let go: its export ends
        return True

    def backup(
        self, instance_id: str, volume_id: str, target: VolumeTarget, secret: str | None = None
    ) -> None:
        path, fmt = Path(target.path), target.format
        node, name = self._node(instance_id)
        if name is not None:  # on another host: copied by its export's daemon, here
            if self.targets is None:
                raise HostUnavailable(f"no NBD exports for node {name}")
            self.targets.backup(volume_id, target, target.volume_id)
            return
        self._run(
            lambda: node.backup_volume(instance_id, volume_id, path, fmt, secret),  # type: ignore[arg-type]
            BACKUP_TIMEOUT,
        )
