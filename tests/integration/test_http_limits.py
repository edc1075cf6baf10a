"""Both ports bound a request's line and headers: an endless one is refused early with an
error in the API's shape, the connection closes, and the process does not grow."""

from __future__ import annotations

import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from tests.conftest import Karri
from tests.integration.s3_helpers import signed, unique
from tests.rawhttp import ENDLESS_HEADER, ENDLESS_URL, send_until_answered

LIMIT = 64 * 1024


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1])


@pytest.mark.parametrize("port", ["ec2", "s3"])
@pytest.mark.parametrize("where", ["header", "url"])
def test_endless_head_is_refused(karri: Karri, port: str, where: str) -> None:
    url = karri.ec2_url if port == "ec2" else karri.s3_url
    before = rss_kib(karri.process.pid)
    answer = send_until_answered(url, ENDLESS_HEADER if where == "header" else ENDLESS_URL)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 400 Bad Request"
    assert b"<Code>RequestHeaderSectionTooLarge</Code>" in rest
    assert b"connection: close" in rest.lower()
    assert (b"x-amz-request-id: " if port == "s3" else b"x-amzn-RequestId: ") in rest
    assert rss_kib(karri.process.pid) - before < 32 * 1024
    with urllib.request.urlopen(f"{karri.ec2_url}/karri/health", timeout=5) as health:
        assert health.status == 200


def test_headers_under_the_limit_and_a_body_in_the_same_packet(karri: Karri) -> None:
    """Only the head counts: headers near the bound with a large body in the same write pass."""
    s3 = karri.client("s3")
    bucket = unique("limits")
    s3.create_bucket(Bucket=bucket)
    url = f"{karri.s3_url}/{bucket}/big"
    body = b"b" * (1024 * 1024)
    headers, _ = signed(karri.admin, "PUT", url, body, {"x-padding": "p" * (LIMIT - 4096)})
    headers |= {"Content-Length": str(len(body)), "Connection": "close"}
    head = f"PUT /{bucket}/big HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == body


def wait_for_answer(url: str, sent: bytes) -> bytes:
    """Send ``sent``, then nothing; what the server answers before it closes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(sent)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_stalled_requests_time_out(karri: Karri) -> None:
    """A body or head that stops coming holds no connection for ever; S3 answers
    RequestTimeout after 20 idle seconds, and so does karri (three at once here)."""
    s3 = karri.client("s3")
    bucket = unique("stalled")
    s3.create_bucket(Bucket=bucket)
    url = f"{karri.s3_url}/{bucket}/stalled"
    headers, _ = signed(karri.admin, "PUT", url, b"", payload_hash="UNSIGNED-PAYLOAD")
    headers["Content-Length"] = "100"
    lines = [f"PUT /{bucket}/stalled HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    put = "\r\n".join(lines) + "\r\n"
    stalls = {
        "body": (karri.s3_url, put.encode() + b"\r\n" + b"only ten b"),
        "head": (karri.s3_url, b"GET /" + bucket.encode() + b" HTTP/1.1\r\nHost: x\r\n"),
        "ec2 head": (karri.ec2_url, b"POST / HTTP/1.1\r\nHost: x\r\n"),
        "nothing": (karri.s3_url, b""),
    }
    with ThreadPoolExecutor(len(stalls)) as pool:
        answers = dict(
            zip(stalls, pool.map(lambda s: wait_for_answer(*s), stalls.values()), strict=True)
        )
    for name in ("body", "head", "ec2 head"):
        assert answers[name].startswith(b"HTTP/1.1 400 Bad Request\r\n"), (name, answers[name])
        assert b"<Code>RequestTimeout</Code>" in answers[name], name
    assert answers["nothing"] == b""
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


UNPARSABLE = {
    "not http": b"HELLO THERE\r\n\r\n",
    "two lengths": b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\nab",
    "bad chunk": b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "space in name": b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
}


@pytest.mark.parametrize("port", ["ec2", "s3"])
def test_unparsable_requests_get_the_apis_error(karri: Karri, port: str) -> None:
    """uvicorn's own answer is a plain-text page; karri's is the API's error document."""
    url = karri.ec2_url if port == "ec2" else karri.s3_url
    with ThreadPoolExecutor(len(UNPARSABLE)) as pool:
        answers = dict(
            zip(
                UNPARSABLE,
                pool.map(lambda sent: wait_for_answer(url, sent), UNPARSABLE.values()),
                strict=True,
            )
        )
    for name, answer in answers.items():
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 400 Bad Request", (name, answer)
        assert b"<Code>BadRequest</Code>" in rest, (name, answer)


@pytest.mark.parametrize("port", ["ec2", "s3"])
def test_a_websocket_upgrade_is_plain_http(karri: Karri, port: str) -> None:
    """No WebSocket behind karri's ports: the handshake is answered as the HTTP request
    it also is."""
    parts = urlsplit(karri.ec2_url if port == "ec2" else karri.s3_url)
    upgrade = (
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(upgrade)
        answer = b""
        while b"</Error>" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    assert answer.startswith((b"HTTP/1.1 401 ", b"HTTP/1.1 403 ")), answer


def test_a_body_cut_short_by_the_client_gets_incomplete_body(karri: Karri) -> None:
    """The client sends half its Content-Length, then ends its side of the connection."""
    s3 = karri.client("s3")
    bucket = unique("halfclosed")
    s3.create_bucket(Bucket=bucket)
    url = f"{karri.s3_url}/{bucket}/half"
    headers, _ = signed(karri.admin, "PUT", url, b"", payload_hash="UNSIGNED-PAYLOAD")
    headers["Content-Length"] = "100"
    head = f"PUT /{bucket}/half HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n" + b"h" * 50)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert b"<Code>IncompleteBody</Code>" in answer
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def _logged(karri: Karri) -> str:
    files = [
        *karri.data_dir.glob("logs/*.log"),
        karri.data_dir.parent / f"{karri.data_dir.name}.out",
    ]
    return "".join(f.read_text(errors="replace") for f in files if f.exists())


@pytest.mark.parametrize("port", ["ec2", "s3"])
def test_a_huge_and_malformed_head_is_refused_once(karri: Karri, port: str) -> None:
    """Past the bound and unparsable in the same bytes: one refusal, no traceback."""
    parts = urlsplit(karri.ec2_url if port == "ec2" else karri.s3_url)
    sent = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (LIMIT + 1024) + b"\r\nBad Name: v\r\n"
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(sent)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.count(b"HTTP/1.1 400 Bad Request") == 1, answer
    assert "write_eof" not in _logged(karri)


def test_a_bad_request_pipelined_after_a_good_one_keeps_the_good_answer(karri: Karri) -> None:
    s3 = karri.client("s3")
    bucket = unique("pipelined")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"the good answer")
    url = f"{karri.s3_url}/{bucket}/k"
    headers, _ = signed(karri.admin, "GET", url)
    good = f"GET /{bucket}/k HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(good.encode() + b"\r\n" + b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    first, _, rest = answer.partition(b"the good answer")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n"), answer
    assert rest.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"<Code>BadRequest</Code>" in rest
