"""A node's failover between the cloud's gateways (``node/gateways.py``) through a fake
transport: a gateway that cannot be reached is passed for the next, which is kept from
then on; an answer, even a refusal, is not asked again elsewhere; what a gateway lists is
kept in ``node.json`` (an old one with a single gateway still loads). The cloud's side
(``cloud/nodes/gateways.py``): announced gateways live for ``LIVE``, withdrawn ones not."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from karri.cloud.nodes.gateways import LIVE, GatewayRegistry
from karri.db.engine import Database
from karri.node import ExitReason, InstanceExit, InstanceMetadata
from karri.node.cloudlink import CloudLink
from karri.node.codec import encode
from karri.node.gateways import Gateways
from karri.node.membership import MEMBERSHIP, Membership

A, B, C = "https://10.0.0.1:8775", "https://10.0.0.2:8775", "https://10.0.0.3:8775"
ONE = InstanceMetadata(
    "i-1", "123456789012", "eucalyptus", "eucalyptus-1a", "r-1", "emi-1", "t2.micro",
    "172.31.0.5", "d0:0d:00:00:00:01", datetime(2026, 12, 6, tzinfo=UTC),
)  # fmt: skip
METADATA = encode(ONE, InstanceMetadata)


class Cloud:
    """Gateways by URL: ``down`` ones refuse connections, the others answer ``status``."""

    def __init__(self, down: set[str], status: int = 200) -> None:
        self.down, self.status = down, status
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        gateway = f"https://{request.url.host}:{request.url.port}"
        self.asked.append(gateway)
        if gateway in self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if request.url.path == "/v1/metadata" and self.status == 200:
            return httpx.Response(200, json={"answer": METADATA})
        return httpx.Response(self.status, json={"answer": None})


def linked(gateways: Gateways, cloud: Cloud) -> CloudLink:
    link = CloudLink(gateways, ssl.create_default_context())
    link.client = httpx.AsyncClient(transport=httpx.MockTransport(cloud))
    return link


def saves() -> tuple[list[tuple[str, tuple[str, ...]]], Callable[[str, tuple[str, ...]], None]]:
    saved: list[tuple[str, tuple[str, ...]]] = []
    return saved, lambda current, known: saved.append((current, known))


def test_a_lookup_goes_on_through_the_next_gateway_and_stays_there() -> None:
    saved, save = saves()
    gateways = Gateways(B, [A, B, C], save)
    cloud = Cloud(down={B})

    async def scenario() -> None:
        link = linked(gateways, cloud)
        assert (await link.lookup("i-1")).instance_id == "i-1"  # type: ignore[union-attr]
        assert cloud.asked == [B, C]  # after B in the list, then from its start
        assert gateways.current == C and saved == [(C, (A, B, C))]
        cloud.asked.clear()
        assert await link.lookup("i-1") is not None
        assert cloud.asked == [C]  # sticks with the one that answers
        cloud.down = {A, B, C}
        assert await link.lookup("i-1") is None  # none answers: no metadata
        assert gateways.current == C
        await link.close()

    asyncio.run(scenario())


def test_a_refusal_is_the_clouds_word_and_reports_fail_over_too() -> None:
    gateways = Gateways(A, [A, B])
    cloud = Cloud(down=set(), status=404)

    async def scenario() -> None:
        link = linked(gateways, cloud)
        assert await link.lookup("i-9") is None
        assert cloud.asked == [A]  # not asked again at B
        cloud.down, cloud.status = {A}, 200
        cloud.asked.clear()
        link.on_exit(InstanceExit("i-1", ExitReason.GUEST_SHUTDOWN, "", 0.0))
        await link.close()  # delivers what is being delivered
        assert cloud.asked == [A, B] and gateways.current == B

    asyncio.run(scenario())


def test_what_a_gateway_lists_is_checked_and_kept() -> None:
    saved, save = saves()
    gateways = Gateways(A, (), save)
    for junk in (None, "https://x", [], [1, 2], ["http://clear:1"], [A] * 33):
        gateways.learn(junk)
    assert gateways.known == (A,) and saved == []
    gateways.learn([C, A, "ftp://x", B + "/"])
    assert gateways.known == (A, B, C)  # the one in use first, then those after it
    assert saved == [(A, (C, A, B))]
    gateways.learn([C, A, B])
    assert len(saved) == 1  # nothing new: not written again
    gateways.learn([B, C])  # A no longer listed: still used while it answers
    assert gateways.known == (A, B, C)


def test_node_json_keeps_the_gateways_and_an_old_one_still_loads(tmp_path: Path) -> None:
    (tmp_path / MEMBERSHIP).write_text(json.dumps({"name": "n1", "zone": None, "gateway": A}))
    old = Membership.load(tmp_path)
    assert old == Membership("n1", None, A, ())
    gateways = old.reached(tmp_path)  # type: ignore[union-attr]
    gateways.learn([A, B])
    gateways.call(lambda url: _refused_at(url, A))
    assert Membership.load(tmp_path) == Membership("n1", None, B, (A, B))


def _refused_at(url: str, down: str) -> str:
    if url == down:
        raise httpx.ConnectTimeout("timed out")
    return url


def test_every_gateway_unreachable_raises_the_last_error() -> None:
    gateways = Gateways(A, [A, B])
    with pytest.raises(httpx.ConnectError, match=B):
        gateways.call(lambda url: (_ for _ in ()).throw(httpx.ConnectError(url)))
    assert gateways.current == A


def test_front_ends_announce_their_gateways_while_they_live(tmp_path: Path) -> None:
    now = [datetime(2026, 12, 6, tzinfo=UTC)]
    registry = GatewayRegistry(Database(f"sqlite:///{tmp_path / 'k.db'}"), lambda: now[0])
    registry.announce(B)
    registry.announce(A)
    assert registry.live() == [A, B]
    now[0] += LIVE / 2
    registry.announce(A)
    now[0] += LIVE / 2 + timedelta(seconds=1)
    assert registry.live() == [A]  # B unheard of for longer than LIVE
    registry.withdraw(A)
    assert registry.live() == []
    registry.announce(B)  # alive again
    assert registry.live() == [B]
