"""The metadata service of a joined node: the identity document's signed views come from
the cloud (a fake of its link here, holding the key and its own record of each instance),
kept per instance and document; a cloud that refuses gives 404, one that does not answer
(or signs another document) 503 after a bounded wait, and the document and the rest of the
tree are still served from the node's data meanwhile."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from karri.node import InstanceMetadata
from karri.node.identity import IdentitySigner, SignedIdentity
from karri.node.imds import MetadataService, Tokens
from karri.node.metadata import identity_document
from karri.node.signedviews import SignedViews, Unavailable

from .conftest import LoopThread
from .guests import metadata
from .signing import check_signature, identity_key, pkcs7_content

KEY = identity_key()
CERT = KEY.certificate_pem
LAUNCH = dt.datetime(2026, 12, 7, 4, 0, 0, tzinfo=dt.UTC)
A = metadata("i-0000000a", "172.31.0.10", "52:54:00:00:00:0a", launch_time=LAUNCH)
B = metadata("i-0000000b", "172.31.0.11", "52:54:00:00:00:0b", launch_time=LAUNCH)
SIGNED = "/latest/dynamic/instance-identity/"


class FakeCloud:
    """The cloud's side of ``CloudLink.sign_identity``: it signs the document it builds
    from its own record of the instance, only for this node's instances (A, not B)."""

    def __init__(self, loop: LoopThread) -> None:
        self.records: dict[str, InstanceMetadata] = {A.instance_id: A}
        self.signer = IdentitySigner(KEY)
        self.asked: list[str] = []
        self.mode = "answers"  # "silent": no answer until back; "unreachable": fails at once
        self._loop = loop
        self._back = asyncio.Event()

    def back(self) -> None:
        """Answering again; a question it kept silent on ends as the link's timeout would."""
        self.mode = "answers"
        self._loop.loop.call_soon_threadsafe(self._back.set)

    async def sign_identity(self, instance_id: str, _document: bytes) -> SignedIdentity | None:
        self.asked.append(instance_id)
        if self.mode == "silent":
            await self._back.wait()
            raise Unavailable("timed out")
        if self.mode == "unreachable":
            raise Unavailable("connection refused")
        record = self.records.get(instance_id)
        return None if record is None else self.signer.sign(identity_document(record))


@pytest.fixture
def joined() -> Iterator[tuple[str, FakeCloud, dict[str, InstanceMetadata]]]:
    """The service as a joined node runs it: its own data (``served``) and the cloud."""
    loop = LoopThread()
    cloud = FakeCloud(loop)
    served = {"127.0.0.1": A, "127.0.0.2": B}
    views = SignedViews(cloud.sign_identity, wait=0.5)
    service = MetadataService(served.get, Tokens(b"k" * 32), views)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    loop.run(service.start(sock))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", cloud, served
    finally:
        cloud.back()
        loop.run(service.close())
        loop.close()


def client(url: str, source: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=url, transport=transport, timeout=30)


def wait_for(check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_signed_views_come_from_the_cloud_and_are_kept(joined, tmp_path: Path) -> None:
    url, cloud, served = joined
    with client(url) as c:
        assert c.get(SIGNED).text == "document\npkcs7\nrsa2048\nsignature"
        assert not cloud.asked  # a listing or the document asks nothing of the cloud
        document = c.get(SIGNED + "document").content
        assert document == identity_document(A)
        check_signature(CERT, document, c.get(SIGNED + "signature").content)
        pkcs7 = c.get(SIGNED + "pkcs7").text
        assert c.get(SIGNED + "rsa2048").text == pkcs7
        assert cloud.asked == ["i-0000000a"]  # once, then kept
        assert pkcs7_content(CERT, pkcs7, tmp_path) == document

        # started again: a new pendingTime, in the node's data and in the cloud's records
        later = dataclasses.replace(A, launch_time=LAUNCH + dt.timedelta(hours=1))
        served["127.0.0.1"] = cloud.records[A.instance_id] = later
        document = c.get(SIGNED + "document").content
        assert document == identity_document(later)
        check_signature(CERT, document, c.get(SIGNED + "signature").content)
        assert cloud.asked == ["i-0000000a"] * 2


def test_the_cloud_refuses_another_nodes_instance(joined) -> None:
    url, cloud, _served = joined
    with client(url, "127.0.0.2") as c:  # B: served here, but the cloud places it elsewhere
        assert c.get(SIGNED + "document").status_code == 200
        for view in ("signature", "pkcs7", "rsa2048"):
            answer = c.get(SIGNED + view)
            assert answer.status_code == 404 and "404 - Not Found" in answer.text
    assert set(cloud.asked) == {"i-0000000b"}


@pytest.mark.parametrize("mode", ["silent", "unreachable"])
def test_without_the_cloud_the_views_are_unavailable_and_the_rest_served(joined, mode) -> None:
    url, cloud, _served = joined
    cloud.mode = mode
    with client(url) as c:
        answer = c.get(SIGNED + "signature")  # answered after the wait, not the cloud
        assert answer.status_code == 503 and "503 - Service Unavailable" in answer.text
        assert c.get(SIGNED + "pkcs7").status_code == 503
        assert c.get(SIGNED + "document").content == identity_document(A)
        assert c.get("/latest/meta-data/instance-id").text == "i-0000000a"
        cloud.back()  # the next question has its views
        wait_for(lambda: c.get(SIGNED + "signature").status_code == 200)
        check_signature(CERT, identity_document(A), c.get(SIGNED + "signature").content)


def test_a_document_the_node_does_not_serve_is_not_served_signed(joined) -> None:
    """The node's data and the cloud's records disagree (the facts changed between the two
    reads): a signature over the cloud's document would not verify with the document
    served, so none is served until they agree."""
    url, cloud, _served = joined
    cloud.records[A.instance_id] = dataclasses.replace(A, instance_type="m1.large")
    with client(url) as c:
        assert c.get(SIGNED + "signature").status_code == 503
        cloud.records[A.instance_id] = A
        check_signature(CERT, identity_document(A), c.get(SIGNED + "signature").content)
