"""A joining node checks the cloud it reached: a join answer whose CA is not the one the
token names is refused, and nothing is kept (a stand-in cloud on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from karri.cloud.nodes.ca import NodeCA
from karri.node.membership import JoinError, Membership, join
from karri.pki import csr_for, new_key


def serve(answer: dict) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_node_refuses_a_cloud_whose_ca_the_token_does_not_name(tmp_path: Path) -> None:
    real, impostor = NodeCA(tmp_path / "real"), NodeCA(tmp_path / "impostor")
    cert, _serial = impostor.issue(csr_for(new_key(), "n1"), "n1")
    server = serve({"ca": impostor.pem.decode(), "certificate": cert.decode(), "gateway": "x"})
    token = f"abcdef.{'0' * 32}.{real.fingerprint}"
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(JoinError, match="not the one the token names"):
            join(tmp_path / "node", url, token, "n1", None)
        assert Membership.load(tmp_path / "node") is None
        assert not (tmp_path / "node" / "node.pem").exists()
        with pytest.raises(JoinError, match="not a karri join token"):
            join(tmp_path / "node", url, "nonsense", "n1", None)
    finally:
        server.shutdown()
