"""A node controller killed with SIGKILL leaves its guests running; the next one adopts them.

A child process runs a Node, launches D and E and waits until D has booted; the test kills
the child with SIGKILL, then kills E's QEMU by hand (it dies while no node controller
watches), and starts a new Node on the same data dir.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from karri.node import ExitReason, InstanceExit, Node, NodeSettings, VmState
from karri.node.commands import pid_alive

from . import guests
from .conftest import LoopThread, needs_root

pytestmark = [needs_root, pytest.mark.guests]

REPO = Path(__file__).resolve().parents[2]
D, E = "i-0000000d", "i-0000000e"
IP = {D: "172.31.0.13", E: "172.31.0.14"}
MAC = {D: "52:54:00:00:00:0d", E: "52:54:00:00:00:0e"}
METADATA = {i: guests.metadata(i, IP[i], MAC[i]) for i in (D, E)}

CHILD = textwrap.dedent(
    f"""
    import asyncio, json, sys
    from pathlib import Path
    from karri.node import Node, NodeSettings
    from tests.node import guests
    from tests.node.test_adopt import D, E, IP, MAC, METADATA

    data, image = Path(sys.argv[1]), Path(sys.argv[2])

    async def main():
        node = Node(data, NodeSettings(), metadata=METADATA.get)
        await node.set_groups(guests.VPC, [guests.OPEN])
        await node.start()
        await node.launch(guests.spec(image, D, IP[D], MAC[D]))
        await node.launch(guests.spec(image, E, IP[E], MAC[E]))
        while b"{guests.BOOTED}" not in node.console_output(D):
            await asyncio.sleep(0.2)
        info = {{i: node.info(i).pid for i in (D, E)}}
        print(json.dumps(info | {{"public_ip": node.info(D).public_ip}}), flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"the child node did not report within {timeout}s")
    return proc.stdout.readline()


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid, None):
        assert time.monotonic() < deadline, f"pid {pid} still there"
        time.sleep(0.1)


def test_a_new_node_adopts_the_guests_a_killed_one_left(
    loop: LoopThread, tiny_image: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    log = open(tmp_path / "child.log", "wb")  # noqa: SIM115 - lives with the child
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), str(tiny_image)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    exits: list[InstanceExit] = []
    node = guests.open_node(
        data, NodeSettings(stop_timeout=30), metadata=METADATA.get, on_exit=exits.append
    )
    started = done = False
    try:
        first = json.loads(_read_line(child, 300))
        pids = {D: first[D], E: first[E]}
        dnsmasq = int(
            (data / "node" / "network" / guests.VPC / "dnsmasq.pid").read_text().split()[0]
        )
        child.kill()  # SIGKILL: no clean-up of any kind
        child.wait()
        assert pid_alive(pids[D], None) and pid_alive(pids[E], None)
        os.kill(pids[E], signal.SIGKILL)
        _wait_gone(pids[E])

        started = True
        report = loop.run(node.start(), 60)
        assert report.running == (D,)
        assert [(e.instance_id, e.reason) for e in report.exited] == [(E, ExitReason.CRASHED)]
        assert "not running" in report.exited[0].detail
        assert loop.call(node.state, E) == VmState.EXITED
        info = loop.call(node.info, D)
        assert info.state == VmState.RUNNING and info.pid == pids[D]  # the very same QEMU
        assert info.public_ip == first["public_ip"]
        assert not pid_alive(dnsmasq, None)  # the stale dnsmasq was replaced
        time.sleep(0.5)
        assert [e.instance_id for e in exits] == [E]

        # still answering: the public address (kernel NAT), QMP (a reset), the metadata
        with socket.create_connection((info.public_ip, 22), timeout=30) as sock:
            assert sock.recv(64).startswith(b"SSH-2.0-dropbear")
        loop.run(node.reboot(D))
        guests.wait_console(loop, node, D, f"karri-tiny: instance {D} boot 2$", 240)
        after = guests.console(loop, node, D).split("boot 1\n", 1)[1]
        assert "metadata service unreachable" not in after

        loop.run(node.close(stop_instances=True), 120)
        assert [e.reason for e in exits if e.instance_id == D] == [ExitReason.HOST_SHUTDOWN]
        assert not pid_alive(pids[D], None)
        assert not guests.vpc_namespace(data).exists()
        done = True
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        log.close()
        if not done:  # a failure half-way: adopt whatever is left and stop it
            if not started:
                loop.run(node.start(), 60)
            loop.run(node.close(stop_instances=True), 120)


def test_a_stale_namespace_is_removed_at_start(loop: LoopThread, tmp_path: Path) -> None:
    """A node controller killed after its last guest ended leaves a VPC namespace (with its
    dnsmasq) behind; the next one removes it and ends whatever still runs in it."""
    data = tmp_path / "data"
    stale = guests.vpc_namespace(data, "vpc-gone")
    subprocess.run(["ip", "netns", "add", stale.name], check=True)
    # as dnsmasq, or a QEMU started just before the kill and not yet recorded, would be
    stray = subprocess.Popen(stale.exec_args("sleep", "600"))
    node = Node(data)
    try:
        loop.run(node.start(), 60)
        assert stray.wait(timeout=5) == -signal.SIGTERM
        assert not stale.exists()
    finally:
        if stray.poll() is None:
            stray.kill()
        loop.run(node.close(), 60)
        subprocess.run(["ip", "netns", "delete", stale.name], capture_output=True)
