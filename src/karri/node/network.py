"""The instances' network: one namespace per data dir, a bridge, a tap per instance.

Inside the namespace ``karri-<hash of the data dir>``:
- ``lo`` up with 169.254.169.254/32 (the metadata service listens there);
- bridge ``br0`` holding the private gateway (the subnet's first address), with a fixed
  MAC so that guests' ARP entries for the gateway survive taps coming and going;
- a tap ``kt<instance hex>`` per instance, enslaved to the bridge;
- an nftables ``bridge`` table that lets a tap send only from its instance's MAC and IP
  (plus DHCP and ARP probes), so no guest can pose as another: the metadata service
  identifies instances by source address;
- dnsmasq giving each MAC its fixed IP.

The host's own namespace is never touched. Each namespace is isolated, so every cloud on
a host may use the same subnet. QEMU joins the namespace through ``ip netns exec``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address
from pathlib import Path

from karri.node.commands import CommandError, terminate
from karri.node.dhcp import Dnsmasq
from karri.node.errors import NetworkError
from karri.node.netns import Namespace, namespace_name, namespace_processes

log = logging.getLogger("karri.node")

BRIDGE = "br0"
METADATA_IP = "169.254.169.254"
TAP_PREFIX = "kt"
NFT_TABLE = "karri"
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

NFT_RULES = f"""
table bridge {NFT_TABLE} {{
  set ips {{ type ifname . ether_addr . ipv4_addr; }}
  set macs {{ type ifname . ether_addr; }}
  chain prerouting {{
    type filter hook prerouting priority -200; policy accept;
    iifname "{TAP_PREFIX}*" jump from_guest
  }}
  chain from_guest {{
    ether type ip iifname . ether saddr . ip saddr @ips accept
    ether type arp iifname . ether saddr . arp saddr ip @ips iifname . arp saddr ether @macs accept
    ether type arp iifname . ether saddr @macs arp saddr ip 0.0.0.0 accept
    ether type ip iifname . ether saddr @macs ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept
    drop
  }}
}}
"""


@dataclass(frozen=True)
class Port:
    """An instance's place on the bridge."""

    instance_id: str
    tap: str
    mac: str
    ip: str


def tap_name(instance_id: str) -> str:
    """``kt`` + the id's hex digits, within the 15 characters of an interface name."""
    return (TAP_PREFIX + instance_id.split("-", 1)[-1])[:15]


def _elements(port: Port) -> tuple[str, str]:
    return f'"{port.tap}" . {port.mac} . {port.ip}', f'"{port.tap}" . {port.mac}'


