"""The node's NBD relay (``node/nbdrelay.py``): a unix socket in the node's data dir that
carries bytes to an export's TCP address, from any namespace; QEMU opens it as an NBD
server of type unix (``disks.protocol_node``)."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from karri.node.disks import NBD_TLS, protocol_node
from karri.node.nbdrelay import NbdRelays
from karri.node.spec import FileTarget, NbdTarget
from karri.pidfiles import alive


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_relay_carries_bytes_and_ends(echo: int, tmp_path: Path) -> None:
    relays = NbdRelays(tmp_path / "nbd")
    target = NbdTarget(f"nbd://127.0.0.1:{echo}/vol-12345678", "karri-cloud")
    local = relays.local("vol-12345678", target)
    sock = tmp_path / "nbd" / "vol-12345678.sock"
    assert isinstance(local, NbdTarget) and local.tls_hostname == "karri-cloud"
    assert local.url == f"nbd+unix:///vol-12345678?socket={sock}"
    assert relays.local("vol-12345678", target) == local  # the running relay is kept
    assert relays.local("vol-12345678", local) == local
    node = protocol_node(local)
    assert node["server"] == {"type": "unix", "path": str(sock)}
    assert (node["export"], node["tls-creds"]) == ("vol-12345678", NBD_TLS)

    payload = bytes(range(256)) * 1024
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(sock))
        client.sendall(payload)
        got = b""
        while len(got) < len(payload):
            got += client.recv(65536)
    assert got == payload

    pid = int((tmp_path / "nbd" / "vol-12345678.pid").read_text())
    relays.end("vol-12345678")
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sock.exists() and not alive(pid)


def test_files_pass_as_they_are(tmp_path: Path) -> None:
    relays = NbdRelays(tmp_path / "nbd")
    file = FileTarget(tmp_path / "vol")
    assert relays.local("vol-12345678", file) == file
    relays.end("vol-12345678")  # nothing to end
