"""A VPC's subnets across hosts: a VXLAN device per subnet on its bridge (step 6 of
docs/many-hosts.md).

Each subnet with a bridge on this node gets ``vx`` + its VNI in hex (``vx00a1b2c3``),
enslaved to the bridge. The device is created from the *underlay* namespace (the host's
own, where the node's address is) straight into the VPC's namespace (``ip link add …
netns``): its UDP socket (port 4789) stays in the underlay, so it carries frames over
the hosts' own addresses while the VPC's namespace has no route to them.

Nothing is learnt and nothing floods: the device has ``nolearning`` and no default
destination, so a broadcast or an unknown unicast goes nowhere; every port of the subnet
on another node is pushed by the cloud as a ``RemotePort``, which becomes
- a static entry in the device's FDB (``bridge fdb append MAC dev vx dst HOST``),
- a static entry in the bridge's FDB (``… master static``): the bridge sends its frames
  to the device only, and learning is off on the device's bridge port,
- a permanent neighbour entry on the device (``ip neigh … nud permanent``) for each of
  its addresses: with ``proxy`` the device answers ARP for them itself, so ARP never
  crosses hosts.
The gateway (the bridge's address and fixed MAC, the same on every node) is answered on
each node by its own bridge: no host ever sends its frames to another.

The MTU: VXLAN over IPv4 takes 50 bytes of the underlay's packets, so a VPC joined by it
gets the underlay interface's MTU less 50, at most AWS's 9001 (``overlay_mtu``): 1450
over a 1500-byte network, 9001 over jumbo frames or loopback. The devices, the taps (so
the bridges, which follow their ports) and what dnsmasq tells the guests (DHCP option
26, ``network.py``) carry it; a VPC's nodes are assumed to share one underlay MTU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from karri.node.commands import run
from karri.node.netns import Namespace

log = logging.getLogger("karri.node")

VXLAN_PORT = 4789
VXLAN_PREFIX = "vx"
VNI_LIMIT = 1 << 24  # VNIs are 24 bits; 0 is never used
VXLAN_OVERHEAD = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + the inner Ethernet header 14
JUMBO_MTU = 9001  # what AWS gives guests in a VPC


def vni_of(subnet_id: str) -> int:
    """The subnet's VNI: 24 bits of a hash of its id, never 0. Stable; the cloud keeps it
    unique (a new subnet's id is chosen so that its VNI is free: ``vni_taken``)."""
    return int(hashlib.sha256(subnet_id.encode()).hexdigest()[:6], 16) % (VNI_LIMIT - 1) + 1


def vxlan_name(vni: int) -> str:
    return f"{VXLAN_PREFIX}{vni:08x}"


@dataclass(frozen=True)
class RemotePort:
    """An interface of the VPC on another node: reached over its subnet's VXLAN at
    ``host`` (that node's address), a member of its groups' address sets here (its own
    node enforces its groups)."""

    name: str
    """The member's name here (the interface's tap name on its own node)."""
    mac: str
    ip: str
    subnet: str
    host: str
    group_ids: tuple[str, ...] = ()
    secondary: tuple[str, ...] = ()
    port: int = VXLAN_PORT
    """The UDP port its node's VXLAN devices listen on (``Overlay.port`` there)."""

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.ip, *self.secondary)


@dataclass(frozen=True)
class SubnetLink:
    subnet: str
    vni: int


@dataclass(frozen=True)
class Overlay:
    """What joins a VPC's namespace on this node to the same VPC's on other nodes:
    ``local`` is this node's own address (the underlay's), ``subnets`` the VNI of each
    subnet, ``remote`` the VPC's ports on other nodes."""

    local: str | None = None
    subnets: tuple[SubnetLink, ...] = ()
    remote: tuple[RemotePort, ...] = ()
    port: int = VXLAN_PORT
    """The UDP port this node's VXLAN devices listen on: 4789, unless several nodes share
    one host's network namespace (nodes on loopback addresses: ``cloud/instances/
    overlays.py``), where each needs its own (one VNI and port per namespace)."""

    def vni(self, subnet: IPv4Network) -> int | None:
        return next((s.vni for s in self.subnets if IPv4Network(s.subnet) == subnet), None)


@dataclass(frozen=True)
class _Device:
    name: str
    vni: int
    local: str | None
    port: int


async def _json(*cmd: str) -> list[dict]:
    out = await run(*cmd)
    return json.loads(out) if out.strip() else []


