"""1:1 NAT of public addresses from the host's loopback pool to private IPs in a VPC.

A single host has no routable addresses to hand out, so public IPs come from the host's
loopback range (127.64.0.0/16). The kernel alone carries every port of such an address
into the VPC's namespace, with no process of karri in the path:
- a veth pair joins the host (``host_if``, an address of a link-local /30) to the
  namespace (``uplink``, the other address of the /30);
- each public IP gets a /32 route in the host's ``local`` table through the veth: it beats
  the host's ``127.0.0.0/8`` local route, and ``ip route add`` failing with "File exists"
  is how several clouds on one host keep apart (the first one claims an address);
- ``route_localnet`` on ``host_if`` (and nowhere else) lets the host accept the replies,
  which come from a loopback source;
- in the namespace an ``ip`` nat table maps the public IP to the private one (DNAT, whole
  address) for packets from the uplink; conntrack undoes it on the replies, and the
  namespace forwards (``ip_forward``) between the uplink and the bridge, so the forward
  hook and the security groups (firewall.py) see the packets with the private address.
Everything on the host side belongs to the veth: deleting it (or the namespace, which
takes the veth with it) removes the routes too. No host table, interface or sysctl other
than karri's own veth is touched. Guests cannot use these addresses themselves (a guest
sends 127.0.0.0/8 to its own loopback), so there is no hairpin path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Protocol

from karri.node.commands import CommandError, run
from karri.node.errors import NetworkError

UPLINK = "uplink"
TABLE = "karri_nat"
LINK_LOCAL = IPv4Network("169.254.0.0/16")


class NatHost(Protocol):
    """The VPC's namespace (node/netns.py's Namespace)."""

    name: str

    async def ip(self, *args: str) -> str: ...

    async def nft(self, script: str) -> str: ...

    def exec_args(self, *cmd: str) -> list[str]: ...


def transit_network(seed: str) -> IPv4Network:
    """A /30 of 169.254.0.0/16 picked by ``seed`` (169.254.169.0/24, the metadata
    service's, excluded). Two clouds that draw the same one still work: each /30 lives on
    its own veth link."""
    digest = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    while True:
        net = IPv4Network((int(LINK_LOCAL.network_address) + (digest % (1 << 14)) * 4, 30))
        if net.network_address.packed[2] != 169:
            return net
        digest //= 1 << 14


class PublicPool:
    """The order in which a node tries the addresses of its public pool: the one asked
    for first, then from a point drawn from ``seed`` on (several clouds on one host start
    in different places; ``LoopbackNat.associate`` is the claim that decides)."""

    def __init__(self, pool: str, seed: str, tries: int = 256) -> None:
        self.pool = IPv4Network(pool)
        self.tries = tries
        self._start = int(hashlib.sha256(seed.encode()).hexdigest(), 16)

    def candidates(self, want: str | None = None) -> Iterator[str]:
        if want and IPv4Address(want) in self.pool:
            yield want
        size = self.pool.num_addresses
        first = int(self.pool.network_address)
        for i in range(self.tries):
            address = IPv4Address(first + (self._start + i) % size)
            if address not in (self.pool.network_address, self.pool.broadcast_address):
                yield str(address)


class LoopbackNat:
    def __init__(self, ns: NatHost, host_if: str, transit: IPv4Network) -> None:
        self.ns = ns
        self.host_if = host_if
        self.host_ip, self.ns_ip = list(transit.hosts())[:2]
        self.prefix = transit.prefixlen
        self.mapped: dict[str, str] = {}  # public IP -> private IP

    async def start(self, mapping: Mapping[str, str]) -> list[str]:
        """Set up the veth and the nat table with ``mapping``, keeping what a previous node
        left in force (no gap for a namespace that is adopted); returns the public IPs
        another owner has taken meanwhile, which are left out."""
        try:
            await self.ns.ip("link", "show", UPLINK)
        except CommandError:  # a new namespace; a host end left by the old one is stale
            await self.close()
            await run(
                "ip", "link", "add", self.host_if, "type", "veth",
                "peer", "name", UPLINK, "netns", self.ns.name,
            )  # fmt: skip
        await run("ip", "address", "replace", f"{self.host_ip}/{self.prefix}", "dev", self.host_if)
        Path(f"/proc/sys/net/ipv4/conf/{self.host_if}/route_localnet").write_text("1\n")
        await run("ip", "link", "set", self.host_if, "up")
        await self.ns.ip("address", "replace", f"{self.ns_ip}/{self.prefix}", "dev", UPLINK)
        await self.ns.ip("link", "set", UPLINK, "up")
        await run(*self.ns.exec_args("sysctl", "-qw", "net.ipv4.ip_forward=1"))
        routed = await self._routed()
        for public_ip in routed - set(mapping):
            await run(*self._route("delete", public_ip))
        lost = [ip for ip in mapping if ip not in routed and not await self._claim(ip)]
        self.mapped = {p: q for p, q in mapping.items() if p not in lost}
        elements = ", ".join(f"{p} : {q}" for p, q in self.mapped.items())
        await self.ns.nft(
            f"add table ip {TABLE}\ndelete table ip {TABLE}\n"
            f"table ip {TABLE} {{\n"
            "  map public {\n"
            "    type ipv4_addr : ipv4_addr;\n"
            + (f"    elements = {{ {elements} }}\n" if elements else "")
            + "  }\n"
            "  chain prerouting {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            f'    iifname "{UPLINK}" dnat to ip daddr map @public\n'
            "  }\n"
            # only replies to the host's connections leave by the uplink: no guest
            # reaches the host (or another VPC) through it
            "  chain forward {\n"
            "    type filter hook forward priority filter - 10; policy accept;\n"
            f'    oifname "{UPLINK}" ct status dnat accept\n'
            f'    oifname "{UPLINK}" drop\n'
            "  }\n"
            "}\n"
        )
        return lost

    async def close(self) -> None:
        """Remove the veth and with it every route of the public addresses."""
        try:
            await run("ip", "link", "delete", self.host_if)
        except CommandError:
            if Path(f"/sys/class/net/{self.host_if}").exists():
                raise
        self.mapped = {}

    async def associate(self, public_ip: str, private_ip: str) -> bool:
        """Map ``public_ip`` (claimed now, or moved from another private IP) to
        ``private_ip``; False when another owner has the address."""
        IPv4Address(private_ip)
        script = f"add element ip {TABLE} public {{ {public_ip} : {private_ip} }}\n"
        if public_ip in self.mapped:
            script = f"delete element ip {TABLE} public {{ {public_ip} }}\n" + script
        elif not await self._claim(public_ip):
            return False
        await self.ns.nft(script)
        self.mapped[public_ip] = private_ip
        return True

    async def disassociate(self, public_ip: str) -> None:
        if self.mapped.pop(public_ip, None) is None:
            return
        await self.ns.nft(f"delete element ip {TABLE} public {{ {public_ip} }}\n")
        await run(*self._route("delete", public_ip))

    async def _claim(self, public_ip: str) -> bool:
        IPv4Address(public_ip)
        try:
            await run(*self._route("add", public_ip))
        except CommandError as exc:
            if "File exists" in exc.stderr:
                return False
            raise NetworkError(f"route for {public_ip}: {exc}") from exc
        return True

    async def _routed(self) -> set[str]:
        """The public IPs routed through our veth now."""
        out = await run("ip", "-o", "route", "show", "table", "local", "dev", self.host_if)
        return {
            line.split()[0].removesuffix("/32")
            for line in out.splitlines()
            if line.split() and line.split()[0].startswith("127.")
        }

    def _route(self, op: str, public_ip: str) -> tuple[str, ...]:
        return (
            "ip", "route", op, f"{public_ip}/32", "via", str(self.ns_ip), "dev", self.host_if,
            "table", "local", "src", str(self.host_ip),
        )  # fmt: skip
