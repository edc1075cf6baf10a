"""dnsmasq in a VPC's namespace: each MAC gets its fixed private IP on the bridge of its
subnet.

Hosts live in a ``--dhcp-hostsfile`` that dnsmasq re-reads on SIGHUP, so a launch never
restarts it. Leases last an hour, as AWS's (``LEASE_SECONDS``): a guest renews at half of
it and so sees a changed option set, as on AWS. dnsmasq outlives a node controller that
stops or crashes while guests run (the next one ends it and starts its own on the same
lease file), so guests keep renewing while no karri runs. dnsmasq runs as root inside the
namespace (the data dir is 0700). It serves DNS only as the VPC's resolver (``dns.py``),
else ``--port=0``.
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

from karri.node.commands import Process, kill_pid, pid_alive, process_start_ticks
from karri.node.dns import Resolver, resolver_args
from karri.node.errors import NetworkError
from karri.node.netns import Namespace

log = logging.getLogger("karri.node")

LEASE_SECONDS = 3600  # AWS's IPv4 lease
MIN_LEASE_SECONDS = 120  # dnsmasq's shortest


DhcpOptions = tuple[tuple[str, tuple[str, ...]], ...]
"""A VPC's DHCP options as (AWS key, values) pairs, in a fixed order."""
# AWS's DHCP option keys and dnsmasq's names of them (RFC 2132 options 15, 6, 42, 44, 46)
OPTION_NAMES = {
    "domain-name": "domain-name",
    "domain-name-servers": "dns-server",
    "ntp-servers": "ntp-server",
    "netbios-name-servers": "netbios-ns",
    "netbios-node-type": "netbios-nodetype",
}


def dhcp_options(options: Mapping[str, Sequence[str]]) -> DhcpOptions:
    """The options dnsmasq can hand out, each value checked (no comma or space: they
    are dnsmasq arguments)."""
    kept = []
    for key in OPTION_NAMES:
        values = tuple(str(v) for v in options.get(key, ()))
        for value in values:
            if not value or any(c in value for c in ", \t\n"):
                raise NetworkError(f"bad DHCP option value {value!r} for {key}")
        if values:
            kept.append((key, values))
    return tuple(kept)


def option_args(options: DhcpOptions) -> list[str]:
    """dnsmasq's ``--dhcp-option`` of each (for every subnet). Domain names are given as
    option 15 (the first) and 119, the search list (all of them)."""
    args = []
    for key, values in options:
        args.append(f"--dhcp-option=option:{OPTION_NAMES[key]},{','.join(values)}")
        if key == "domain-name":
            args[-1] = f"--dhcp-option=option:domain-name,{values[0]}"
            args.append(f"--dhcp-option=option:domain-search,{','.join(values)}")
    return args


@dataclass(frozen=True)
class DhcpSubnet:
    """A subnet served on its bridge, with its gateway as router."""

    interface: str
    subnet: IPv4Network
    gateway: IPv4Address


class Dnsmasq:
    def __init__(self, ns: Namespace, state_dir: Path, lease_seconds: int = LEASE_SECONDS) -> None:
        self.ns = ns
        self.lease_seconds = max(lease_seconds, MIN_LEASE_SECONDS)
        self.subnets: tuple[DhcpSubnet, ...] = ()
        self.options: DhcpOptions = ()
        self.resolver: Resolver | None = None
        self.mtu: int | None = None
        self.hosts_file = state_dir / "dhcp-hosts"
        self.leases = state_dir / "dhcp-leases"
        self.pid_file = state_dir / "dnsmasq.pid"
        self.log_file = state_dir / "dnsmasq.log"
        self._proc: subprocess.Popen | None = None

    async def start(
        self,
        subnets: Sequence[DhcpSubnet],
        hosts: Mapping[str, str],
        options: DhcpOptions = (),
        resolver: Resolver | None = None,
        mtu: int | None = None,
    ) -> None:
        """Start (after ending a stale one left by a crashed node controller); with a
        ``resolver``, it answers DNS there too; with an ``mtu``, it tells the guests that
        ask (option 26: the VPC's overlay, ``overlay.py``)."""
        await self._end_stale()
        self.subnets = tuple(subnets)
        self.options = options
        self.resolver = resolver
        self.mtu = mtu
        dns = resolver_args(resolver) if resolver else ["--port=0"]
        self._write_hosts(hosts)
        per_subnet = []
        for index, s in enumerate(self.subnets):
            per_subnet += [
                f"--interface={s.interface}",
                f"--dhcp-range=set:s{index},{s.subnet.network_address},static,"
                f"{s.subnet.netmask},{self.lease_seconds}",
                f"--dhcp-option=tag:s{index},option:router,{s.gateway}",
            ]
        lease_max = sum(s.subnet.num_addresses for s in self.subnets)
        cmd = self.ns.exec_args(
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            *dns,
            "--user=root",
            "--group=root",
            *per_subnet,
            *option_args(options),
            *([f"--dhcp-option=option:mtu,{mtu}"] if mtu is not None else []),
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
        terminated: until its lease ends), and it reads its leases only at start, so such
        a lease is dropped from the file and dnsmasq started again."""
        if not self._leased_to_another(ip, mac):
            self.set_hosts(hosts)
            return
        await self.stop()
        kept = [line for line in self._lease_lines() if line.split()[2:3] != [ip]]
        self.leases.write_text("".join(line + "\n" for line in kept))
        await self.start(self.subnets, hosts, self.options, self.resolver, self.mtu)

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

    def leave(self) -> None:
        """Leave dnsmasq running for the guests that outlive this node controller (the
        next one ends it by its pid file)."""
        self._proc = None

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
        tmp.write_text("".join(f"{mac},{ip}\n" for mac, ip in sorted(hosts.items())))
        tmp.replace(self.hosts_file)

    def left(self) -> Process | None:
        """The dnsmasq a node controller before this one left running, if it still runs
        (pid, start ticks)."""
        try:
            pid_text, ticks_text = self.pid_file.read_text().split()
            pid, ticks = int(pid_text), int(ticks_text)
        except (OSError, ValueError):
            return None
        return (pid, ticks) if pid_alive(pid, ticks) else None

    async def _end_stale(self) -> None:
        stale = self.left()
        if stale is None:
            self.pid_file.unlink(missing_ok=True)
            return
        pid, ticks = stale
        if kill_pid(pid, ticks):
            log.info("ended a stale dnsmasq (pid %d)", pid)
            for _ in range(50):
                if not pid_alive(pid, ticks):
                    break
                await asyncio.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
