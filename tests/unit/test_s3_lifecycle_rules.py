"""Lifecycle rules in process: the document read and written back, which objects a rule
matches, when things are due (S3 rounds up to midnight UTC), and what one pass decides
for a key (``expiry.due``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from karri.api.s3.lifecycle import header_id
from karri.api.s3.lifecycle_document import parse_rules, rule_xml
from karri.walrus import S3Error
from karri.walrus.expiry import Version, due
from karri.walrus.lifecycle import (
    NEVER,
    Lifecycle,
    LifecycleRule,
    RuleFilter,
    after_days,
    lifecycle_from_json,
    midnight_after,
    prefixes,
)

T0 = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)


def doc(*rules: str) -> bytes:
    return f"<LifecycleConfiguration>{''.join(rules)}</LifecycleConfiguration>".encode()


def rule(body: str, status: str = "Enabled") -> str:
    return f"<Rule><Status>{status}</Status>{body}</Rule>"


def test_filters_match_prefix_tags_and_sizes() -> None:
    flt = RuleFilter("logs/", (("a", "1"), ("b", "2")), size_greater_than=10, size_less_than=100)
    assert flt.matches("logs/x", 50, {"a": "1", "b": "2", "c": "3"})
    assert not flt.matches("other/x", 50, {"a": "1", "b": "2"})
    assert not flt.matches("logs/x", 50, {"a": "1"})
    assert not flt.matches("logs/x", 50, {"a": "1", "b": "other"})
    assert not flt.matches("logs/x", 10, {"a": "1", "b": "2"})  # strictly greater
    assert not flt.matches("logs/x", 100, {"a": "1", "b": "2"})  # strictly less
    assert RuleFilter().matches("anything", 0, {})


def test_times_round_up_to_midnight_utc() -> None:
    assert after_days(T0, 1) == datetime(2026, 3, 12, tzinfo=UTC)
    midnight = datetime(2026, 3, 10, tzinfo=UTC)
    assert midnight_after(midnight) == midnight
    assert after_days(midnight, 1) == datetime(2026, 3, 11, tzinfo=UTC)
    naive = datetime(2026, 3, 10, 23, 59)
    assert midnight_after(naive) == datetime(2026, 3, 11, tzinfo=UTC)


def test_earliest_expiration_wins_and_disabled_rules_do_not_count() -> None:
    rules = parse_rules(
        doc(
            rule("<ID>slow</ID><Filter/><Expiration><Days>30</Days></Expiration>"),
            rule(
                "<ID>fast</ID><Filter><Prefix>tmp/</Prefix></Filter>"
                "<Expiration><Days>2</Days></Expiration>"
            ),
            rule("<ID>off</ID><Filter/><Expiration><Days>1</Days></Expiration>", status="Disabled"),
            rule(
                "<ID>dated</ID><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>"
                "<Expiration><Date>2026-03-11T00:00:00Z</Date></Expiration>"
            ),
        )
    )
    lifecycle = Lifecycle(rules)
    assert lifecycle.expiration("tmp/a", 1, {}, T0) == (after_days(T0, 2), "fast")
    assert lifecycle.expiration("x", 1, {}, T0) == (after_days(T0, 30), "slow")
    assert lifecycle.expiration("x", 1, {"k": "v"}, T0) == (
        datetime(2026, 3, 11, tzinfo=UTC),
        "dated",
    )


def test_json_and_xml_round_trip() -> None:
    body = doc(
        rule(
            "<ID>a</ID><Filter><And><Prefix>p/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag>"
            "<ObjectSizeGreaterThan>5</ObjectSizeGreaterThan></And></Filter>"
            "<Transition><Days>30</Days><StorageClass>STANDARD_IA</StorageClass></Transition>"
            "<Expiration><Days>40</Days></Expiration>"
        ),
        rule(
            "<ID>b</ID><Filter><Prefix></Prefix></Filter><NoncurrentVersionExpiration><NoncurrentDays>3"
            "</NoncurrentDays><NewerNoncurrentVersions>2</NewerNoncurrentVersions>"
            "</NoncurrentVersionExpiration><AbortIncompleteMultipartUpload>"
            "<DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload>"
        ),
    )
    rules = parse_rules(body)
    again = lifecycle_from_json(Lifecycle(rules).to_json())
    assert again is not None and again.rules == rules
    reread = parse_rules(doc(*(rule_xml(r) for r in rules)))
    assert reread == rules
    assert rules[0].filter == RuleFilter("p/", (("k", "v"),), 5, None)
    assert rules[1].filter_form == "prefix" and rules[1].abort_days == 1
    legacy = parse_rules(
        doc(rule("<ID>l</ID><Prefix>x/</Prefix><Expiration><Days>1</Days></Expiration>"))
    )
    assert legacy[0].written_as == "prefix"
    assert parse_rules(doc(rule_xml(legacy[0]))) == legacy


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (rule("<ID>a</ID><Filter/>"), "InvalidRequest"),  # no action
        (rule("<ID>a</ID><Filter/><Expiration><Days>x</Days></Expiration>"), "MalformedXML"),
        (rule("<ID>a</ID><Filter/><Expiration><Days>-1</Days></Expiration>"), "InvalidArgument"),
        (
            rule("<ID>a</ID><Filter/><Expiration><Days>1</Days><Days>2</Days></Expiration>"),
            "MalformedXML",
        ),
        (
            rule("<ID>a</ID><Filter/><Expiration><Date>tomorrow</Date></Expiration>"),
            "InvalidArgument",
        ),
        (
            rule(
                "<ID>a</ID><Filter><Prefix>" + "p" * 1025 + "</Prefix></Filter>"
                "<Expiration><Days>1</Days></Expiration>"
            ),
            "InvalidArgument",
        ),
        (
            rule(
                "<ID>a</ID><Filter><Tag><Key></Key><Value>v</Value></Tag></Filter>"
                "<Expiration><Days>1</Days></Expiration>"
            ),
            "MalformedXML",
        ),
        (
            rule(
                "<ID>a</ID><Filter><And><Tag><Key>k</Key><Value>1</Value></Tag>"
                "<Tag><Key>k</Key><Value>2</Value></Tag></And></Filter>"
                "<Expiration><Days>1</Days></Expiration>"
            ),
            "InvalidRequest",
        ),
        (
            rule(
                "<ID>a</ID><Filter/><Transition><Date>2030-01-01T00:00:00Z</Date>"
                "<StorageClass>GLACIER_IR</StorageClass></Transition>"
                "<Expiration><Days>10</Days></Expiration>"
            ),
            "InvalidRequest",  # Date and Days mixed in one rule
        ),
        (rule("<ID>a</ID><Filter/><Bogus/><Expiration><Days>1</Days></Expiration>"), None),
        ("<Other/>", "MalformedXML"),
    ],
)
def test_refusals(body: str, expected: str | None) -> None:
    if expected is None:
        parse_rules(doc(body))  # karri ignores elements of a rule it does not know
        return
    with pytest.raises(S3Error) as error:
        parse_rules(doc(body))
    assert error.value.code == expected


def test_prefixes_cover_every_rule_once() -> None:
    def with_prefix(prefix: str) -> LifecycleRule:
        return LifecycleRule("r" + prefix, True, RuleFilter(prefix), expiration_days=1)

    assert prefixes([with_prefix("a/b"), with_prefix("a/"), with_prefix("c")]) == ["a/", "c"]
    assert prefixes([with_prefix(""), with_prefix("x")]) == [""]


def version(seq: int, at: datetime, *, marker: bool = False, latest: bool = False) -> Version:
    return Version(seq, latest, marker, 0 if marker else 10, {}, at)


def lifecycle_of(**fields) -> Lifecycle:
    return Lifecycle((LifecycleRule("r", True, RuleFilter(), **fields),))


def test_due_current_versions() -> None:
    rules = lifecycle_of(expiration_days=2)
    versions = [version(1, T0, latest=True)]
    assert due("k", versions, rules, after_days(T0, 2) - timedelta(seconds=1)) == []
    assert due("k", versions, rules, after_days(T0, 2)) == [("current", 1)]


def test_due_noncurrent_versions_keep_the_newest() -> None:
    rules = lifecycle_of(noncurrent_days=1, newer_noncurrent_versions=1)
    times = [T0 + timedelta(days=n) for n in range(4)]
    versions = [
        version(4, times[3], latest=True),
        version(3, times[2]),
        version(2, times[1]),
        version(1, times[0]),
    ]
    # Version 2 became noncurrent at times[2], version 1 at times[1]; version 3 is kept.
    assert due("k", versions, rules, after_days(times[1], 1)) == [("noncurrent", 1)]
    assert due("k", versions, rules, after_days(times[2], 1)) == [
        ("noncurrent", 2),
        ("noncurrent", 1),
    ]


def test_due_lone_delete_markers() -> None:
    marker = [version(5, T0, marker=True, latest=True)]
    assert due("k", marker, lifecycle_of(expired_delete_marker=True), T0) == []
    next_midnight = midnight_after(T0)
    assert due("k", marker, lifecycle_of(expired_delete_marker=True), next_midnight) == [
        ("marker", 5)
    ]
    dated = lifecycle_of(expiration_date="2026-03-01T00:00:00.000Z")
    assert due("k", marker, dated, T0 + timedelta(days=9)) == []
    assert due("k", marker, lifecycle_of(noncurrent_days=1), T0 + timedelta(days=9)) == []
    by_days = lifecycle_of(expiration_days=3)
    assert due("k", marker, by_days, T0) == []
    assert due("k", marker, by_days, after_days(T0, 3)) == [("marker", 5)]
    hiding = [*marker, version(4, T0 - timedelta(days=1))]
    assert due("k", hiding, lifecycle_of(expired_delete_marker=True), next_midnight) == []


def test_rule_ids_in_headers() -> None:
    assert header_id("logs rule 1") == "logs rule 1"  # as S3 sends it
    assert header_id('a"b') == "a%22b"
    assert header_id("line\nbreak") == "line%0Abreak"
    assert header_id("é") == "%C3%A9"


def test_a_pass_on_a_real_store_acts_only_on_what_it_saw(tmp_path) -> None:
    """The sweep on SQLite and disk: due objects go, and a key written again after the scan
    is not deleted by the scan's decision (the deletion checks the version)."""
    from karri.db.engine import Database
    from karri.walrus import Walrus
    from karri.walrus.lifecycle import CONFIG

    walrus = Walrus(Database(f"sqlite:///{tmp_path / 'k.db'}"), tmp_path / "walrus")
    walrus.create_bucket("bkt-life", "111122223333")
    rules = Lifecycle((LifecycleRule("r", True, RuleFilter("old/"), expiration_days=1),))
    walrus.configure_bucket("bkt-life", CONFIG, rules.to_json())
    walrus.put_object("bkt-life", "old/a", b"a")
    walrus.put_object("bkt-life", "new/b", b"b")
    later = datetime.now(UTC) + timedelta(days=3)
    assert walrus.apply_lifecycle(datetime.now(UTC))["current"] == 0
    seen = _latest_seq(walrus, "old/a")
    walrus.put_object("bkt-life", "old/a", b"again")  # replaced after a scan saw it
    assert walrus.objects.expire_later("bkt-life", "old/a", seen, "current").result() is None
    assert walrus.get_object("bkt-life", "old/a") == b"again"
    assert walrus.apply_lifecycle(later) == {
        "current": 1, "noncurrent": 0, "marker": 0, "aborted": 0,
    }  # fmt: skip
    with pytest.raises(S3Error):
        walrus.head_object("bkt-life", "old/a")
    assert walrus.head_object("bkt-life", "new/b").size == 1


