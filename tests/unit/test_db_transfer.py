"""`copy_database`: every row, in dependency order, into an empty database only."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

import karri.tables  # noqa: F401  (registers every table)
from karri.db.base import Base
from karri.db.engine import Database
from karri.db.models import AccessKey, Account, Tag
from karri.db.transfer import TransferError, copy_database

WHEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def filled(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    with db.write_session() as session:
        session.add(Account(id="000000000001", name="one", created_at=WHEN))
        session.flush()
        session.add(AccessKey(id="AKIA1", secret="s", account_id="000000000001", active=False))
        session.add(Tag(resource_id="vol-1", account_id="000000000001", key="k", value="v"))
    return db


def test_every_row_is_copied_as_it_was(tmp_path: Path) -> None:
    source, target = filled(tmp_path / "a.db"), Database(f"sqlite:///{tmp_path / 'b.db'}")
    counts = copy_database(source.engine, target.engine, Base.metadata)
    assert counts["accounts"] == 1 and counts["access_keys"] == 1 and counts["tags"] == 1
    assert set(counts) == set(Base.metadata.tables)
    with target.session() as session:
        assert session.get(Account, "000000000001").created_at == WHEN
        assert session.get(AccessKey, "AKIA1").active is False
        assert session.scalar(select(func.count()).select_from(Tag)) == 1


def test_a_target_with_rows_is_refused_untouched(tmp_path: Path) -> None:
    source, target = filled(tmp_path / "a.db"), filled(tmp_path / "b.db")
    with pytest.raises(TransferError, match="not empty"):
        copy_database(source.engine, target.engine, Base.metadata)
    with target.session() as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 1
