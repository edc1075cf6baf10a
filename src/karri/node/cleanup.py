"""What a node leaves on the host for one data dir, and ending it when no node runs.

A node killed by SIGKILL leaves its QEMU guests (on purpose: the next node adopts them),
and for each VPC with instances a namespace ``karri-<hash of the data dir>-<hash of the
VPC>`` with its dnsmasq, security groups and public addresses (netns.py). ``clean`` ends
them for `karri down` and the test suite: recorded QEMU pids and the dnsmasq pid files are
signalled only while pid and start ticks still match, and any other process is signalled
only while it lives in one of the data dir's namespaces, so nothing of another cloud is
touched. nftables tables live inside the namespaces and go with them, and so do the host's
ends of their veths with the public addresses' routes. Call it only while no node runs on
the data dir.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from karri.node.commands import Process, pid_alive, terminate
from karri.node.netns import data_dir_namespaces, namespace_processes
from karri.node.store import RECORD, InstanceRecord


@dataclass(frozen=True)
class Leftovers:
    """A data dir's node pieces still on the host."""

    namespaces: tuple[str, ...]  # one per VPC with instances, when the node was killed
    guests: tuple[Process, ...]  # recorded QEMUs still running
    dnsmasqs: tuple[Process, ...]  # one per VPC namespace
    others: tuple[Process, ...]  # anything else running inside the namespaces

    def __bool__(self) -> bool:
        return bool(self.namespaces or self.guests or self.dnsmasqs or self.others)

    def describe(self) -> str:
        parts = [f"namespace {name}" for name in self.namespaces]
        parts += [f"QEMU pid {pid}" for pid, _ in self.guests]
        parts += [f"dnsmasq pid {pid}" for pid, _ in self.dnsmasqs]
        parts += [f"pid {pid} in a namespace" for pid, _ in self.others]
        return ", ".join(parts) or "nothing"


def _dnsmasq_pid_files(data_dir: Path) -> list[Path]:
    network = data_dir / "node" / "network"
    return [*network.glob("*/dnsmasq.pid"), network / "dnsmasq.pid"]  # + before VPCs


def leftovers(data_dir: Path) -> Leftovers:
    namespaces = tuple(data_dir_namespaces(data_dir))
    guests = tuple(_recorded_guests(data_dir / "node" / "instances"))
    dnsmasqs = tuple(p for f in _dnsmasq_pid_files(data_dir) if (p := _pid_file(f)))
    known = {pid for pid, _ in (*guests, *dnsmasqs)}
    others = tuple(p for name in namespaces for p in namespace_processes(name) if p[0] not in known)
    return Leftovers(namespaces, guests, dnsmasqs, others)


def clean(data_dir: Path, *, guests: bool, timeout: float = 10.0) -> Leftovers:
    """End what is left; what was there is returned.

    Without ``guests`` running guests are kept, and with them their namespaces (the
    groups and public addresses in force there) and dnsmasq (the next node adopts them);
    with it they are ended too. A namespace's veth and its host routes go with it.
    """
    found = leftovers(data_dir)
    if (found.guests or found.others) and not guests:
        return found
    terminate([*found.guests, *found.others, *found.dnsmasqs], timeout)
    for pid_file in _dnsmasq_pid_files(data_dir):
        pid_file.unlink(missing_ok=True)
    for name in found.namespaces:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    return found


def _recorded_guests(instances: Path) -> list[Process]:
    live = []
    for record_file in sorted(instances.glob(f"*/{RECORD}")):
        try:
            record = InstanceRecord.load(record_file.parent)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        # without its start ticks a pid is no proof (a QEMU left so is found in the namespace)
        process = (record.pid or 0, record.start_ticks)
        if process[0] and process[1] is not None and pid_alive(*process):
            live.append(process)
    return live


def _pid_file(path: Path) -> Process | None:
    try:
        pid_text, ticks_text = path.read_text().split()
        process = int(pid_text), int(ticks_text)
    except (OSError, ValueError):
        return None
    return process if pid_alive(*process) else None
