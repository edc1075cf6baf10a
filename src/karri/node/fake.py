"""FakeNode: a stand-in for the QEMU node that runs no guests, for API-scale benchmarks.

It answers like ``Node`` (launch, shutdown, destroy, console, capacity) without starting
anything, so a benchmark can put a thousand instances in the database on a 2-core machine.
It is never used unless asked for by name (``karri up --node-driver fake``), and every
figure measured with it must say so.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from karri.node.errors import UnknownInstance
from karri.node.metadata import MetadataLookup
from karri.node.node import ExitCallback, RecoveryCallback
from karri.node.spec import (
    AdoptReport,
    Capacity,
    Check,
    ExitReason,
    InstanceExit,
    InstanceHealth,
    InstanceInfo,
    InstanceSpec,
    NodeSettings,
    VmState,
)


class FakeNode:
    accelerator = "fake"
    accelerator_reason = "--node-driver fake: no guests run"
    last_fault: str | None = None

    def __init__(
        self,
        data_dir: Path,
        settings: NodeSettings | None = None,
        *,
        metadata: MetadataLookup | None = None,
        on_exit: ExitCallback | None = None,
        on_recovery: RecoveryCallback | None = None,
    ) -> None:
        self.settings = settings or NodeSettings()
        self._instances: dict[str, InstanceInfo] = {}
        self._next_public = 1

    async def start(self) -> AdoptReport:
        return AdoptReport()

    async def close(self, stop_instances: bool = False) -> None:
        self._instances.clear()

    async def launch(self, spec: InstanceSpec) -> InstanceInfo:
        public = f"127.65.{self._next_public // 250}.{self._next_public % 250 + 1}"
        self._next_public += 1
        info = InstanceInfo(
            spec.instance_id,
            VmState.RUNNING,
            None,
            "tcg",
            spec.vcpus,
            spec.memory_mib,
            spec.mac,
            spec.private_ip,
            public,
            (),
            None,
            time.time(),
        )
        self._instances[spec.instance_id] = info
        return info

    async def reboot(self, instance_id: str) -> None:
        self._get(instance_id)

    async def shutdown(self, instance_id: str, timeout: float = 60.0) -> InstanceExit:
        self._get(instance_id)
        return InstanceExit(instance_id, ExitReason.HOST_SHUTDOWN, "fake", time.time())

    async def destroy(self, instance_id: str) -> None:
        self._instances.pop(instance_id, None)

    def console_output(self, instance_id: str, max_bytes: int = 64 * 1024) -> bytes:
        return f"fake node: no guest runs for {self._get(instance_id).instance_id}\n".encode()

    def health(self, instance_id: str) -> InstanceHealth:
        """Nothing observed: no guest runs (AWS's ``insufficient-data``)."""
        self._get(instance_id)
        unknown = Check("insufficient-data", "the fake node runs no guests")
        return InstanceHealth(instance_id, unknown, unknown)

    def summary(self) -> dict[str, Any]:
        return {
            "accelerator": self.accelerator,
            "accelerator_reason": self.accelerator_reason,
            "instances_by_health": {"insufficient-data": len(self._instances)},
            "last_fault": None,
        }

    def capacity(self) -> Capacity:
        """Room for thousands of instances (the API benchmarks launch 1,000), not for an
        unbounded MaxCount: one RunInstances writes every instance row it launches."""
        return Capacity(10_000, 10_000 * 32 * 1024, 0, 0)

    def _get(self, instance_id: str) -> InstanceInfo:
        try:
            return self._instances[instance_id]
        except KeyError:
            raise UnknownInstance(instance_id) from None
