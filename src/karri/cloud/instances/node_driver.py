"""What the reconciler needs of a node: the contract ``Node`` and ``FakeNode`` implement.

Today the node runs in the same process; the same calls can later travel to a node agent
on another host. Arguments and answers are the node's plain, immutable data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from karri.node import (
    AdoptReport,
    Capacity,
    ExitCallback,
    InstanceExit,
    InstanceHealth,
    InstanceInfo,
    InstanceSpec,
    MetadataLookup,
    RecoveryCallback,
)


class NodeDriver(Protocol):
    accelerator: str
    accelerator_reason: str
    last_fault: str | None

    async def start(self) -> AdoptReport: ...
    async def close(self, stop_instances: bool = False) -> None: ...
    async def launch(self, spec: InstanceSpec) -> InstanceInfo: ...
    async def reboot(self, instance_id: str) -> None: ...
    async def shutdown(self, instance_id: str, timeout: float = 60.0) -> InstanceExit: ...
    async def destroy(self, instance_id: str) -> None: ...
    def console_output(self, instance_id: str, max_bytes: int = 64 * 1024) -> bytes: ...
    def capacity(self) -> Capacity: ...
    def health(self, instance_id: str) -> InstanceHealth: ...
    def summary(self) -> dict[str, Any]: ...


NodeFactory = Callable[[MetadataLookup, ExitCallback, RecoveryCallback], NodeDriver]
"""Builds the node with the cloud's answers to its questions and its reports."""
