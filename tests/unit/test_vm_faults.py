"""How a QEMU stop is read: an accelerator's internal error is a fault, a pause is not.

QEMU's real ``internal-error`` state needs a KVM that fails mid-guest; the node's reaction
to it (relaunch under TCG) is exercised with real guests in tests/node/test_health.py.
Here a stand-in monitor answers ``query-status`` the way QEMU does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from karri.node import ImageRoot, InstanceSpec
from karri.node.qemu import InstanceFiles
from karri.node.store import InstanceRecord
from karri.node.vm import Vm


class Monitor:
    def __init__(self, status: str) -> None:
        self.status = status

    async def query_status(self) -> str:
        return self.status


def _vm(tmp_path: Path, status: str, events: list[str]) -> Vm:
    spec = InstanceSpec(
        "i-0000000f", 1, 64, ImageRoot(tmp_path / "disk"), "52:54:00:00:00:0f", "172.31.0.15"
    )
    (tmp_path / "qemu.log").write_text(
        "2026-12-05T08:00:00 qemu: starting\n"
        "KVM internal error. Suberror: 1\n"
        "emulation failure\n"
        "EAX=00000000 EBX=00000000\n"
    )
    vm = Vm(
        InstanceRecord(spec, "kvm", "kt0000000f", 0.0),
        InstanceFiles(tmp_path),
        1 << 20,
        lambda vm: None,
        lambda vm, device: asyncio.sleep(0),
        lambda vm, name: events.append(name),
    )
    vm.qmp = Monitor(status)  # type: ignore[assignment]
    return vm


def test_an_internal_error_stop_is_reported_with_qemus_words(tmp_path: Path) -> None:
    events: list[str] = []
    vm = _vm(tmp_path, "internal-error", events)
    asyncio.run(vm._stopped())
    assert events == ["internal-error"]
    assert vm.fault == "KVM internal error. Suberror: 1 emulation failure"


def test_a_plain_pause_is_no_fault(tmp_path: Path) -> None:
    events: list[str] = []
    vm = _vm(tmp_path, "paused", events)
    asyncio.run(vm._stopped())
    assert events == [] and vm.fault is None and vm.run_status == "paused"
