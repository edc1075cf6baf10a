"""Health from evidence: real TCG guests that panic, freeze, reboot, and a KVM that fails.

Each status a test waits for is what the node observed (DHCP, ARP answers, pvpanic,
the QEMU process), never what it asked for.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from karri.node import InstanceHealth, InstanceMetadata, Node, NodeEvent, NodeSettings

from . import guests
from .conftest import LoopThread, needs_root

pytestmark = [needs_root, pytest.mark.guests]

PANICS, FREEZES, REBOOTS = "i-000000a1", "i-000000a2", "i-000000a3"
IP = {PANICS: "172.31.0.21", FREEZES: "172.31.0.22", REBOOTS: "172.31.0.23"}


def _mac(ip: str) -> str:
    return f"52:54:00:00:01:{int(ip.rsplit('.', 1)[1]):02x}"


MAC = {iid: _mac(ip) for iid, ip in IP.items()}


def wait_health(
    loop: LoopThread, node: Node, iid: str, ok: Callable[[InstanceHealth], bool], timeout=120
) -> InstanceHealth:
    deadline = time.monotonic() + timeout
    while True:
        health = loop.call(node.health, iid)
        if ok(health):
            return health
        if time.monotonic() > deadline:
            raise AssertionError(f"{iid}: still {health} after {timeout}s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def node(
    loop: LoopThread, tiny_image: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("health")
    panic = guests.user_data("sleep 2; echo c > /proc/sysrq-trigger")
    meta = {
        PANICS: guests.metadata(PANICS, IP[PANICS], MAC[PANICS], user_data=panic),
        FREEZES: guests.metadata(FREEZES, IP[FREEZES], MAC[FREEZES]),
        REBOOTS: guests.metadata(REBOOTS, IP[REBOOTS], MAC[REBOOTS]),
    }
    node = guests.open_node(
        tmp / "data",
        NodeSettings(accelerator="tcg", reboot_timeout=60),
        metadata=meta.get,
    )
    loop.run(node.start(), 60)
    try:
        yield node
    finally:
        for iid in IP:
            loop.run(node.destroy(iid), 60)
        loop.run(node.close(), 60)


def test_a_guest_is_initializing_until_it_shows_life_then_ok(
    loop: LoopThread, node: Node, tiny_image: Path
) -> None:
    loop.run(node.launch(guests.spec(tiny_image, REBOOTS, IP[REBOOTS], MAC[REBOOTS])))
    first = loop.call(node.health, REBOOTS)
    assert first.system.status == "ok"
    assert first.instance.status == "initializing"  # the kernel has not even asked DHCP
    health = wait_health(loop, node, REBOOTS, lambda h: h.instance.status == "ok")
    signs = ("sent a DHCP request", "answered ARP", "asked the metadata service")
    assert health.instance.reason in signs


def test_reboot_shuts_the_guest_down_by_acpi_then_boots_it_again(
    loop: LoopThread, node: Node
) -> None:
    guests.wait_console(loop, node, REBOOTS, guests.BOOTED)
    loop.run(node.reboot(REBOOTS))
    booted = guests.wait_console(loop, node, REBOOTS, rf"instance {REBOOTS} boot 2", 180)
    text = guests.console(loop, node, REBOOTS)
    assert "karri-tiny: ACPI power button" in text[: booted.start()]
    assert "karri-tiny: shutting down" in text[: booted.start()]
    wait_health(loop, node, REBOOTS, lambda h: h.instance.status == "ok")


def test_a_panicked_guest_is_impaired_until_rebooted(
    loop: LoopThread, node: Node, tiny_image: Path
) -> None:
    loop.run(node.launch(guests.spec(tiny_image, PANICS, IP[PANICS], MAC[PANICS])))
    health = wait_health(loop, node, PANICS, lambda h: h.instance.status == "impaired", 180)
    assert health.instance.reason == "the guest kernel panicked"
    assert health.instance.impaired_since and health.system.status == "ok"
    assert loop.call(node.state, PANICS) == "running"  # left as AWS leaves it
    loop.run(node.reboot(PANICS))  # a panicked guest gets a hard reset at once
    guests.wait_console(loop, node, PANICS, rf"instance {PANICS} boot 2", 180)
    wait_health(loop, node, PANICS, lambda h: h.instance.status == "ok")


def test_a_frozen_qemu_is_impaired_and_recovers_when_continued(
    loop: LoopThread, node: Node, tiny_image: Path
) -> None:
    loop.run(node.launch(guests.spec(tiny_image, FREEZES, IP[FREEZES], MAC[FREEZES])))
    wait_health(loop, node, FREEZES, lambda h: h.instance.status == "ok", 180)
    pid = loop.call(node.info, FREEZES).pid
    assert pid
    os.kill(pid, signal.SIGSTOP)
    try:
        frozen = wait_health(
            loop,
            node,
            FREEZES,
            lambda h: h.system.status == "impaired" and h.instance.status == "impaired",
        )
        assert "SIGSTOP" in frozen.system.reason and "ARP" in frozen.instance.reason
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_health(
        loop, node, FREEZES, lambda h: h.system.status == "ok" and h.instance.status == "ok"
    )


# --- a KVM that runs the probe but not the guest -------------------------------------

SILENT = "i-000000b1"
SILENT_IP = "172.31.0.31"


def _nested_qemu(tmp: Path, broken: Path) -> str:
    """A QEMU that behaves as a nested host's: everything really runs under TCG, but once
    ``broken`` exists, a KVM guest stays silent (its kernel gets no console and no init)
    and the KVM probe sees QEMU's internal error."""
    script = tmp / "qemu-nested"
    script.write_text(
        f"""#!/bin/sh
kvm=0
for a; do
    shift
    case "$a" in kvm) a=tcg; kvm=1 ;; host) a=qemu64 ;; esac
    set -- "$@" "$a"
done
if [ $kvm = 1 ] && [ -e {broken} ]; then
    case "$*" in
        *karri.probe*) echo 'KVM internal error. Suberror: 1' >&2; exec sleep 60 ;;
    esac
    exec qemu-system-x86_64 "$@" -append "console=tty0 rdinit=/nonexistent panic=0"
fi
exec qemu-system-x86_64 "$@"
"""
    )
    script.chmod(0o755)
    return str(script)


