"""dnsmasq in a VPC's namespace: each MAC gets its fixed private IP, forever, on the
bridge of its subnet.

Hosts live in a ``--dhcp-hostsfile`` that dnsmasq re-reads on SIGHUP, so a launch never
restarts it. Leases are infinite: guests keep their address while dnsmasq is down (a
crashed or stopped node controller). dnsmasq runs as root inside the namespace (the data
dir is 0700) and serves no DNS (``--port=0``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from karri.node.commands import kill_pid, pid_alive, process_start_ticks
from karri.node.errors import NetworkError
from karri.node.netns import Namespace

log = logging.getLogger("karri.node")


@dataclass(frozen=True)
class DhcpSubnet:
    """A subnet served on its bridge, with its gateway as router."""

    interface: str
    subnet: IPv4Network
    gateway: IPv4Address


class Dnsmasq:
    def __init__(self, ns: Namespace, state_dir: Path) -> None:
        self.ns = ns
        self.subnets: tuple[DhcpSubnet, ...] = ()
        self.hosts_file = state_dir / "dhcp-hosts"
        self.leases = state_dir / "dhcp-leases"
        self.pid_file = state_dir / "dnsmasq.pid"
        self.log_file = state_dir / "dnsmasq.log"
        self._proc: subprocess.Popen | None = None

    async def start(self, subnets: Sequence[DhcpSubnet], hosts: Mapping[str, str]) -> None:
        """Start (after ending a stale one left by a crashed node controller)."""
        await self._end_stale()
        self.subnets = tuple(subnets)
        self._write_hosts(hosts)
        per_subnet = []
        for index, s in enumerate(self.subnets):
            per_subnet += [
                f"--interface={s.interface}",
                f"--dhcp-range=set:s{index},{s.subnet.network_address},static,"
                f"{s.subnet.netmask},infinite",
                f"--dhcp-option=tag:s{index},option:router,{s.gateway}",
            ]
        lease_max = sum(s.subnet.num_addresses for s in self.subnets)
        cmd = self.ns.exec_args(
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--port=0",
            "--user=root",
            "--group=root",
            *per_subnet,
            "--bind-interfaces",
            "--dhcp-authoritative",
            f"--dhcp-hostsfile={self.hosts_file}",
            f"--dhcp-leasefile={self.leases}",
            "--pid-file",  # none: the node keeps its own, with the process start time
            f"--dhcp-lease-max={min(lease_max, 1 << 20)}",
            f"--log-facility={self.log_file}",
        )
        with open(self.log_file, "ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                close_fds=True,
            )
        ticks = process_start_ticks(self._proc.pid)
        self.pid_file.write_text(f"{self._proc.pid} {ticks}\n")
        await asyncio.sleep(0.1)
        if self._proc.poll() is not None:
            raise NetworkError(
                f"dnsmasq exited at start ({self._proc.returncode}): see {self.log_file}"
            )

    async def give(self, ip: str, mac: str, hosts: Mapping[str, str]) -> None:
        """``hosts`` (with ``mac`` → ``ip``) in force, and ``ip`` free for ``mac``: dnsmasq
        does not hand out an address leased to another MAC (an instance that was
        terminated: the lease is infinite), and it reads its leases only at start, so such
        a lease is dropped from the file and dnsmasq started again."""
        if not self._leased_to_another(ip, mac):
            self.set_hosts(hosts)
            return
        await self.stop()
        kept = [line for line in self._lease_lines() if line.split()[2:3] != [ip]]
        self.leases.write_text("".join(line + "\n" for line in kept))
        await self.start(self.subnets, hosts)

    def _lease_lines(self) -> list[str]:
        """The lease file's lines: ``expiry mac ip hostname client-id``."""
        try:
            return [line for line in self.leases.read_text().splitlines() if line.strip()]
        except OSError:
            return []

    def _leased_to_another(self, ip: str, mac: str) -> bool:
        for line in self._lease_lines():
            fields = line.split()
            if len(fields) >= 3 and fields[2] == ip and fields[1].lower() != mac.lower():
                return True
        return False

    def set_hosts(self, hosts: Mapping[str, str]) -> None:
        """Replace the MAC → IP table; dnsmasq picks it up on SIGHUP."""
        self._write_hosts(hosts)
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGHUP)

    async def stop(self) -> None:
        """End our dnsmasq, or the one a crashed node controller left behind."""
        if self._proc is None:
            await self._end_stale()
        elif self._proc.poll() is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(asyncio.to_thread(self._proc.wait), 5)
            except TimeoutError:
                self._proc.kill()
                await asyncio.to_thread(self._proc.wait)
        self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def _write_hosts(self, hosts: Mapping[str, str]) -> None:
        tmp = self.hosts_file.with_suffix(".tmp")
        tmp.write_text("".join(f"{mac},{ip},infinite\n" for mac, ip in sorted(hosts.items())))
        tmp.replace(self.hosts_file)

    async def _end_stale(self) -> None:
        try:
            pid_text, ticks_text = self.pid_file.read_text().split()
            pid, ticks = int(pid_text), int(ticks_text)
        except (OSError, ValueError):
            return
        if kill_pid(pid, ticks):
            log.info("ended a stale dnsmasq (pid %d)", pid)
            for _ in range(50):
                if not pid_alive(pid, ticks):
                    break
                await asyncio.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
