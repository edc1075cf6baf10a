"""A plain ``Database.session()`` never writes; ``write_session()`` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update

from karri.db.engine import Database, NestedWriteSession, WriteOutsideWriteSession
from karri.db.models import Account


@pytest.fixture
def db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    with db.write_session() as session:
        session.add(Account(id="123456789012", name="a"))
    yield db
    db.dispose()


def _names(db: Database) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(Account.name).order_by(Account.id)))


def test_reads_pass(db: Database) -> None:
    with db.session() as session:
        account = session.get(Account, "123456789012")
        assert account is not None
        session.flush()  # nothing to flush: no error
    assert _names(db) == ["a"]


@pytest.mark.parametrize(
    "write",
    [
        lambda s: s.add(Account(id="210987654321", name="b")),
        lambda s: setattr(s.get(Account, "123456789012"), "name", "z"),
        lambda s: s.delete(s.get(Account, "123456789012")),
    ],
    ids=["add", "change", "delete"],
)
def test_orm_changes_refused(db: Database, write) -> None:
    with pytest.raises(WriteOutsideWriteSession, match="write_session"), db.session() as session:
        write(session)
        session.flush()
    assert _names(db) == ["a"]


def test_refused_at_commit_too(db: Database) -> None:
    with pytest.raises(WriteOutsideWriteSession), db.session() as session:
        session.add(Account(id="210987654321", name="b"))
    assert _names(db) == ["a"]


@pytest.mark.parametrize(
    "statement",
    [
        insert(Account).values(id="210987654321", name="b"),
        update(Account).values(name="z"),
        delete(Account),
    ],
    ids=["insert", "update", "delete"],
)
def test_core_dml_refused(db: Database, statement) -> None:
    with pytest.raises(WriteOutsideWriteSession, match="write_session"), db.session() as session:
        session.execute(statement)
    assert _names(db) == ["a"]


def test_unchanged_assignment_is_not_a_write(db: Database) -> None:
    with db.session() as session:
        session.get(Account, "123456789012").name = "a"  # same value: nothing to write
    assert _names(db) == ["a"]


def test_write_session_writes(db: Database) -> None:
    with db.write_session() as session:
        session.add(Account(id="210987654321", name="b"))
        session.flush()
        session.execute(update(Account).where(Account.id == "123456789012").values(name="z"))
    assert _names(db) == ["z", "b"]


def test_nested_write_session_refused(db: Database) -> None:
    with db.write_session(), pytest.raises(NestedWriteSession), db.write_connection():
        pass
    with db.write_session() as session:  # the flag was cleared
        session.execute(update(Account).values(name="n"))
    assert _names(db) == ["n"]
