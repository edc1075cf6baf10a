"""One VPC's network on this host: its namespace, a bridge per subnet, a tap per instance.

Inside the namespace ``karri-<hash of the data dir>-<hash of the VPC id>`` (netns.py):
- ``lo`` up with 169.254.169.254/32 (the node's metadata service listens there);
- a bridge per subnet (``br`` + the subnet in hex, e.g. ``brac1f000020`` for
  172.31.0.0/20) holding the subnet's first host as gateway, with a fixed MAC so that
  guests' ARP entries for the gateway survive taps coming and going;
- a tap ``kt<instance hex>`` per instance, enslaved to its subnet's bridge;
- an nftables ``bridge`` table that lets a tap send only from its instance's MAC and IP
  (plus DHCP and ARP probes), so no guest can pose as another: the metadata service and
  the security groups identify instances by source address; and that delivers to a tap
  only IPv4 unicast addressed to one of its addresses (AWS's SourceDestCheck, both
  ways), except for an interface whose check is off (``forwarders``: a NAT instance),
  whose packets from other addresses it marks for that interface's egress groups;
- policy routing per subnet for routes to interfaces (subnetroutes.py);
- the security groups (firewall.py, ``table inet karri_sg``): every instance is a member
  before its tap exists, so a tap is never unfiltered (fail closed);
- the public addresses (publicnat.py: a veth to the host and ``table ip karri_nat``);
- dnsmasq giving each MAC its fixed IP on its bridge, and answering DNS as the VPC's
  resolver (dns.py: its addresses on ``lo`` too) where the VPC has DNS support.

Each VPC has its own namespace, so VPCs (of one account or of several) never share a
link, and every one of them may use the same addresses. The host's own namespace is
touched only by publicnat.py's veth and routes. QEMU joins the namespace through
``ip netns exec``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address
from pathlib import Path

from karri.node.acls import SubnetAcl, acls_script
from karri.node.commands import CommandError, terminate
from karri.node.dhcp import LEASE_SECONDS, DhcpOptions, DhcpSubnet, Dnsmasq
from karri.node.dns import Resolver, resolver_addresses
from karri.node.errors import AddressTaken, NetworkError
from karri.node.firewall import Firewall, GroupRules, Member
from karri.node.natgateways import NatGateway, NatGatewayReport
from karri.node.netns import Namespace, host_link_name, namespace_name, namespace_processes
from karri.node.overlay import Overlay, RemotePort, overlay_mtu
from karri.node.overlay import apply as apply_overlay
from karri.node.publicnat import LoopbackNat, transit_network
from karri.node.routing import routes_script
from karri.node.subnetroutes import VpcRoutes
from karri.node.subnetroutes import apply as apply_routes

log = logging.getLogger("karri.node")

METADATA_IP = "169.254.169.254"
TAP_PREFIX = "kt"
NFT_TABLE = "karri"
MARK_BASE = 0x6B000000
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

NFT_RULES = f"""
table bridge {NFT_TABLE} {{
  set ips {{ type ifname . ether_addr . ipv4_addr; }}
  set macs {{ type ifname . ether_addr; }}
  set forwarders {{ type ifname . ether_addr; }}
  map forwarder_marks {{ type ifname . ether_addr : mark; }}
  chain prerouting {{
    type filter hook prerouting priority -200; policy accept;
    iifname "{TAP_PREFIX}*" jump from_guest
  }}
  chain from_guest {{
    ether type ip iifname . ether saddr . ip saddr @ips accept
    ether type ip meta mark set iifname . ether saddr map @forwarder_marks accept
    ether type arp iifname . ether saddr . arp saddr ip @ips iifname . arp saddr ether @macs accept
    ether type arp iifname . ether saddr @macs arp saddr ip 0.0.0.0 accept
    ether type ip iifname . ether saddr @macs ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept
    drop
  }}
  chain postrouting {{
    type filter hook postrouting priority 200; policy accept;
    oifname "{TAP_PREFIX}*" jump to_guest
  }}
  chain to_guest {{
    ether type != ip accept
    ether daddr & 01:00:00:00:00:00 == 01:00:00:00:00:00 accept
    oifname . ether daddr . ip daddr @ips accept
    oifname . ether daddr @forwarders accept
    drop
  }}
}}
"""


@dataclass(frozen=True)
class Port:
    """An instance's place in its VPC: its tap on the bridge of ``subnet``, its addresses
    and the security groups it is a member of."""

    instance_id: str
    tap: str
    mac: str
    ip: str
    subnet: str = "172.31.0.0/16"
    group_ids: tuple[str, ...] = ()
    interface_id: str | None = None
    """Set for an instance's extra interface (its own port); None for its primary one."""
    secondary: tuple[str, ...] = ()
    """Its secondary private addresses: it may send from them too, and each is a member
    of its groups as its primary address is."""

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.ip, *self.secondary)

    @property
    def key(self) -> str:
        """What the VPC's ports are keyed by: the instance id for its primary interface."""
        return self.interface_id or self.instance_id