async def _devices(ns: Namespace) -> dict[str, _Device]:
    found = {}
    for link in await _json("ip", "-n", ns.name, "-d", "-j", "link", "show", "type", "vxlan"):
        data = link.get("linkinfo", {}).get("info_data", {})
        name = link["ifname"]
        if name.startswith(VXLAN_PREFIX):
            found[name] = _Device(
                name, int(data.get("id", 0)), data.get("local"), int(data.get("port", 0))
            )
    return found


async def underlay_mtu(local: str, underlay: Namespace | None = None) -> int | None:
    """The MTU of the interface holding ``local`` in ``underlay`` (None: the host's own
    namespace): the one with that address, else one whose prefix holds it (loopback's
    ``127.0.0.1/8`` holds every 127.x address), else None."""
    where = ("-n", underlay.name) if underlay is not None else ()
    address = IPv4Address(local)
    within = None
    for link in await _json("ip", *where, "-j", "-4", "address", "show"):
        for info in link.get("addr_info", ()):
            if info.get("local") == local:
                return int(link["mtu"])
            prefix = IPv4Network(f"{info.get('local')}/{info.get('prefixlen')}", strict=False)
            if within is None and address in prefix:
                within = int(link["mtu"])
    return within


def guest_mtu(underlay: int) -> int:
    """The MTU that fits in one underlay packet once wrapped, at most ``JUMBO_MTU``."""
    return min(JUMBO_MTU, underlay - VXLAN_OVERHEAD)


async def overlay_mtu(overlay: Overlay, underlay: Namespace | None = None) -> int | None:
    """The MTU of a VPC joined by ``overlay`` (None: not joined, or its address is on no
    interface here: the kernel's default of 1500 stays)."""
    if overlay.local is None:
        return None
    found = await underlay_mtu(overlay.local, underlay)
    return guest_mtu(found) if found is not None else None


def wanted_devices(overlay: Overlay, bridges: Mapping[IPv4Network, str]) -> dict[str, str]:
    """The VXLAN devices the namespace should have: name -> its bridge (only subnets that
    have a bridge here, and only when the node knows its own address)."""
    if overlay.local is None:
        return {}
    wanted = {}
    for subnet, bridge in bridges.items():
        vni = overlay.vni(subnet)
        if vni is not None:
            wanted[vxlan_name(vni)] = bridge
    return wanted


def wanted_entries(
    overlay: Overlay, bridges: Mapping[IPv4Network, str]
) -> dict[str, tuple[set[tuple[str, str, int]], set[tuple[str, str]]]]:
    """Per device: the FDB entries (MAC, host, port) and neighbour entries (IP, MAC) of
    the remote ports of its subnet."""
    devices = {}
    for subnet in bridges:
        vni = overlay.vni(subnet)
        if vni is None or overlay.local is None:
            continue
        fdb: set[tuple[str, str, int]] = set()
        neigh: set[tuple[str, str]] = set()
        for port in overlay.remote:
            if IPv4Network(port.subnet) == subnet and port.host != overlay.local:
                fdb.add((port.mac, port.host, port.port))
                neigh |= {(ip, port.mac) for ip in port.addresses}
        devices[vxlan_name(vni)] = (fdb, neigh)
    return devices


async def apply(
    ns: Namespace,
    bridges: Mapping[IPv4Network, str],
    overlay: Overlay,
    underlay: Namespace | None = None,
    mtu: int | None = None,
) -> None:
    """Make ``ns`` hold exactly the overlay's devices and entries (``underlay``: the
    namespace whose addresses carry it; None: the host's own, this process's), with
    ``mtu`` (None: the kernel's default)."""
    wanted = wanted_devices(overlay, bridges)
    present = await _devices(ns)
    gone = [
        name
        for name, dev in present.items()
        if name not in wanted or (dev.local, dev.port) != (overlay.local, overlay.port)
    ]
    await ns.ip_batch([f"link delete {name}" for name in gone], force=True)
    for name, bridge in wanted.items():
        if name not in present or name in gone:
            await _create(ns, name, int(name[len(VXLAN_PREFIX) :], 16), overlay, underlay)
        size = [f"link set {name} mtu {mtu}"] if mtu is not None else []
        await ns.ip_batch([*size, f"link set {name} master {bridge}", f"link set {name} up"])
        await run("bridge", "-n", ns.name, "link", "set", "dev", name, "learning", "off")
    for name, (fdb, neigh) in wanted_entries(overlay, bridges).items():
        await _sync_entries(ns, name, fdb, neigh, overlay.port)


