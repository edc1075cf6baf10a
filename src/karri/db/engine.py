"""Engine and sessions: SQLite in WAL mode by default, any SQLAlchemy URL otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on the disk when it returns (an fsync of the log per commit;
    # Walrus's group commit shares one among many writes).
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, pool_size=8)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def take_write_lock(connection: Connection) -> None:
    """Begin as a writer (SQLite's ``BEGIN IMMEDIATE``), before the first statement.

    SQLite otherwise starts a transaction as a reader and upgrades it at the first write,
    which fails (or, between statements run outside a transaction, goes stale) when
    another process wrote meanwhile. Taken first, the lock makes a read-then-write (which
    version is the latest?) atomic against every process sharing the database; waiting
    for it is bounded by ``busy_timeout``. Other databases keep their own isolation."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision of every component's migration branch."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str, *, run_migrations: bool = True) -> None:
        self.engine = make_engine(url)
        if run_migrations:
            migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """``session()`` holding the write lock from its start (see ``take_write_lock``)."""
        with self._sessions() as session, session.begin():
            take_write_lock(session.connection())
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core transaction holding the write lock from its start."""
        with self.engine.begin() as connection:
            take_write_lock(connection)
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