class InstanceNetwork:
    def __init__(self, data_dir: Path, state_dir: Path, subnet: str) -> None:
        self.ns = Namespace(namespace_name(data_dir))
        self.subnet = IPv4Network(subnet)
        if self.subnet.num_addresses < 8:
            raise NetworkError(f"subnet {subnet} is too small")
        self.gateway = self.subnet.network_address + 1
        self.state_dir = state_dir
        self.dhcp = Dnsmasq(self.ns, state_dir, BRIDGE, self.subnet, self.gateway)
        self.ports: dict[str, Port] = {}

    # --- lifecycle -----------------------------------------------------------------
    async def start(self, live: Iterable[Port]) -> None:
        """Set up the namespace, keeping what ``live`` instances (adopted QEMUs) use.

        A namespace left by a crashed node controller is reused when instances still run
        in it and rebuilt from scratch otherwise.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.ports = {p.instance_id: p for p in live}
        if self.ns.exists() and not self.ports:
            log.info("removing the stale namespace %s", self.ns.name)
            await self.dhcp.stop()
            # whatever else runs in it (a QEMU started just before a crash, not yet recorded)
            left = namespace_processes(self.ns.name)
            if left:
                log.warning("ending %d process(es) left in %s", len(left), self.ns.name)
                await asyncio.to_thread(terminate, left, 5.0)
            await self.ns.delete()
        if not self.ns.exists():
            await self.ns.create()
        await self._configure()
        await self.dhcp.start(self._hosts())
        log.info(
            "instance network: namespace %s, %s via %s", self.ns.name, self.subnet, self.gateway
        )

    async def close(self, delete_namespace: bool) -> None:
        await self.dhcp.stop()
        if delete_namespace and self.ns.exists():
            await self.ns.delete()

    async def _configure(self) -> None:
        mac = "02:" + ":".join(
            hashlib.sha256(self.ns.name.encode()).hexdigest()[i : i + 2] for i in range(0, 10, 2)
        )
        prefix = self.subnet.prefixlen
        await self.ns.ip_batch(
            [
                "link set lo up",
                f"address replace {METADATA_IP}/32 dev lo",
                f"link add {BRIDGE} address {mac} type bridge",
            ],
            force=True,  # the bridge may already be there
        )
        await self.ns.ip_batch(
            [
                f"link set {BRIDGE} address {mac}",
                f"address replace {self.gateway}/{prefix} dev {BRIDGE}",
                f"link set {BRIDGE} up",
            ]
        )
        existing = await self._taps()
        wanted = {p.tap for p in self.ports.values()}
        await self.ns.ip_batch([f"link delete {tap}" for tap in existing - wanted], force=True)
        for port in self.ports.values():
            if port.tap not in existing:
                await self._add_tap(port.tap)
        script = f"add table bridge {NFT_TABLE}\ndelete table bridge {NFT_TABLE}\n{NFT_RULES}"
        for port in self.ports.values():
            script += self._nft_add(port)
        await self.ns.nft(script)

    async def _taps(self) -> set[str]:
        out = await self.ns.ip("-o", "link", "show")
        names = {
            line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line
        }
        return {n for n in names if n.startswith(TAP_PREFIX)}

    async def _add_tap(self, tap: str) -> None:
        await self.ns.ip_batch(
            [
                f"tuntap add dev {tap} mode tap",
                f"link set {tap} master {BRIDGE}",
                f"link set {tap} up",
            ]
        )

    # --- instances -----------------------------------------------------------------
    def check(self, instance_id: str, mac: str, ip: str) -> None:
        """Refuse an address outside the subnet, a reserved one, or one already in use."""
        if not _MAC.match(mac) or int(mac[:2], 16) & 1:
            raise NetworkError(f"{mac} is not a unicast MAC address (lowercase, colon-separated)")
        addr = ip_address(ip)
        if not isinstance(addr, IPv4Address) or addr not in self.subnet:
            raise NetworkError(f"{ip} is not in the instances' subnet {self.subnet}")
        if addr in (self.subnet.network_address, self.gateway, self.subnet.broadcast_address):
            raise NetworkError(f"{ip} is reserved in {self.subnet}")
        for port in self.ports.values():
            if port.instance_id != instance_id and (port.ip == ip or port.mac == mac):
                raise NetworkError(f"{ip}/{mac} is already used by {port.instance_id}")

    async def plug(self, port: Port) -> None:
        """The instance's tap, its anti-spoofing entries and its DHCP host."""
        self.check(port.instance_id, port.mac, port.ip)
        if self.ports.get(port.instance_id) == port:
            return  # kept by start() for a QEMU that still runs: its tap is in use
        await self.unplug(port.instance_id)
        await self._add_tap(port.tap)
        await self.ns.nft(self._nft_add(port))
        self.ports[port.instance_id] = port
        self.dhcp.set_hosts(self._hosts())

    async def unplug(self, instance_id: str) -> None:
        port = self.ports.pop(instance_id, None)
        if port is None:
            return
        self.dhcp.set_hosts(self._hosts())
        full, mac = _elements(port)
        try:
            await self.ns.nft(
                f"delete element bridge {NFT_TABLE} ips {{ {full} }}\n"
                f"delete element bridge {NFT_TABLE} macs {{ {mac} }}\n"
            )
        except CommandError as exc:
            log.warning("nft cleanup for %s: %s", instance_id, exc)
        await self.ns.ip_batch([f"link delete {port.tap}"], force=True)

    def _nft_add(self, port: Port) -> str:
        full, mac = _elements(port)
        return (
            f"add element bridge {NFT_TABLE} ips {{ {full} }}\n"
            f"add element bridge {NFT_TABLE} macs {{ {mac} }}\n"
        )

    def _hosts(self) -> dict[str, str]:
        return {p.mac: p.ip for p in self.ports.values()}
