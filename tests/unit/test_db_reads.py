"""CompiledQuery returns what SQLAlchemy's own execution returns, types processed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import bindparam, create_engine, insert, select

from karri.db.base import Base
from karri.db.models import Account, KeyPair, Tag
from karri.db.reads import CompiledQuery


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
