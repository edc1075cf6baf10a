"""One live `karri up` per data dir; a killed one blocks nothing and leaves no dnsmasq."""

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


def start_with_node(data_dir: Path) -> tuple[Karri, int]:
    """A karri up whose node has started, and the pid of its one dnsmasq."""
    karri = start_karri(data_dir, *FAST)
    wait_for("the node", lambda: node_ready(karri), 60)
    [dnsmasq] = dnsmasqs(data_dir)
    return karri, dnsmasq


def dnsmasqs(data_dir: Path) -> list[int]:
    """The dnsmasq processes serving ``data_dir``'s hosts file."""
    hosts = f"--dhcp-hostsfile={data_dir / 'node' / 'network' / 'dhcp-hosts'}"
    out = subprocess.run(["pgrep", "-f", re.escape(hosts)], capture_output=True)
    return [int(pid) for pid in out.stdout.split()]


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


def test_after_sigkill_karri_up_starts_again_with_one_new_dnsmasq(tmp_path: Path) -> None:
    karri, old = start_with_node(tmp_path / "data")
    karri.process.kill()
    karri.process.wait()
    assert pid_alive(old, None)  # left behind by the killed karri up

    again, new = start_with_node(karri.data_dir)  # the lock went with the killed one
    try:
        assert not pid_alive(old, None) and new != old
        found = leftovers(karri.data_dir)
        assert found.dnsmasq and found.dnsmasq[0] == new and not found.others
    finally:
        stop_karri(again)


def test_karri_down_stops_karri_up_and_leaves_nothing(tmp_path: Path) -> None:
    karri, dnsmasq = start_with_node(tmp_path / "data")
    down = karri.cli("down")
    assert f"stopped karri up (pid {karri.process.pid})" in down.stdout
    assert karri.process.wait(timeout=5) == 0
    assert not leftovers(karri.data_dir)
    assert not pid_alive(dnsmasq, None) and not dnsmasqs(karri.data_dir)
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
