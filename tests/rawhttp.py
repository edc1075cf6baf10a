"""Requests no HTTP client library would send, over a plain socket."""

from __future__ import annotations

import select
import socket
from urllib.parse import urlsplit

ENDLESS_HEADER = b"GET /bucket/key HTTP/1.1\r\nHost: x\r\nX-Endless: "
ENDLESS_URL = b"GET /bucket/"


def send_until_answered(
    url: str, head_start: bytes, filler: bytes = b"a" * 65536, most: int = 64 << 20
) -> bytes:
    """Send ``head_start`` then ``filler`` until the server answers (or ``most`` bytes);
    the whole answer, read until the server closes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head_start)
        sent = 0
        while sent < most and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(filler)
            except OSError:  # refused and closed: the answer is waiting
                break
            sent += len(filler)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer
