"""CompiledQuery returns what SQLAlchemy's own execution returns, types processed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import bindparam, create_engine, insert, select

from karri.db.base import Base
from karri.db.models import Account, KeyPair, Tag
from karri.db.reads import CompiledQuery, HotConnection
from karri.walrus.models import Bucket, ObjectVersion


def test_same_rows_as_sqlalchemy(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    Base.metadata.create_all(engine, tables=[Account.__table__, KeyPair.__table__, Tag.__table__])
    created = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(insert(Account), [{"id": "123456789012", "name": "a"}])
        connection.execute(
            insert(KeyPair),
            [
                {
                    "id": f"key-0000000{i}",
                    "account_id": "123456789012",
                    "name": f"k{i}",
                    "key_type": "rsa",
                    "fingerprint": "f",
                    "public_key": "p",
                    "created_at": created,
                }
                for i in range(3)
            ],
        )
        connection.execute(
            insert(Tag),
            [
                {
                    "resource_id": "key-00000001",
                    "key": "é",
                    "value": "",
                    "account_id": "123456789012",
                }
            ],
        )
    statement = (
        select(KeyPair.id, KeyPair.created_at, Tag.key, Tag.value)
        .outerjoin(Tag, Tag.resource_id == KeyPair.id)
        .where(KeyPair.account_id == bindparam("account"), KeyPair.name != "k2")
        .order_by(KeyPair.name)
    )
    rows = list(CompiledQuery(engine, statement).rows(account="123456789012"))
    with engine.connect() as connection:
        expected = [tuple(r) for r in connection.execute(statement, {"account": "123456789012"})]
    assert rows == expected
    assert rows == [
        ("key-00000000", created, None, None),
        ("key-00000001", created, "é", ""),
    ]
    assert rows[0][1].tzinfo is UTC
    assert list(CompiledQuery(engine, statement).rows(account="nobody")) == []


def test_hot_connection_writes_and_reads_as_sqlalchemy_does(tmp_path: Path) -> None:
    """Bind processors (JSON, booleans, aware datetimes, bytes) apply on the way in,
    result processors on the way out; other statements fall through to SQLAlchemy."""

    engine = create_engine(f"sqlite:///{tmp_path / 'h.db'}")
    Base.metadata.create_all(engine, tables=[Bucket.__table__, ObjectVersion.__table__])
    objects = ObjectVersion.__table__
    columns = [c.name for c in objects.columns if c.name != "seq"]
    write = insert(objects).values({name: bindparam(name) for name in columns})
    read = select(objects).where(objects.c.key == bindparam("k"))
    hot = HotConnection.compile(engine, [write, read])
    when = datetime(2026, 11, 27, 13, 40, 0, 123000, tzinfo=UTC)
    values = dict(
        bucket="b", key="k", version_id="null", is_latest=True, delete_marker=False,
        owner="o", size=3, etag="e", blob=None, data=b"abc", last_modified=when,
        headers={"content-type": "text/plain"}, meta={"x": "é"}, checksums={}, acl={"g": []},
        tags={}, parts=0, lock_mode="GOVERNANCE", lock_until=when, legal_hold=False,
        part_list=None, upload_id=None,
    )  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(Bucket.__table__), [{"name": "b", "owner": "o", "acl": {}}])
        fast = HotConnection(connection, hot)
        seq = fast.execute(write, values).inserted_primary_key[0]
        row = fast.execute(read, {"k": "k"}).first()
        again = fast.execute(read, {"k": "k"}).first()
        assert fast.execute(select(objects.c.seq), None).scalar() == seq  # not hot: SQLAlchemy
    with engine.connect() as connection:
        expected = connection.execute(read, {"k": "k"}).first()
    assert tuple(row) == tuple(expected)
    assert (row.is_latest, row.data, row.meta) == (True, b"abc", {"x": "é"})
    assert row.tags == {} and row.tags is not again.tags  # empty JSON: a fresh dict each time
    assert row.last_modified == when and row.last_modified.tzinfo is UTC


def test_stored_timestamps_render_as_iso8601_with_milliseconds() -> None:
    from karri.timestamps import iso8601, iso8601_stored

    assert iso8601_stored("2026-11-27 13:40:00.123456") == "2026-11-27T13:40:00.123Z"
    assert iso8601_stored("2026-11-27 13:40:00") == "2026-11-27T13:40:00.000Z"
    assert iso8601_stored("2026-11-27 13:40:00.5") == "2026-11-27T13:40:00.500Z"
    when = datetime(2026, 11, 27, 13, 40, 0, 123456)
    assert iso8601_stored(when) == iso8601(when) == "2026-11-27T13:40:00.123Z"


def test_http_dates_match_the_standard_library() -> None:
    from datetime import timedelta, timezone
    from email.utils import format_datetime

    from karri.timestamps import http_date

    start = datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    for hours in range(0, 24 * 800, 37):
        moment = start + timedelta(hours=hours, seconds=hours % 61)
        assert http_date(moment) == format_datetime(moment, usegmt=True)
    elsewhere = datetime(2026, 11, 27, 1, 2, 3, tzinfo=timezone(timedelta(hours=5)))
    assert http_date(elsewhere) == "Thu, 26 Nov 2026 20:02:03 GMT"
