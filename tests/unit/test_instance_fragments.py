"""The kept instance XML (``api/ec2/instance_fragments.py``): a fragment serves only its
version, an older rendering never replaces a newer one, memory stays within the budget;
the answer written around kept fragments is the one the full path writes."""

from __future__ import annotations

from typing import NamedTuple

from karri.api.ec2.instance_fragments import Fragment, FragmentCache, InstanceXml
from karri.api.ec2.model import ec2_model
from karri.api.ec2.render import render_response


def fragment(version: int, size: int = 10) -> Fragment:
    return Fragment(version, b"i" * size, b"")


def test_a_fragment_serves_its_version_only() -> None:
    cache = FragmentCache()
    cache.put("i-1", fragment(3))
    assert cache.get("i-1", 3) == fragment(3)
    assert cache.get("i-1", 2) is None and cache.get("i-1", 4) is None
    assert cache.get("i-2", 3) is None


def test_an_older_rendering_does_not_replace_a_newer_one() -> None:
    cache = FragmentCache()
    cache.put("i-1", fragment(5))
    cache.put("i-1", fragment(4))
    assert cache.get("i-1", 5) is not None and cache.get("i-1", 4) is None
    cache.put("i-1", fragment(6))
    assert cache.get("i-1", 6) is not None and len(cache) == 1


def test_past_the_budget_the_oldest_kept_go_first() -> None:
    cache = FragmentCache(budget=25)
    for n in range(3):
        cache.put(f"i-{n}", fragment(1))
    assert cache.get("i-0", 1) is None
    assert cache.get("i-1", 1) is not None and cache.get("i-2", 1) is not None
    cache.put("i-1", fragment(2, size=24))  # alone it fills the budget
    assert len(cache) == 1 and cache.get("i-1", 2) is not None


class Listed(NamedTuple):
    id: str
    reservation_id: str
    owner_id: str
    version: int


def info(instance_id: str, group: str) -> tuple[dict, list[dict]]:
    groups = [{"GroupName": group, "GroupId": f"sg-{group}"}]
    return {"InstanceId": instance_id, "SecurityGroups": groups}, groups


def test_the_answer_around_kept_fragments_is_the_full_paths() -> None:
    model = ec2_model()
    xml = InstanceXml(model)
    page = [
        Listed("i-1", "r-1", "111122223333", 1),
        Listed("i-2", "r-1", "111122223333", 1),
        Listed("i-3", "r-2", "111122223333", 1),
    ]
    rendered = {i.id: info(i.id, "a" if i.id != "i-2" else "b") for i in page}
    kept = {i: xml.fragment(1, *rendered[i]) for i in rendered}
    full = {
        "Reservations": [
            {
                "ReservationId": rid,
                "OwnerId": "111122223333",
                "Groups": rendered[ids[0]][1],
                "Instances": [rendered[i][0] for i in ids],
            }
            for rid, ids in (("r-1", ["i-1", "i-2"]), ("r-2", ["i-3"]))
        ],
        "NextToken": "t",
    }
    answer = xml.answer(page, kept, "t")
    version = "2016-11-15"
    assert render_response(model, "DescribeInstances", answer, "id", version) == render_response(
        model, "DescribeInstances", full, "id", version
    )
    empty = xml.answer([], {}, None)
    assert render_response(model, "DescribeInstances", empty, "id", version) == render_response(
        model, "DescribeInstances", {"Reservations": [], "NextToken": None}, "id", version
    )
