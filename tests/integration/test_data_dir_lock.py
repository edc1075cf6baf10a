"""One live `karri up` per data dir; a killed one blocks nothing and what it left (a VPC
namespace, its dnsmasq) is reclaimed by the next one or by `karri down`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from karri.lock import LOCK_FILE
from karri.node.cleanup import leftovers
from karri.node.commands import pid_alive
from karri.node.netns import namespace_name
from tests.conftest import KARRI, Karri, free_port, start_karri, stop_karri
from tests.integration.guests import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the node needs root (namespaces)")
FAST = ("--no-default-images", "--accelerator", "tcg")  # no images, no KVM probe: no guests


def up(data_dir: Path) -> subprocess.CompletedProcess:
    ports = ["--ec2-port", str(free_port()), "--s3-port", str(free_port())]
    return subprocess.run(
        [KARRI, "up", "--data-dir", str(data_dir), *FAST, *ports],
        capture_output=True,
        text=True,
        timeout=60,
    )


def health(karri: Karri) -> dict:
    with urllib.request.urlopen(f"{karri.ec2_url}/karri/health", timeout=5) as reply:
        return json.loads(reply.read())


def node_ready(karri: Karri) -> bool:
    return health(karri)["components"]["node"] == "ok"


def start_with_node(data_dir: Path) -> Karri:
    """A karri up whose node has started (with no instance, it has no namespace)."""
    karri = start_karri(data_dir, *FAST)
    wait_for("the node", lambda: node_ready(karri), 60)
    return karri


def dnsmasqs(data_dir: Path) -> list[int]:
    """The dnsmasq processes serving one of ``data_dir``'s VPCs."""
    hosts = f"--dhcp-hostsfile={data_dir / 'node' / 'network'}/"
    out = subprocess.run(["pgrep", "-f", re.escape(hosts)], capture_output=True)
    return [int(pid) for pid in out.stdout.split()]


def stale_namespace(data_dir: Path) -> str:
    """A VPC namespace of the data dir, as a killed karri up leaves one."""
    name = namespace_name(data_dir, "vpc-0123456789abcdef0")
    subprocess.run(["ip", "netns", "add", name], check=True)
    return name


def run_in(name: str) -> subprocess.Popen:
    """A process in the namespace, as a guest started just before a kill would be."""
    return subprocess.Popen(["ip", "netns", "exec", name, "sleep", "600"])


def holds_lock(pid: int, data_dir: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    return any(os.path.realpath(fd) == str(data_dir / LOCK_FILE) for fd in fds.iterdir())


def test_a_second_karri_up_on_a_live_data_dir_is_refused(tmp_path: Path) -> None:
    karri = start_karri(tmp_path / "data", *FAST, "--s3-processes", "2")
    try:
        second = up(karri.data_dir)
        assert second.returncode == 1
        assert f"is in use by karri (pid {karri.process.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        assert health(karri)["pid"] == karri.process.pid  # the first one still serves
        # the CLI beside a running karri takes no lock
        assert karri.cli("status", "--json").returncode == 0
        assert karri.create_account("beside").account_name == "beside"
        # no helper karri up starts holds the lock (a guest or dnsmasq that outlives it
        # would block every restart)
        wait_for("the S3 worker", lambda: len(health(karri)["s3_processes"]) == 2, 30)
        workers = [pid for pid in health(karri)["s3_processes"] if pid != karri.process.pid]
        assert workers and not any(holds_lock(pid, karri.data_dir) for pid in workers)
        wait_for("the node", lambda: node_ready(karri), 60)
        assert not any(holds_lock(pid, karri.data_dir) for pid in dnsmasqs(karri.data_dir))
        assert holds_lock(karri.process.pid, karri.data_dir)
    finally:
        stop_karri(karri)


def test_after_sigkill_karri_up_starts_again_and_reclaims_what_was_left(
    tmp_path: Path,
) -> None:
    karri = start_with_node(tmp_path / "data")
    karri.process.kill()
    karri.process.wait()
    name = stale_namespace(karri.data_dir)
    left = run_in(name)
    assert leftovers(karri.data_dir).namespaces == (name,)

    again = start_with_node(karri.data_dir)  # the lock went with the killed one
    try:
        assert left.wait(timeout=10) is not None
        assert not leftovers(karri.data_dir)  # no instance: no namespace, no dnsmasq
    finally:
        if left.poll() is None:
            left.kill()
        stop_karri(again)


def test_karri_down_stops_karri_up_and_leaves_nothing(tmp_path: Path) -> None:
    karri = start_with_node(tmp_path / "data")
    name = stale_namespace(karri.data_dir)
    down = karri.cli("down")
    assert f"stopped karri up (pid {karri.process.pid})" in down.stdout
    assert f"namespace {name}" in down.stdout
    assert karri.process.wait(timeout=5) == 0
    assert not leftovers(karri.data_dir) and not dnsmasqs(karri.data_dir)
    assert "nothing of karri was running" in karri.cli("down").stdout


def kvm_probe(karri: Karri) -> int | None:
    """The KVM probe's QEMU, while karri up runs one (the node has not started yet)."""
    found = subprocess.run(
        ["pgrep", "-P", str(karri.process.pid), "-f", "karri-accel-"], capture_output=True
    ).stdout.split()
    return int(found[0]) if found else None


def test_a_killed_karri_up_leaves_no_kvm_probe_running(tmp_path: Path) -> None:
    karri = start_karri(tmp_path / "data", "--no-default-images")  # a fresh dir probes KVM
    probe = wait_for("a KVM probe or the node", lambda: kvm_probe(karri) or node_ready(karri), 60)
    if probe is True:
        stop_karri(karri)
        pytest.skip("no KVM probe ran here (no /dev/kvm, or it answered at once)")
    karri.process.kill()
    karri.process.wait()
    wait_for("the probe's end", lambda: not pid_alive(probe, None), 10)