@pytest.mark.skipif(not os.access("/dev/kvm", os.W_OK), reason="the probe needs a /dev/kvm")
def test_a_guest_silent_under_kvm_is_relaunched_under_tcg(
    loop: LoopThread, tiny_image: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "kvm-broken"
    recoveries: list[tuple[str, NodeEvent]] = []
    metadata = guests.metadata(SILENT, SILENT_IP, _mac(SILENT_IP))
    lookup: dict[str, InstanceMetadata] = {SILENT: metadata}
    node = guests.open_node(
        tmp_path / "data",
        NodeSettings(qemu=_nested_qemu(tmp_path, broken), kvm_life_bound=5, kvm_probe_timeout=120),
        metadata=lookup.get,
        on_recovery=lambda iid, event: recoveries.append((iid, event)),
    )
    loop.run(node.start(), 120)
    try:
        assert node.accelerator == "kvm"  # the probe passed: this QEMU booted the kernel
        broken.touch()
        spec = guests.spec(tiny_image, SILENT, SILENT_IP, _mac(SILENT_IP))
        first = loop.run(node.launch(spec))
        assert first.accelerator == "kvm"
        overlay = tmp_path / "data" / "node" / "instances" / SILENT / "root.qcow2"
        inode = overlay.stat().st_ino
        guests.wait_console(loop, node, SILENT, rf"instance {SILENT} boot", 240)
        info = loop.call(node.info, SILENT)
        assert info.accelerator == "tcg" and info.pid != first.pid
        assert (info.private_ip, info.mac, info.public_ip) == (
            first.private_ip,
            first.mac,
            first.public_ip,
        )
        assert overlay.stat().st_ino == inode  # the same disk
        assert node.accelerator == "tcg" and "faulted under KVM" in node.accelerator_reason
        assert [iid for iid, _ in recoveries] == [SILENT]
        health = wait_health(loop, node, SILENT, lambda h: h.instance.status == "ok")
        assert [e.code for e in health.events] == ["system-reboot"]
        assert "relaunched under TCG" in health.events[0].description
    finally:
        loop.run(node.close(stop_instances=True), 120)
