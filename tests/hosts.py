"""Hosts simulated on one machine: each a network namespace with one address on a test
network, for the tests of what crosses hosts (issue 19).

The test network is a bridge (``ul``) inside a namespace of its own (``<prefix>-net``),
never the machine's own namespace: every host's ``eth0`` is a veth whose other end is a
port of that bridge, so what a host serves is reachable from the other hosts only, and
nothing listens on the machine's interfaces. The addresses, ``10.250.<pid % 256>.N/24``
by default, exist only in those namespaces, so runs side by side cannot collide on them;
the namespaces' names carry the test process's pid. The machine's own namespace has no
route of its own to them (it may well route them to its default gateway): a test reaches
its hosts only from inside one of them.

``Host.popen`` runs a command in a host (``ip netns exec``, which execs it: the pid is the
command's own); ``Host.call`` runs a function in a thread that entered the host's
namespace (``Namespace.call``): sockets it opens live there, also when used later from
another thread. ``Hosts.close`` ends what was started in the hosts by pid (SIGTERM, then
SIGKILL), then whatever else still runs in their namespaces (its children), then removes
the namespaces; fixtures call it in ``finally``, so a failing test leaves nothing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from karri.node.commands import Process, pid_alive, process_start_ticks, terminate
from karri.node.netns import NETNS_DIR, Namespace, namespace_processes

T = TypeVar("T")
BRIDGE = "ul"


def sh(*cmd: str, stdin: str | None = None) -> None:
    subprocess.run(cmd, check=True, capture_output=True, input=stdin.encode() if stdin else None)


@dataclass(eq=False)
class Host:
    """A "host": a namespace with loopback up and ``address`` on its ``eth0``."""

    ns: Namespace
    address: str
    started: list[Process] = field(default_factory=list)

    def popen(self, command: Sequence[str], log: Path) -> subprocess.Popen:
        """``command`` running in this host, its output appended to ``log``."""
        with open(log, "ab") as out:
            process = subprocess.Popen(
                self.ns.exec_args(*command), stdout=out, stderr=subprocess.STDOUT
            )
        self.started.append((process.pid, process_start_ticks(process.pid)))
        return process

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` run in a thread inside this host's namespace."""
        return self.ns.call(fn)


class Hosts:
    """The test network and its hosts; ``close`` removes everything."""

    def __init__(self, prefix: str, network: str | None = None) -> None:
        self.prefix = prefix
        self.network = network or f"10.250.{os.getpid() % 256}"  # the first three octets
        self.net = Namespace(f"{prefix}-net")
        self.hosts: list[Host] = []
        sh("ip", "netns", "add", self.net.name)
        sh("ip", "-n", self.net.name, "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "-n", self.net.name, "link", "set", BRIDGE, "up")

    def host(self, n: int) -> Host:
        """Host ``n`` (1-254): namespace ``<prefix>-<n>``, address ``<network>.<n>/24``."""
        host = Host(Namespace(f"{self.prefix}-{n}"), f"{self.network}.{n}")
        self.hosts.append(host)
        sh("ip", "netns", "add", host.ns.name)
        sh("ip", "-n", self.net.name, "link", "add", f"p{n}", "type", "veth", "peer", "name",
           "eth0", "netns", host.ns.name)  # fmt: skip
        sh("ip", "-n", self.net.name, "link", "set", f"p{n}", "master", BRIDGE, "up")
        for line in ("link set lo up", f"address add {host.address}/24 dev eth0",
                     "link set eth0 up"):  # fmt: skip
            sh("ip", "-n", host.ns.name, *line.split())
        return host

    def close(self) -> None:
        for host in self.hosts:
            terminate([p for p in host.started if pid_alive(*p)], timeout=30)
            terminate(namespace_processes(host.ns.name), timeout=30)
        for ns in [*(host.ns for host in self.hosts), self.net]:
            subprocess.run(["ip", "netns", "delete", ns.name], check=False, capture_output=True)

    def left(self) -> list[str]:
        """The namespaces of this prefix that still exist."""
        try:
            return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(f"{self.prefix}-"))
        except OSError:
            return []
