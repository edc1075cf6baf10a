"""Reachability as AWS checks it: an ARP request to the instance, answered or not.

A guest answers ARP for its address only while its kernel runs and its network is up, so
an answer is evidence the instance is alive on its network; no answer from a guest that
answered before means it panicked, froze or lost its network. The requests go out from
the bridge in the instances' namespace through one packet socket (made inside the
namespace, used from the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from ipaddress import IPv4Address

log = logging.getLogger("karri.node")

ETH_P_ARP = 0x0806
_ARP_REQUEST, _ARP_REPLY = 1, 2
_HEADER = struct.Struct("!6s6sH")  # destination, source, ethertype
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # ethernet/IPv4 ARP


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def request(source_mac: bytes, source_ip: str, target_mac: str, target_ip: str) -> bytes:
    """An ARP request frame, sent straight to the guest's MAC (no broadcast)."""
    return _HEADER.pack(_mac_bytes(target_mac), source_mac, ETH_P_ARP) + _ARP.pack(
        1,
        0x0800,
        6,
        4,
        _ARP_REQUEST,
        source_mac,
        IPv4Address(source_ip).packed,
        b"\0" * 6,
        IPv4Address(target_ip).packed,
    )


def reply_sender(frame: bytes) -> tuple[str, str] | None:
    """(MAC, IP) of the sender of an ARP reply frame, None for anything else."""
    if len(frame) < _HEADER.size + _ARP.size:
        return None
    if _HEADER.unpack_from(frame)[2] != ETH_P_ARP:
        return None
    _, _, _, _, op, sha, spa, _, _ = _ARP.unpack_from(frame, _HEADER.size)
    if op != _ARP_REPLY:
        return None
    return ":".join(f"{b:02x}" for b in sha), str(IPv4Address(spa))


class ArpProber:
    """Sends ARP requests on the bridge and reports every reply to ``on_reply(mac, ip)``."""

    def __init__(
        self,
        open_socket: Callable[[], socket.socket],
        source_ip: str,
        on_reply: Callable[[str, str], None],
    ) -> None:
        self._open = open_socket
        self._source_ip = source_ip
        self._on_reply = on_reply
        self._sock: socket.socket | None = None
        self._mac = b""

    def start(self) -> None:
        sock = self._open()
        sock.setblocking(False)
        self._mac = sock.getsockname()[4]
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def probe(self, mac: str, ip: str) -> None:
        if self._sock is None:
            return
        try:
            self._sock.send(request(self._mac, self._source_ip, mac, ip))
        except OSError as exc:  # the bridge went away under us (a network rebuild)
            log.debug("ARP probe of %s: %s", ip, exc)

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                frame = self._sock.recv(128)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("ARP socket: %s", exc)
                return
            sender = reply_sender(frame)
            if sender is not None:
                self._on_reply(*sender)


def bridge_socket(interface: str) -> Callable[[], socket.socket]:
    """A packet socket for ARP bound to ``interface`` (call it inside the namespace)."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        try:
            sock.bind((interface, ETH_P_ARP))
        except BaseException:
            sock.close()
            raise
        return sock

    return make