def _latest_seq(walrus, key: str) -> int:
    from sqlalchemy import select

    from karri.walrus.models import ObjectVersion

    with walrus.db.session() as session:
        found = session.scalar(
            select(ObjectVersion.seq).where(ObjectVersion.key == key, ObjectVersion.is_latest)
        )
    assert found is not None
    return found


def test_day_counts_past_the_calendar() -> None:
    with pytest.raises(S3Error) as error:  # the schema's Integer: 32 bits
        parse_rules(
            doc(rule("<ID>a</ID><Filter/><Expiration><Days>2147483648</Days></Expiration>"))
        )
    assert error.value.code == "MalformedXML"
    (far,) = parse_rules(
        doc(rule("<ID>a</ID><Filter/><Expiration><Days>2147483647</Days></Expiration>"))
    )
    lifecycle = Lifecycle((far,))
    assert after_days(T0, 2147483647) == NEVER
    assert lifecycle.expiration("k", 1, {}, T0) is None  # no date to tell
    assert (
        due("k", [version(1, T0, latest=True)], lifecycle, datetime.max.replace(tzinfo=UTC)) == []
    )


def test_a_pass_leaves_versions_under_object_lock(tmp_path) -> None:
    """Lifecycle never removes a version Object Lock protects (AWS's rule): the pass goes
    on past it. The lock is judged by the real clock, never by a pass's "as of" time."""
    from karri.db.engine import Database
    from karri.walrus import Walrus
    from karri.walrus.lifecycle import CONFIG
    from karri.walrus.locks import COMPLIANCE

    walrus = Walrus(Database(f"sqlite:///{tmp_path / 'k.db'}"), tmp_path / "walrus")
    walrus.create_bucket("bkt-lock", "111122223333", object_lock=True)
    walrus.configure_bucket("bkt-lock", "object-lock", {"mode": COMPLIANCE, "days": 10})
    walrus.put_object("bkt-lock", "k", b"first")
    walrus.put_object("bkt-lock", "k", b"second")  # the first is noncurrent now, locked
    rules = Lifecycle((LifecycleRule("r", True, RuleFilter(""), noncurrent_days=1),))
    walrus.configure_bucket("bkt-lock", CONFIG, rules.to_json())
    kept = walrus.apply_lifecycle(datetime.now(UTC) + timedelta(days=3))
    assert kept["noncurrent"] == 0
    assert len(walrus.list_versions("bkt-lock").objects) == 2
    assert walrus.apply_lifecycle(datetime.now(UTC) + timedelta(days=11))["noncurrent"] == 0
