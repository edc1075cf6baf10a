"""What a node leaves on the host for one data dir, and ending it when no node runs.

A node killed by SIGKILL leaves its QEMU guests (on purpose: the next node adopts them),
dnsmasq and the namespace ``karri-<hash>``. ``clean`` ends them for `karri down` and the
test suite: recorded QEMU pids and the dnsmasq pid file are signalled only while pid and
start ticks still match, and any other process is signalled only while it lives in the
data dir's namespace, so nothing of another cloud is touched. nftables tables live inside
the namespace and go with it. Call it only while no node runs on the data dir.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from karri.node.commands import Process, pid_alive, terminate
from karri.node.netns import NETNS_DIR, namespace_name, namespace_processes
from karri.node.store import RECORD, InstanceRecord


@dataclass(frozen=True)
class Leftovers:
    """A data dir's node pieces still on the host."""

    namespace: str | None  # its name, if it exists
    guests: tuple[Process, ...]  # recorded QEMUs still running
    dnsmasq: Process | None
    others: tuple[Process, ...]  # anything else running inside the namespace

    def __bool__(self) -> bool:
        return bool(self.namespace or self.guests or self.dnsmasq or self.others)

    def describe(self) -> str:
        parts = [f"namespace {self.namespace}"] if self.namespace else []
        parts += [f"QEMU pid {pid}" for pid, _ in self.guests]
        parts += [f"dnsmasq pid {self.dnsmasq[0]}"] if self.dnsmasq else []
        parts += [f"pid {pid} in the namespace" for pid, _ in self.others]
        return ", ".join(parts) or "nothing"


def leftovers(data_dir: Path) -> Leftovers:
    name = namespace_name(data_dir)
    ns = name if (NETNS_DIR / name).exists() else None
    guests = tuple(_recorded_guests(data_dir / "node" / "instances"))
    dnsmasq = _pid_file(data_dir / "node" / "network" / "dnsmasq.pid")
    known = {pid for pid, _ in guests} | ({dnsmasq[0]} if dnsmasq else set())
    others = tuple(p for p in namespace_processes(name) if p[0] not in known) if ns else ()
    return Leftovers(ns, guests, dnsmasq, others)


def clean(data_dir: Path, *, guests: bool, timeout: float = 10.0) -> Leftovers:
    """End what is left; what was there is returned.

    Without ``guests`` running guests are kept, and with them their namespace and dnsmasq
    (the next node adopts them); with it they are ended too.
    """
    found = leftovers(data_dir)
    if (found.guests or found.others) and not guests:
        return found
    terminate([*found.guests, *found.others, *([found.dnsmasq] if found.dnsmasq else [])], timeout)
    (data_dir / "node" / "network" / "dnsmasq.pid").unlink(missing_ok=True)
    if found.namespace:
        subprocess.run(["ip", "netns", "delete", found.namespace], capture_output=True, check=False)
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