async def _create(
    ns: Namespace, name: str, vni: int, overlay: Overlay, underlay: Namespace | None
) -> None:
    where = ("-n", underlay.name) if underlay is not None else ()
    await run(
        "ip", *where, "link", "add", name, "netns", ns.name, "type", "vxlan",
        "id", str(vni), "local", str(overlay.local), "dstport", str(overlay.port),
        "nolearning", "proxy",
    )  # fmt: skip
    error = ns.call(lambda: _no_local_bypass(socket.if_nametoindex(name)))
    if error:
        log.warning("%s: local bypass left on (%s)", name, os.strerror(-error))


def _no_local_bypass(ifindex: int) -> int:
    """Turn off the device's local bypass (``IFLA_VXLAN_LOCALBYPASS`` 0, Linux 6.5;
    iproute2 6.1 has no word for it): a frame for another device of the same host goes
    through UDP as to any host. Bypassed, it kept the sending namespace's conntrack entry,
    and the receiving VPC's firewall found the reply ``invalid`` (two nodes on one host).
    Returns the kernel's answer (0, or a negative errno)."""

    def attr(kind: int, payload: bytes) -> bytes:
        size = 4 + len(payload)
        return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)

    nested = 0x8000  # NLA_F_NESTED
    data = attr(_IFLA_VXLAN_LOCALBYPASS, b"\0")
    info = attr(_IFLA_INFO_KIND, b"vxlan\0") + attr(_IFLA_INFO_DATA | nested, data)
    body = struct.pack("=BxHiII", 0, 0, ifindex, 0, 0) + attr(_IFLA_LINKINFO | nested, info)
    header = struct.pack("=IHHII", 16 + len(body), _RTM_NEWLINK, _NLM_F_REQUEST_ACK, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as sock:
        sock.settimeout(5)
        sock.bind((0, 0))
        sock.send(header + body)
        reply = sock.recv(65536)
    return struct.unpack("=i", reply[16:20])[0]


_RTM_NEWLINK, _NLM_F_REQUEST_ACK = 16, 0x1 | 0x4
_IFLA_LINKINFO, _IFLA_INFO_KIND, _IFLA_INFO_DATA = 18, 1, 2
_IFLA_VXLAN_LOCALBYPASS = 31


async def _sync_entries(
    ns: Namespace,
    device: str,
    fdb: set[tuple[str, str, int]],
    neigh: set[tuple[str, str]],
    own_port: int,
) -> None:
    entries = await _json("bridge", "-n", ns.name, "-j", "fdb", "show", "dev", device)
    # (the port is shown only where it is not the device's own)
    have_fdb = {(e["mac"], e["dst"], int(e.get("port", own_port))) for e in entries if "dst" in e}
    have_master = {e["mac"] for e in entries if e.get("master") and e.get("state") == "static"}
    neighbours = await _json("ip", "-n", ns.name, "-j", "neigh", "show", "dev", device)
    have_neigh = {(n["dst"], n.get("lladdr", "")) for n in neighbours}
    wanted_macs = {mac for mac, _, _ in fdb}
    stale = [f"fdb del {mac} dev {device} self dst {dst}" for mac, dst, _ in have_fdb - fdb]
    stale += [f"fdb del {mac} dev {device} master" for mac in have_master - wanted_macs]
    new = [
        f"fdb append {mac} dev {device} self dst {dst} port {port}"
        for mac, dst, port in fdb - have_fdb
    ]
    new += [f"fdb replace {mac} dev {device} master static" for mac in wanted_macs - have_master]
    if stale:
        batch = ("bridge", "-n", ns.name, "-force", "-batch", "-")
        await run(*batch, stdin=_batch(stale), check=False)
    if new:
        await run("bridge", "-n", ns.name, "-batch", "-", stdin=_batch(new))
    wanted_ips = {ip for ip, _ in neigh}
    await ns.ip_batch(
        [f"neigh del {ip} dev {device}" for ip, _ in have_neigh if ip not in wanted_ips]
        + [
            f"neigh replace {ip} lladdr {mac} dev {device} nud permanent"
            for ip, mac in sorted(neigh - have_neigh)
        ],
        force=True,
    )


def _batch(lines: Iterable[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()