def tap_name(instance_id: str) -> str:
    """``kt`` + the id's hex digits, within the 15 characters of an interface name."""
    return (TAP_PREFIX + instance_id.split("-", 1)[-1])[:15]


def bridge_name(subnet: IPv4Network) -> str:
    """``br`` + the subnet's address in hex + its prefix length (12 characters)."""
    return f"br{int(subnet.network_address):08x}{subnet.prefixlen:02d}"


def gateway_of(subnet: IPv4Network) -> IPv4Address:
    return subnet.network_address + 1


def _elements(port: Port) -> tuple[str, str]:
    """The port's anti-spoofing elements: (tap, MAC, address) for each of its addresses,
    and (tap, MAC)."""
    full = ", ".join(f'"{port.tap}" . {port.mac} . {ip}' for ip in port.addresses)
    return full, f'"{port.tap}" . {port.mac}'


class VpcNetwork:
    """The namespace of one VPC and everything in it, kept as the node's instances ask."""

    def __init__(
        self,
        data_dir: Path,
        state_dir: Path,
        vpc_id: str,
        public_interface: str | None = None,
        dhcp_lease_seconds: int = LEASE_SECONDS,
    ) -> None:
        self.vpc_id = vpc_id
        self.ns = Namespace(namespace_name(data_dir, vpc_id))
        self.state_dir = state_dir
        self.bridges: dict[IPv4Network, str] = {}
        self.ports: dict[str, Port] = {}
        self.public: dict[str, str] = {}  # instance id -> public IP
        self.dhcp = Dnsmasq(self.ns, state_dir, dhcp_lease_seconds)
        self.dhcp_options: DhcpOptions = ()
        self.resolver: Resolver | None = None
        self.internet: list[str] | None = None  # the subnets that reach outside
        self.gateways: tuple[NatGateway, ...] = ()  # the VPC's NAT gateways
        self.routes = VpcRoutes()  # routes to interfaces, SourceDestCheck off
        self.elastic: dict[str, str] = {}  # mapped: public -> secondary/other interface's IP
        self.firewall = Firewall(self.ns)
        self.overlay = Overlay()  # the VPC's ports on other nodes (overlay.py)
        self.underlay: Namespace | None = None  # where the node's address is (None: here)
        self.mtu: int | None = None  # the overlay's (overlay.py); None: the kernel's 1500
        self.nat = LoopbackNat(
            self.ns,
            host_link_name(data_dir, vpc_id),
            transit_network(self.ns.name),
            public_interface,
        )

    # --- lifecycle -----------------------------------------------------------------
    async def start(
        self,
        live: Iterable[Port],
        groups: Iterable[GroupRules],
        public: Mapping[str, str],
        internet: Iterable[str] | None = None,
        acls: Iterable[SubnetAcl] | None = None,
        dhcp: DhcpOptions = (),
        masquerade: str | None = None,
        resolver: Resolver | None = None,
        gateways: Sequence[NatGateway] = (),
        routes: VpcRoutes | None = None,
    ) -> list[str]:
        """Set up the namespace, keeping what ``live`` instances (adopted QEMUs) use, with
        the VPC's ``groups`` and the live instances' ``public`` addresses (instance id ->
        IP) in force from the first moment: a namespace a crashed node left is taken over
        with no gap. Returns the instances whose public address another owner took
        meanwhile (they have none now). ``internet``: the subnets that reach outside
        (``routing.py``; None: all); ``acls``: the subnets' network ACLs (``acls.py``);
        ``dhcp``: the VPC's DHCP options (``dhcp.py``); ``masquerade``: the address those
        without a public IP go out as (``publicnat.py``); ``resolver``: the VPC's DNS
        server (``dns.py``), if it has one; ``gateways``: its NAT gateways
        (``natgateways.py``; ``nat.gateway_report`` tells which are in force);
        ``routes``: its routes to interfaces (``subnetroutes.py``)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.routes = routes or VpcRoutes()
        self.gateways = tuple(gateways)
        self.dhcp_options = dhcp
        self.resolver = resolver
        self.ports = {p.key: p for p in live}
        for port in self.ports.values():
            self.check(port)
        if self.ns.exists() and not self.ports:
            await self.reclaim()
        if not self.ns.exists():
            await self.ns.create()
        await self.ns.ip_batch(
            ["link set lo up", f"address replace {METADATA_IP}/32 dev lo"], force=True
        )
        await self._resolver_addresses(None, resolver)
        for subnet in {IPv4Network(p.subnet) for p in self.ports.values()}:
            await self._add_bridge(subnet)
        existing = await self._taps()
        wanted = {p.tap for p in self.ports.values()}
        await self.ns.ip_batch([f"link delete {tap}" for tap in existing - wanted], force=True)
        self.firewall.bridges = set(self.bridges.values())
        groups = list(groups)
        known = {g.group_id for g in groups}
        await self.firewall.load(groups, self._all_members(known))
        await self.set_internet(internet)
        await self.set_acls(acls)
        for port in self.ports.values():
            if port.tap not in existing:
                await self._add_tap(port)
        script = f"add table bridge {NFT_TABLE}\ndelete table bridge {NFT_TABLE}\n{NFT_RULES}"
        adds = "".join(self._nft_add(p) for p in self.ports.values())
        await self.ns.nft(script + adds + self._forwarders_script())
        await self._apply_routes()
        wanted_public = {ip: self.ports[i].ip for i, ip in public.items() if i in self.ports}
        elastic = self._elastic_wanted()
        lost = set(await self.nat.start(wanted_public | elastic, masquerade, self.gateways))
        self.elastic = {p: ip for p, ip in elastic.items() if p not in lost}
        if self.gateways:  # those whose address another owner took meanwhile are out
            await self.ns.nft(routes_script(self.internet, self._natted()))
        self.public = {i: ip for i, ip in public.items() if i in self.ports and ip not in lost}
        await self._restart_dhcp()
        await self._apply_overlay()
        log.info("%s: namespace %s, subnets %s", self.vpc_id, self.ns.name, list(self.bridges))
        return [i for i, ip in public.items() if ip in lost]

    async def reclaim(self) -> None:
        """Remove a namespace no live instance uses (left by a crashed node controller)."""
        log.info("%s: removing the stale namespace %s", self.vpc_id, self.ns.name)
        await self.dhcp.stop()
        # whatever else runs in it (a QEMU started just before a crash, not yet recorded)
        left = namespace_processes(self.ns.name)
        if left:
            log.warning("ending %d process(es) left in %s", len(left), self.ns.name)
            await asyncio.to_thread(terminate, left, 5.0)
        await self.nat.close()
        await self.ns.delete()

    async def close(self, delete_namespace: bool) -> None:
        """With ``delete_namespace`` stop dnsmasq and remove the namespace, its veth and
        routes. Otherwise the groups and the NAT stay in force in the kernel, and dnsmasq
        keeps renewing the guests' leases."""
        if not delete_namespace:
            self.dhcp.leave()
            return
        await self.dhcp.stop()
        if self.ns.exists():
            await self.nat.close()
            await self.ns.delete()

    # --- subnets ------------------------------------------------------------------
    async def _add_bridge(self, subnet: IPv4Network) -> None:
        if subnet in self.bridges:
            return
        if subnet.num_addresses < 8:
            raise NetworkError(f"subnet {subnet} is too small")
        bridge = bridge_name(subnet)
        seed = f"{self.vpc_id}/{bridge}".encode()  # the same on every node (overlay.py)
        mac = "02:" + ":".join(hashlib.sha256(seed).hexdigest()[i : i + 2] for i in range(0, 10, 2))
        await self.ns.ip_batch([f"link add {bridge} address {mac} type bridge"], force=True)
        await self.ns.ip_batch(
            [
                f"link set {bridge} address {mac}",
                f"address replace {gateway_of(subnet)}/{subnet.prefixlen} dev {bridge}",
                f"link set {bridge} up",
            ]
        )
        self.bridges[subnet] = bridge

    async def _ensure_subnet(self, subnet: IPv4Network) -> None:
        """A bridge for a subnet that has none yet, filtered and served by DHCP. The
        bridge of a deleted subnet over the same addresses (no port left on it) goes
        first: its gateway address would shadow the new one's."""
        if subnet in self.bridges:
            return
        used = {IPv4Network(p.subnet) for p in self.ports.values()}
        for old in [s for s in self.bridges if s.overlaps(subnet) and s not in used]:
            bridge = self.bridges.pop(old)
            await self.firewall.remove_bridge(bridge)
            await self.ns.ip_batch([f"link delete {bridge}"], force=True)
        await self._add_bridge(subnet)
        await self.firewall.add_bridge(self.bridges[subnet])
        await self._restart_dhcp()
        await self._apply_overlay()

    async def _restart_dhcp(self) -> None:
        await self.dhcp.stop()
        if self.bridges:
            subnets = [DhcpSubnet(b, s, gateway_of(s)) for s, b in self.bridges.items()]
            await self.dhcp.start(
                subnets, self._hosts(), self.dhcp_options, self.resolver, self.mtu
            )

    async def _resolver_addresses(self, old: Resolver | None, new: Resolver | None) -> None:
        """The resolver's addresses on ``lo`` (guests reach them through their gateway,
        or by ARP when one is in their subnet): ``new``'s, none of ``old``'s others."""
        wanted = set(resolver_addresses(new)) if new else set()
        gone = set(resolver_addresses(old)) - wanted if old else set()
        await self.ns.ip_batch(
            [f"address del {a}/32 dev lo" for a in sorted(gone)]
            + [f"address replace {a}/32 dev lo" for a in sorted(wanted)],
            force=True,
        )

    def bridge_of(self, port: Port) -> str:
        return self.bridges[IPv4Network(port.subnet)]

    async def _taps(self) -> set[str]:
        out = await self.ns.ip("-o", "link", "show")
        names = {
            line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line
        }
        return {n for n in names if n.startswith(TAP_PREFIX)}

    async def _add_tap(self, port: Port) -> None:
        size = [f"link set {port.tap} mtu {self.mtu}"] if self.mtu is not None else []
        await self.ns.ip_batch(
            [
                f"tuntap add dev {port.tap} mode tap",
                *size,
                f"link set {port.tap} master {self.bridge_of(port)}",
                f"link set {port.tap} up",
            ]
        )

    # --- instances -----------------------------------------------------------------
    def check(self, port: Port) -> None:
        """Refuse an address outside its subnet, a reserved one, or one already in use."""
        mac, ip = port.mac, port.ip
        if not _MAC.match(mac) or int(mac[:2], 16) & 1:
            raise NetworkError(f"{mac} is not a unicast MAC address (lowercase, colon-separated)")
        try:
            subnet = IPv4Network(port.subnet)
        except ValueError as exc:
            raise NetworkError(f"bad subnet {port.subnet!r}: {exc}") from None
        for each in port.addresses:
            addr = ip_address(each)
            if not isinstance(addr, IPv4Address) or addr not in subnet:
                raise NetworkError(f"{each} is not in the instance's subnet {subnet}")
            if addr in (subnet.network_address, gateway_of(subnet), subnet.broadcast_address):
                raise NetworkError(f"{each} is reserved in {subnet}")
        for other in self.ports.values():
            shared = set(other.addresses) & set(port.addresses)
            if other.key != port.key and (shared or other.mac == mac):
                raise NetworkError(f"{ip}/{mac} is already used by {other.instance_id}")

    async def plug(self, port: Port) -> None:
        """The instance's membership in its groups, its anti-spoofing entries, its tap
        and its DHCP host, in that order: the tap is filtered from its first frame."""
        self.check(port)
        if self.ports.get(port.key) == port:
            return  # kept by start() for a QEMU that still runs: its tap is in use
        await self.unplug(port.key)
        await self._ensure_subnet(IPv4Network(port.subnet))
        for member in list(self.firewall.members.values()):  # it was elsewhere until now
            if member.remote and member.ip in port.addresses:
                await self.firewall.remove_member(member.name)
        for member in self._members(port, set(self.firewall.groups)):
            await self.firewall.set_member(member)
        await self.ns.nft(self._nft_add(port))
        self.ports[port.key] = port
        await self._add_tap(port)
        await self._routes_follow()
        await self.dhcp.give(port.ip, port.mac, self._hosts())

    async def unplug(self, key: str) -> None:
        """Remove the port of an instance (its primary interface) or of an extra interface."""
        port = self.ports.pop(key, None)
        if port is None:
            return
        instance_id = port.instance_id
        if port.interface_id is None:
            await self.unpublish(instance_id)
        self.dhcp.set_hosts(self._hosts())
        await self.ns.ip_batch([f"link delete {port.tap}"], force=True)
        full, mac = _elements(port)
        try:
            await self.ns.nft(
                f"delete element bridge {NFT_TABLE} ips {{ {full} }}\n"
                f"delete element bridge {NFT_TABLE} macs {{ {mac} }}\n"
            )
        except CommandError as exc:
            log.warning("nft cleanup for %s: %s", instance_id, exc)
        for name in _names(port):
            await self.firewall.remove_member(name)
        await self._routes_follow()

    # --- routes --------------------------------------------------------------------
    async def set_internet(
        self, subnets: Iterable[str] | None, masquerade: str | None = None
    ) -> None:
        """The subnets whose instances reach outside (and are reached at their public
        addresses); None: all of them. With ``masquerade`` (a real uplink's), their
        instances without a public IP go out as it."""
        self.internet = None if subnets is None else list(subnets)
        await self.ns.nft(routes_script(self.internet, self._natted()))
        if self.nat.started:
            await self.nat.set_masquerade(masquerade)

    async def set_routes(self, routes: VpcRoutes) -> None:
        """The VPC's routes to interfaces and the interfaces whose SourceDestCheck is off
        (``subnetroutes.py``), in force at once."""
        self.routes = routes
        await self.set_groups(self.firewall.groups.values())  # the forwarders' marks
        await self.ns.nft(self._forwarders_script())
        await self._apply_routes()
        await self._map_elastic()

    async def _routes_follow(self) -> None:
        """After a port came or went: a route to it is a blackhole while it has none here
        (and a blackhole no more once it has), a new bridge's prefix is a local route of
        every table, a forwarder's port is let through."""
        if self.routes.forwarders:  # (plug gave a forwarder's members their marks)
            await self.ns.nft(self._forwarders_script())
        if self.routes.subnets:
            await self._apply_routes()
        if self.routes.elastic or self.elastic:
            await self._map_elastic()

    def _elastic_wanted(self) -> dict[str, str]:
        """The elastic IPs of secondary addresses and other interfaces whose address has
        a port here (public -> private)."""
        here = {ip for p in self.ports.values() for ip in p.addresses}
        return {pub: ip for pub, ip in self.routes.elastic if ip in here}

    async def _map_elastic(self) -> None:
        """Map exactly ``_elastic_wanted`` (1:1, as an instance's public address)."""
        if not self.nat.started:
            return  # start() maps them
        wanted = self._elastic_wanted()
        for public in [p for p, ip in self.elastic.items() if wanted.get(p) != ip]:
            del self.elastic[public]
            if public not in self.public.values():
                await self.nat.disassociate(public)
        for public, ip in wanted.items():
            if self.elastic.get(public) == ip:
                continue
            if await self.nat.associate(public, ip):
                self.elastic[public] = ip
            else:
                log.warning("%s: %s is held by another owner on the host", self.vpc_id, public)

    async def _apply_routes(self) -> None:
        present = [p.ip for p in self.ports.values()]
        await apply_routes(self.ns, self.bridges, self.routes, present)

    def _forwarders_script(self) -> str:
        """The ports whose SourceDestCheck is off (with their marks), replacing those in
        force."""
        ports = [p for p in self.ports.values() if self._mark(p)]
        script = (
            f"flush set bridge {NFT_TABLE} forwarders\n"
            f"flush map bridge {NFT_TABLE} forwarder_marks\n"
        )
        if ports:
            keys = ", ".join(_elements(p)[1] for p in ports)
            marks = ", ".join(f"{_elements(p)[1]} : {self._mark(p):#x}" for p in ports)
            script += f"add element bridge {NFT_TABLE} forwarders {{ {keys} }}\n"
            script += f"add element bridge {NFT_TABLE} forwarder_marks {{ {marks} }}\n"
        return script

    def _mark(self, port: Port) -> int:
        return forwarder_mark(port.tap) if port.ip in self.routes.forwarders else 0

    def _members(self, port: Port, known: set[str]) -> list[Member]:
        return _members(port, known, self._mark(port))

    async def set_nat_gateways(self, gateways: Sequence[NatGateway]) -> NatGatewayReport:
        """The VPC's NAT gateways (``natgateways.py``): their subnets let out by the
        uplink (replies only back in) and SNATed to their elastic IPs."""
        self.gateways = tuple(gateways)
        report = await self.nat.set_gateways(self.gateways)
        await self.ns.nft(routes_script(self.internet, self._natted()))
        return report

    def _natted(self) -> list[str]:
        """The subnets going out through a NAT gateway the node holds (before the nat
        table is up, those it is to hold: an adopted namespace keeps them with no gap)."""
        if self.nat.started:
            return sorted(self.nat.gateway_sources)
        return sorted({n for g in self.gateways if g.public_ip for n in g.subnets})

    async def set_dhcp_options(self, options: DhcpOptions) -> None:
        """What dnsmasq hands out besides addresses and routers: restarted when it
        changed (leases are kept; guests see it at their next lease)."""
        if options == self.dhcp_options:
            return
        self.dhcp_options = options
        await self._restart_dhcp()

    async def set_resolver(self, resolver: Resolver | None) -> None:
        """The VPC's DNS server (``dns.py``), or none: dnsmasq restarted when it changed."""
        if resolver == self.resolver:
            return
        old, self.resolver = self.resolver, resolver
        await self._resolver_addresses(old, resolver)
        await self._restart_dhcp()

    async def set_acls(self, acls: Iterable[SubnetAcl] | None) -> None:
        """The network ACL of each subnet, replacing those in force (``acls.py``)."""
        await self.ns.nft(acls_script(acls))

    # --- security groups -------------------------------------------------------------
    async def set_groups(self, groups: Iterable[GroupRules]) -> None:
        """The VPC's groups and every member's place in them, in one transaction."""
        groups = list(groups)
        await self.firewall.sync(groups, self._all_members({g.group_id for g in groups}))

    async def set_overlay(self, overlay: Overlay) -> None:
        """The VPC's ports on other nodes (overlay.py): reached over its subnets' VXLAN
        devices, members of their groups' address sets here."""
        self.overlay = overlay
        await self.set_groups(self.firewall.groups.values())
        await self._apply_overlay()

    async def _apply_overlay(self) -> None:
        """The VXLAN devices and entries; a failure (another device of the host's
        namespace holds the VNI and port: another cloud's) leaves the VPC working on
        this node alone, and is logged."""
        try:
            added = await self._remote_bridges()
            mtu = await overlay_mtu(self.overlay, self.underlay)
            await apply_overlay(self.ns, self.bridges, self.overlay, self.underlay, mtu)
        except CommandError as exc:
            log.warning("%s: its subnets are not joined to other nodes: %s", self.vpc_id, exc)
            return
        resized = mtu is not None and mtu != self.mtu
        if resized:  # the taps' (the bridges follow their ports), then the guests'
            self.mtu = mtu
            taps = sorted(await self._taps())
            await self.ns.ip_batch([f"link set {tap} mtu {mtu}" for tap in taps], force=True)
            log.info("%s: MTU %d (its overlay's)", self.vpc_id, mtu)
        if added or resized:  # served and routed as the others; told the MTU
            await self._restart_dhcp()
        if added:
            await self._apply_routes()

    async def _remote_bridges(self) -> bool:
        """A bridge for each subnet that has ports on other nodes only: its instances are
        reached from here (routed through the gateway, the same on every node) as if they
        were here. None over the addresses of a bridge this node has."""
        if self.overlay.local is None:
            return False
        wanted = {IPv4Network(p.subnet) for p in self.overlay.remote}
        added = False
        for subnet in sorted(wanted - set(self.bridges)):
            if any(subnet.overlaps(s) for s in self.bridges):
                continue
            await self._add_bridge(subnet)
            await self.firewall.add_bridge(self.bridges[subnet])
            added = True
        return added

    def _all_members(self, known: set[str]) -> list[Member]:
        """The members of the VPC's groups here: its local ports' and its remote ones'
        (a remote address also in use here is left out: the local port wins)."""
        local = [m for p in self.ports.values() for m in self._members(p, known)]
        here = {m.ip for m in local} | {m.name for m in local}
        remote = [
            m
            for p in self.overlay.remote
            for m in _remote_members(p, known)
            if m.ip not in here and m.name not in here
        ]
        return local + remote

    async def set_port_groups(self, key: str, group_ids: tuple[str, ...]) -> None:
        port = self.ports[key]
        self.ports[key] = port = dataclasses.replace(port, group_ids=group_ids)
        for member in self._members(port, set(self.firewall.groups)):
            await self.firewall.set_member(member)

    async def set_port_addresses(self, key: str, secondary: tuple[str, ...]) -> None:
        """A port's secondary addresses: it may send from these (and no others besides
        its primary one), each a member of its groups."""
        old = self.ports[key]
        port = dataclasses.replace(old, secondary=tuple(secondary))
        if port == old:
            return
        self.check(port)
        self.ports[key] = port
        for member in self._members(port, set(self.firewall.groups)):
            await self.firewall.set_member(member)
        for name in set(_names(old)) - set(_names(port)):
            await self.firewall.remove_member(name)
        full, _mac = _elements(old)
        await self.ns.nft(
            f"delete element bridge {NFT_TABLE} ips {{ {full} }}\n"
            + f"add element bridge {NFT_TABLE} ips {{ {_elements(port)[0]} }}\n"
        )

    # --- public addresses --------------------------------------------------------------
    async def publish(self, instance_id: str, candidates: Iterable[str], move: bool = False) -> str:
        """Map the first address of ``candidates`` that is free (or already the
        instance's) to the instance; returns it. With ``move``, an address another
        instance of the VPC has is taken from it (AssociateAddress's reassociation)."""
        port = self.ports[instance_id]
        current = self.public.get(instance_id)
        for address in candidates:
            if address == current:
                return address
            holder = next((i for i, a in self.public.items() if a == address), None)
            if holder is not None and not move:
                continue
            if await self.nat.associate(address, port.ip):
                if holder is not None:
                    del self.public[holder]
                await self.unpublish(instance_id)
                self.public[instance_id] = address
                log.info("%s: public address %s -> %s", instance_id, address, port.ip)
                return address
        raise AddressTaken(f"{instance_id}: no free public address")

    async def unpublish(self, instance_id: str) -> None:
        address = self.public.pop(instance_id, None)
        if address is not None:
            await self.nat.disassociate(address)

    def _nft_add(self, port: Port) -> str:
        full, mac = _elements(port)
        return (
            f"add element bridge {NFT_TABLE} ips {{ {full} }}\n"
            f"add element bridge {NFT_TABLE} macs {{ {mac} }}\n"
        )

    def _hosts(self) -> dict[str, str]:
        return {p.mac: p.ip for p in self.ports.values()}


