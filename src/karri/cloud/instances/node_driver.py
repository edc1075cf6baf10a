"""The node contract: what the cloud needs of a node, which ``Node`` and ``FakeNode``
implement.

The reconciler owns the node (lifecycle, health, console, capacity) and hands it to the
EBS worker, which needs only its volume half (``NodeVolumes``, declared beside its
consumer ``NodeVolumeHost``). The node runs in karri's process; the same calls can
later travel to a node agent on another host. Arguments and answers are the node's plain,
immutable data; failures are ``NodeError``s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from karri.cloud.volumes.nodehost import NodeVolumes
from karri.node import (
    AdoptReport,
    Capacity,
    ExitCallback,
    GroupRules,
    InstanceExit,
    InstanceHealth,
    InstanceInfo,
    InstanceSpec,
    MetadataLookup,
    RecoveryCallback,
)


@runtime_checkable
class NodeDriver(NodeVolumes, Protocol):
    accelerator: str
    accelerator_reason: str
    last_fault: str | None

    async def start(self) -> AdoptReport:
        """Probe the accelerator, start serving, adopt what kept running; report it."""
        ...

    async def close(self, stop_instances: bool = False) -> None: ...

    async def launch(self, spec: InstanceSpec) -> InstanceInfo:
        """Start the instance (again, for one whose guest has ended)."""
        ...

    async def reboot(self, instance_id: str) -> None: ...

    async def shutdown(self, instance_id: str, timeout: float = 60.0) -> InstanceExit:
        """Power the guest off (ACPI, then the hard way after ``timeout``)."""
        ...

    async def destroy(self, instance_id: str) -> None:
        """End the guest and forget the instance; an unknown id is not an error."""
        ...

    def console_output(self, instance_id: str, max_bytes: int = 64 * 1024) -> bytes: ...
    def capacity(self) -> Capacity: ...

    def health(self, instance_id: str) -> InstanceHealth:
        """The status checks, from what the node observed."""
        ...

    def summary(self) -> dict[str, Any]: ...

    # -- networking: in force at once on running instances ----------------------------

    async def set_groups(self, vpc_id: str, groups: Sequence[GroupRules]) -> None:
        """Every security group of the VPC with its rules (one left out is removed);
        callable before ``start`` (what adoption starts from)."""
        ...

    async def set_instance_groups(self, instance_id: str, group_ids: Sequence[str]) -> None:
        """The ids of the groups the instance is a member of."""
        ...

    async def set_public_ip(self, instance_id: str, public_ip: str | None) -> str | None:
        """Map ``public_ip`` (every port) to the running instance, or none."""
        ...


NodeFactory = Callable[[MetadataLookup, ExitCallback, RecoveryCallback], NodeDriver]
"""Builds the node with the cloud's answers to its questions (``MetadataLookup``: an
instance's metadata by its id) and the
hearers of its reports: every guest's end (``ExitCallback``, called on the loop, also for
ends found at ``start``) and every instance it relaunched on its own (``RecoveryCallback``)."""
