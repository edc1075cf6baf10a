"""A node controller killed with SIGKILL leaves its guests running; the next one adopts them.

A child process runs a Node, launches D and E and waits until D has booted; the test kills
the child with SIGKILL, then kills E's QEMU by hand (it dies while no node controller
watches), and starts a new Node on the same data dir. The child runs in a mount namespace
of its own (as `ip netns exec` runs a `karri node`): the VPC namespace's name leaves with
it, and the new Node finds the namespace again from the guest's processes. The new Node
is told nothing before its start (as a `karri node` restarted before the cloud reaches
it): the guest's group, which the killed one was told, is in force from what it kept.
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
from karri.node.netns import Namespace, namespace_processes

from . import guests
from .conftest import LoopThread, needs_root

pytestmark = [needs_root, pytest.mark.guests]

REPO = Path(__file__).resolve().parents[2]
D, E = "i-0000000d", "i-0000000e"
IP = {D: "172.31.0.13", E: "172.31.0.14"}
MAC = {D: "52:54:00:00:00:0d", E: "52:54:00:00:00:0e"}
METADATA = {i: guests.metadata(i, IP[i], MAC[i]) for i in (D, E)}
OWN_MOUNTS = ("unshare", "--mount", "--propagation", "slave")  # as `ip netns exec` does

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
        [*OWN_MOUNTS, sys.executable, "-c", CHILD, str(data), str(tiny_image)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    exits: list[InstanceExit] = []
    # told nothing before its start: it keeps what the killed one was told
    node = Node(data, NodeSettings(stop_timeout=30), metadata=METADATA.get, on_exit=exits.append)
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
        assert not guests.vpc_namespace(data).attached()  # its name left with the child
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

        assert guests.vpc_namespace(data).attached()  # found again from its guest
        # still answering: the public address (kernel NAT, the group kept), QMP, metadata
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


def test_a_namespace_whose_name_lost_its_mount_is_found_again(
    loop: LoopThread, tmp_path: Path
) -> None:
    """A namespace made by a process in a mount namespace of its own keeps running with
    what runs in it when that process ends, but its name here is a bare file: ``adopt``
    mounts it again from a process in it; a bare name with no such process is removed."""
    name = guests.vpc_namespace(tmp_path, "vpc-lost").name
    made = f"ip netns add {name} && exec ip netns exec {name} sleep 600"
    holder = subprocess.Popen([*OWN_MOUNTS, "sh", "-c", made])
    lost = Namespace(name)
    try:
        deadline = time.monotonic() + 30
        while not entered_another(holder.pid):
            assert time.monotonic() < deadline, "the holder never entered its namespace"
            time.sleep(0.1)
        assert lost.exists() and not lost.attached()
        assert loop.run(lost.adopt([os.getpid(), holder.pid]))  # its own is passed over
        assert lost.attached()
        assert [pid for pid, _ in namespace_processes(name)] == [holder.pid]
        holder.kill()
        holder.wait()
        subprocess.run(["umount", str(lost.path)], check=True)  # bare again, no holder
        assert not loop.run(lost.adopt([]))
        assert not lost.exists()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def entered_another(pid: int) -> bool:
    """Whether ``pid`` left the test's own network namespace (it entered another)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return False