def forwarder_mark(tap: str) -> int:
    """The packet mark of what a tap whose SourceDestCheck is off sends from an address
    not its own (firewall.py's ``egress_marks`` filters it by the tap's groups)."""
    return MARK_BASE | int(hashlib.sha256(tap.encode()).hexdigest()[:6], 16)


def _members(port: Port, known: set[str], mark: int = 0) -> list[Member]:
    """The port's members of its groups: its tap for its primary address, ``<tap>-<n>``
    for each secondary one. A group the VPC does not have (yet) admits nothing: the
    member is filtered by the groups that exist, and with none of them, cut off."""
    unknown = [g for g in port.group_ids if g not in known]
    if unknown:
        log.warning("%s: unknown group(s) %s: left out", port.instance_id, unknown)
    groups = tuple(g for g in port.group_ids if g in known)
    members = [
        Member(name, ip, groups) for name, ip in zip(_names(port), port.addresses, strict=True)
    ]
    members[0] = dataclasses.replace(members[0], mark=mark)
    return members


def _remote_members(port: RemotePort, known: set[str]) -> list[Member]:
    groups = tuple(g for g in port.group_ids if g in known)
    names = [port.name, *(f"{port.name}-{n}" for n in range(1, len(port.secondary) + 1))]
    return [
        Member(name, ip, groups, remote=True)
        for name, ip in zip(names, port.addresses, strict=True)
    ]


def _names(port: Port) -> list[str]:
    """The names of the port's members (``_members``)."""
    return [port.tap, *(f"{port.tap}-{n}" for n in range(1, len(port.secondary) + 1))]
