"""Stand-ins for instances on a VPC's bridge, without QEMU: each "guest" is a network
namespace holding one end of a veth pair, the other end a port of the bridge ``br0`` in
the VPC's namespace, with a TCP server on sockets opened inside it (setns). Root only."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from dataclasses import dataclass, field

from karri.node.netns import Namespace
from tests.hosts import sh

SUBNET = "172.31.0"
PORT = 80
OUTSIDE, HOST_SIDE = "198.51.100.1", "198.51.100.2"  # beyond a public interface (TEST-NET-2)


@dataclass
class Guest:
    """A namespace standing in for an instance: its tap on the bridge and a TCP server."""

    ns: Namespace
    tap: str
    ip: str
    heard: list[str] = field(default_factory=list)  # the sources of datagrams received
    _servers: list[socket.socket] = field(default_factory=list)

    def serve(self, port: int = PORT) -> None:
        """Answer each line with ``<own ip> <line>``, until the client closes."""
        server = self.ns.call(socket.socket)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", port))
        server.listen(16)
        self._servers.append(server)

        def echo(conn: socket.socket) -> None:
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(self.ip.encode() + b" " + data)

        def accept() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                threading.Thread(target=echo, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()

    def serve_udp(self, port: int) -> None:
        """Answer each datagram with ``<own ip> <datagram>``."""
        server = self.ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        server.bind(("0.0.0.0", port))
        self._servers.append(server)

        def answer() -> None:
            while True:
                try:
                    data, peer = server.recvfrom(1024)
                    if peer is None:  # shut down
                        return
                    self.heard.append(peer[0])
                    server.sendto(self.ip.encode() + b" " + data, peer)
                except OSError:
                    return

        threading.Thread(target=answer, daemon=True).start()

    def ask_udp(self, ip: str, port: int, timeout: float = 0.5) -> str | None:
        """A datagram's answer, from inside this guest, or None."""
        sock = self.ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        with sock:
            sock.settimeout(timeout)
            sock.sendto(b"ping", (ip, port))
            try:
                return sock.recv(1024).decode()
            except OSError:
                return None

    @property
    def mac(self) -> str:
        out = subprocess.run(
            ["ip", "-n", self.ns.name, "-o", "link", "show", "eth0"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return out.split("link/ether ")[1].split()[0]

    def connect(self, ip: str, port: int = PORT, timeout: float = 0.5) -> socket.socket | None:
        """A connection from inside this guest, or None if no answer came in ``timeout``."""
        sock = self.ns.call(socket.socket)
        sock.settimeout(timeout)
        try:
            sock.connect((ip, port))
        except OSError:
            sock.close()
            return None
        return sock

    def reaches(self, ip: str, port: int = PORT, timeout: float = 0.5) -> bool:
        sock = self.connect(ip, port, timeout)
        if sock is None:
            return False
        with sock:
            return exchange(sock) == f"{ip} ping"

    def close(self) -> None:
        for server in self._servers:
            with contextlib.suppress(OSError):  # a datagram socket is not connected
                server.shutdown(socket.SHUT_RDWR)
            server.close()


def exchange(sock: socket.socket) -> str | None:
    try:
        sock.sendall(b"ping")
        return sock.recv(1024).decode()
    except OSError:
        return None


class Vpc:
    """A VPC namespace with bridge br0 (gateway .1) and guests plugged into it."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ns = Namespace(f"{prefix}-vpc")
        self.guests: list[Guest] = []
        sh("ip", "netns", "add", self.ns.name)
        for line in (
            "link set lo up",
            "link add br0 type bridge",
            f"address add {SUBNET}.1/20 dev br0",
            "link set br0 up",
        ):
            sh("ip", "-n", self.ns.name, *line.split())

    def bridge(self, name: str, subnet: str, prefix: int = 20) -> None:
        """Another subnet's bridge, its gateway ``<subnet>.1`` (e.g. subnet "172.31.16")."""
        for line in (
            f"link add {name} type bridge",
            f"address add {subnet}.1/{prefix} dev {name}",
            f"link set {name} up",
        ):
            sh("ip", "-n", self.ns.name, *line.split())

    def guest(self, host: int, bridge: str = "br0", subnet: str = SUBNET) -> Guest:
        """A guest at ``<subnet>.<host>`` on ``bridge`` (a /20, gateway .1)."""
        guest = Guest(Namespace(f"{self.prefix}-g{host}"), f"kt{host}", f"{subnet}.{host}")
        sh("ip", "netns", "add", guest.ns.name)
        self.guests.append(guest)
        sh("ip", "-n", self.ns.name, "link", "add", guest.tap, "type", "veth", "peer", "name",
           "eth0", "netns", guest.ns.name)  # fmt: skip
        sh("ip", "-n", self.ns.name, "link", "set", guest.tap, "master", bridge, "up")
        for line in (
            "link set lo up",
            f"address add {guest.ip}/20 dev eth0",
            "link set eth0 up",
            f"route add default via {subnet}.1",
        ):
            sh("ip", "-n", guest.ns.name, *line.split())
        guest.serve()
        return guest

    def close(self) -> None:
        for guest in self.guests:
            guest.close()
            subprocess.run(["ip", "netns", "delete", guest.ns.name], check=False)
        subprocess.run(["ip", "netns", "delete", self.ns.name], check=False)


def answer(ip: str, port: int = PORT, timeout: float = 0.5) -> str | None:
    """What a server answers a connection from the host's own namespace, or None."""
    with socket.socket() as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((ip, port))
        except OSError:
            return None
        return exchange(sock)


class Outside:
    """The network beyond the uplink: a namespace with an HTTP server whose page is the
    address the connection came from."""

    def __init__(self, prefix: str) -> None:
        self.ns = Namespace(f"{prefix}-out")
        self.interface = f"kuo{os.getpid() % 10**8}"  # the host's end: the public interface
        sh("ip", "netns", "add", self.ns.name)
        sh("ip", "link", "add", self.interface, "type", "veth", "peer", "name", "eth0",
           "netns", self.ns.name)  # fmt: skip
        sh("ip", "address", "add", f"{HOST_SIDE}/24", "dev", self.interface)
        sh("ip", "link", "set", self.interface, "up")
        for line in ("link set lo up", f"address add {OUTSIDE}/24 dev eth0", "link set eth0 up"):
            sh("ip", "-n", self.ns.name, *line.split())
        self.server = self.ns.call(socket.socket)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((OUTSIDE, 8080))
        self.server.listen(8)
        threading.Thread(target=self._answer, daemon=True).start()

    def _answer(self) -> None:
        while True:
            try:
                conn, (source, _) = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(4096)  # the request, whatever it is
                    body = source.encode()
                    head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
                    conn.sendall(head.encode() + body)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()
        subprocess.run(["ip", "link", "delete", self.interface], check=False)
        subprocess.run(["ip", "netns", "delete", self.ns.name], check=False)
