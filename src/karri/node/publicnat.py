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

On the loopback pool guests reach nothing outside their VPC: only replies to the host's
connections leave by the uplink veth (the host's own services, karri's API on
127.0.0.1 among them, stay out of reach; the metadata service is the namespace's own).
With a real uplink (``public_interface``, the pool being addresses of its network) the
namespace also gets ``pub``, a macvlan of that interface (bridge mode): the public IPs
are /32 addresses on it (the namespace answers ARP for them, the outside reaches them
directly), packets from it are DNATed like the veth's, and an instance with a public IP
goes out through it SNATed to that address (the internet gateway). Instances without
one go out as the VPC's masquerade address (another pool address, which the cloud chose
for the VPC, claimed and held on ``pub`` the same way); with none, they reach nothing
outside (as on AWS without a NAT gateway). The namespace routes to
what the host reaches through the interface: its connected prefixes and its default
gateway there. A macvlan never reaches its lower device's own addresses, so the host
stays out of reach that way too; the veth and the /32 routes stay (the claim between
clouds, and the host's path to the public IPs).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Protocol

from karri.node.commands import CommandError, run
from karri.node.errors import NetworkError
from karri.node.natgateways import NatGateway, NatGatewayReport, snat_sources

UPLINK = "uplink"
PUBLIC = "pub"
TABLE = "karri_nat"
LINK_LOCAL = IPv4Network("169.254.0.0/16")
OUTSIDE = f'{{ "{UPLINK}", "{PUBLIC}" }}'  # the links that are not the VPC's

log = logging.getLogger(__name__)


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
    def __init__(
        self,
        ns: NatHost,
        host_if: str,
        transit: IPv4Network,
        public_interface: str | None = None,
    ) -> None:
        self.ns = ns
        self.host_if = host_if
        self.public_interface = public_interface
        self.host_ip, self.ns_ip = list(transit.hosts())[:2]
        self.prefix = transit.prefixlen
        self.mapped: dict[str, str] = {}  # public IP -> private IP
        self.outbound: dict[str, str] = {}  # private IP -> the public IP it goes out as
        self.masquerade: str | None = None  # what the others go out as (a real uplink)
        self.gateway_ips: set[str] = set()  # the NAT gateways' elastic IPs held
        self.gateway_sources: dict[str, str] = {}  # subnet CIDR -> its NAT gateway's IP
        self.started = False

    async def start(
        self,
        mapping: Mapping[str, str],
        masquerade: str | None = None,
        gateways: Sequence[NatGateway] = (),
    ) -> list[str]:
        """Set up the veth and the nat table with ``mapping`` (and ``masquerade``, on a
        real uplink, and the VPC's NAT ``gateways``), keeping what a previous node left in
        force (no gap for a namespace that is adopted); returns the public IPs another
        owner has taken meanwhile, which are left out (``gateway_report`` tells the NAT
        gateways' fate)."""
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
        if self.public_interface:
            await self._uplink(self.public_interface)
        else:
            masquerade = None
        routed = await self._routed()
        gateway_ips = {g.public_ip for g in gateways if g.public_ip}
        for public_ip in routed - set(mapping) - {masquerade} - gateway_ips:
            await run(*self._route("delete", public_ip))
        self.gateway_ips = {ip for ip in gateway_ips if ip in routed or await self._claim(ip)}
        self.gateway_sources = snat_sources(gateways, self.gateway_ips)
        lost = [ip for ip in mapping if ip not in routed and not await self._claim(ip)]
        self.mapped = {p: q for p, q in mapping.items() if p not in lost}
        self.outbound = {q: p for p, q in self.mapped.items()}
        if masquerade and masquerade not in routed and not await self._claim(masquerade):
            log.warning("%s: masquerade address %s is held elsewhere", self.ns.name, masquerade)
            masquerade = None
        self.masquerade = masquerade
        if self.public_interface:
            await self._set_addresses(
                set(self.mapped) | self.gateway_ips | ({masquerade} if masquerade else set())
            )
        await self._load()
        self.started = True
        return lost

    async def set_gateways(self, gateways: Sequence[NatGateway]) -> NatGatewayReport:
        """The VPC's NAT gateways: their elastic IPs claimed (released for those gone)
        and their subnets SNATed to them, in one transaction of the nat table."""
        wanted = {g.public_ip for g in gateways if g.public_ip}
        claimed = {ip for ip in wanted - self.gateway_ips if await self._claim(ip)}
        released = self.gateway_ips - wanted
        self.gateway_ips = (self.gateway_ips & wanted) | claimed
        self.gateway_sources = snat_sources(gateways, self.gateway_ips)
        if self.public_interface:
            for address in claimed:
                await self.ns.ip("address", "replace", f"{address}/32", "dev", PUBLIC)
        await self._load()
        for address in released:
            if self.public_interface:
                await self.ns.ip("address", "delete", f"{address}/32", "dev", PUBLIC)
            await run(*self._route("delete", address))
        return self.gateway_report(gateways)

    def gateway_report(self, gateways: Sequence[NatGateway]) -> NatGatewayReport:
        """Which of ``gateways`` are in force (a private one has nothing to claim)."""
        ok = [g for g in gateways if g.public_ip is None or g.public_ip in self.gateway_ips]
        return NatGatewayReport(
            tuple(g.nat_gateway_id for g in ok),
            tuple(g.nat_gateway_id for g in gateways if g not in ok),
        )

    async def set_masquerade(self, masquerade: str | None) -> None:
        """The address instances without a public IP go out as by ``pub`` (None: they
        reach nothing outside); only on a real uplink."""
        if not self.public_interface or masquerade == self.masquerade:
            return
        old = self.masquerade
        if masquerade and not await self._claim(masquerade):
            log.warning("%s: masquerade address %s is held elsewhere", self.ns.name, masquerade)
            masquerade = None
        self.masquerade = masquerade
        await self._load()
        if masquerade:
            await self.ns.ip("address", "replace", f"{masquerade}/32", "dev", PUBLIC)
        if old:
            await self.ns.ip("address", "delete", f"{old}/32", "dev", PUBLIC)
            await run(*self._route("delete", old))

    async def _load(self) -> None:
        """The nat table as the maps and the masquerade address are now, replacing the
        one in force in one transaction (connections keep their NAT: conntrack has it)."""
        elements = ", ".join(f"{p} : {q}" for p, q in self.mapped.items())
        outbound = ", ".join(f"{q} : {p}" for q, p in self.outbound.items())
        gateways = ", ".join(f"{n} : {p}" for n, p in sorted(self.gateway_sources.items()))
        natted = ", ".join(sorted(self.gateway_sources))
        # the VPC's other instances go out as its masquerade address (from the bridges:
        # never what came in by the veth or by pub itself)
        masquerade = (
            f'    oifname "{PUBLIC}" iifname != {OUTSIDE} ip saddr != @outbound_sources'
            f" snat to {self.masquerade}\n"
            if self.masquerade
            else ""
        )
        await self.ns.nft(
            f"add table ip {TABLE}\ndelete table ip {TABLE}\n"
            f"table ip {TABLE} {{\n"
            "  map public {\n"
            "    type ipv4_addr : ipv4_addr;\n"
            + (f"    elements = {{ {elements} }}\n" if elements else "")
            + "  }\n"
            "  map outbound {\n"
            "    type ipv4_addr : ipv4_addr;\n"
            + (f"    elements = {{ {outbound} }}\n" if outbound else "")
            + "  }\n"
            "  set outbound_sources {\n"
            "    type ipv4_addr;\n"
            + (f"    elements = {{ {', '.join(self.outbound)} }}\n" if self.outbound else "")
            + "  }\n"
            # the NAT gateways: a private subnet -> its gateway's elastic IP
            "  map nat_gateways {\n"
            "    type ipv4_addr : ipv4_addr; flags interval;\n"
            + (f"    elements = {{ {gateways} }}\n" if gateways else "")
            + "  }\n"
            "  set nat_sources {\n"
            "    type ipv4_addr; flags interval;\n"
            + (f"    elements = {{ {natted} }}\n" if natted else "")
            + "  }\n"
            "  chain prerouting {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            f'    iifname {{ "{UPLINK}", "{PUBLIC}" }} dnat to ip daddr map @public\n'
            "  }\n"
            # the internet gateway: out by the real uplink as the instance's public IP
            "  chain postrouting {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f'    oifname "{PUBLIC}" ip saddr @nat_sources snat to ip saddr map @nat_gateways\n'
            f'    oifname "{PUBLIC}" snat to ip saddr map @outbound\n' + masquerade + "  }\n"
            # only replies to the host's connections leave by the veth: no guest reaches
            # the host (or another VPC) through it; by the real uplink, instances that
            # have a public IP (all of them with a masquerade address)
            "  chain forward {\n"
            "    type filter hook forward priority filter - 10; policy accept;\n"
            f'    oifname {{ "{UPLINK}", "{PUBLIC}" }} ct status dnat accept\n'
            f'    oifname "{PUBLIC}" ip saddr @outbound_sources accept\n'
            f'    oifname "{PUBLIC}" ip saddr @nat_sources accept\n'
            + (f'    oifname "{PUBLIC}" iifname != {OUTSIDE} accept\n' if self.masquerade else "")
            + f'    oifname {{ "{UPLINK}", "{PUBLIC}" }} drop\n'
            "  }\n"
            "}\n"
        )

    async def _uplink(self, interface: str) -> None:
        """``pub`` (a macvlan of the host's ``interface``) and the routes the host has
        through that interface, in the namespace."""
        try:
            await self.ns.ip("link", "show", PUBLIC)
        except CommandError:
            try:
                await run(
                    "ip", "link", "add", PUBLIC, "link", interface, "netns", self.ns.name,
                    "type", "macvlan", "mode", "bridge",
                )  # fmt: skip
            except CommandError as exc:
                raise NetworkError(f"public interface {interface}: {exc}") from exc
        await self.ns.ip("link", "set", PUBLIC, "up")
        routes = []
        out = await run("ip", "-4", "-o", "address", "show", "dev", interface)
        for line in out.splitlines():
            words = line.split()
            if "inet" in words:
                routes.append(str(IPv4Network(words[words.index("inet") + 1], strict=False)))
        for route in routes:
            await self.ns.ip("route", "replace", route, "dev", PUBLIC)
        out = await run("ip", "-4", "-o", "route", "show", "default", "dev", interface)
        words = out.split()
        if "via" in words:
            gateway = words[words.index("via") + 1]
            await self.ns.ip("route", "replace", "default", "via", gateway, "dev", PUBLIC)

    async def _set_addresses(self, wanted: set[str]) -> None:
        """The public IPs on ``pub``: exactly ``wanted``."""
        out = await self.ns.ip("-4", "-o", "address", "show", "dev", PUBLIC)
        present = {
            line.split()[line.split().index("inet") + 1].removesuffix("/32")
            for line in out.splitlines()
            if "inet" in line.split()
        }
        for address in present - wanted:
            await self.ns.ip("address", "delete", f"{address}/32", "dev", PUBLIC)
        for address in wanted - present:
            await self.ns.ip("address", "add", f"{address}/32", "dev", PUBLIC)

    async def close(self) -> None:
        """Remove the veth and with it every route of the public addresses."""
        try:
            await run("ip", "link", "delete", self.host_if)
        except CommandError:
            if Path(f"/sys/class/net/{self.host_if}").exists():
                raise
        self.mapped = {}
        self.outbound = {}
        self.masquerade = None
        self.gateway_ips = set()
        self.gateway_sources = {}
        self.started = False

    async def associate(self, public_ip: str, private_ip: str) -> bool:
        """Map ``public_ip`` (claimed now, or moved from another private IP) to
        ``private_ip``; False when another owner has the address."""
        IPv4Address(private_ip)
        old = self.mapped.get(public_ip)
        if old is None and not await self._claim(public_ip):
            return False
        script = ""
        if old is not None:
            script += f"delete element ip {TABLE} public {{ {public_ip} }}\n"
            if self.outbound.get(old) == public_ip:
                script += self._outbound("delete", old)
                del self.outbound[old]
        if private_ip in self.outbound:  # it goes out as this address from now on
            script += self._outbound("delete", private_ip)
        script += f"add element ip {TABLE} public {{ {public_ip} : {private_ip} }}\n"
        self.outbound[private_ip] = public_ip
        await self.ns.nft(script + self._outbound("add", private_ip))
        if self.public_interface and old is None:
            await self.ns.ip("address", "replace", f"{public_ip}/32", "dev", PUBLIC)
        self.mapped[public_ip] = private_ip
        return True

    async def disassociate(self, public_ip: str) -> None:
        private_ip = self.mapped.pop(public_ip, None)
        if private_ip is None:
            return
        script = f"delete element ip {TABLE} public {{ {public_ip} }}\n"
        if self.outbound.get(private_ip) == public_ip:
            script += self._outbound("delete", private_ip)
            del self.outbound[private_ip]
        await self.ns.nft(script)
        if self.public_interface:
            await self.ns.ip("address", "delete", f"{public_ip}/32", "dev", PUBLIC)
        await run(*self._route("delete", public_ip))

    def _outbound(self, op: str, private_ip: str) -> str:
        """The entries by which ``private_ip`` goes out as its public IP."""
        value = f" : {self.outbound[private_ip]}" if op == "add" else ""
        return (
            f"{op} element ip {TABLE} outbound {{ {private_ip}{value} }}\n"
            f"{op} element ip {TABLE} outbound_sources {{ {private_ip} }}\n"
        )

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
            if "via" in line.split()  # not the host's own address (``local …``)
        }

    def _route(self, op: str, public_ip: str) -> tuple[str, ...]:
        return (
            "ip", "route", op, f"{public_ip}/32", "via", str(self.ns_ip), "dev", self.host_if,
            "table", "local", "src", str(self.host_ip),
        )  # fmt: skip
