"""Engine and sessions: SQLite in WAL mode by default, any SQLAlchemy URL otherwise."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
# how long a write session waits for this process's other writers before it asks the
# database's lock anyway (that one's own wait is bounded by busy_timeout)
QUEUE_TIMEOUT = 10.0


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on the disk when it returns (an fsync of the log per commit;
    # Walrus's group commit shares one among many writes).
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def driver_url(url: str) -> str:
    """``postgresql://`` (libpq's own form) means psycopg 3, karri's PostgreSQL driver."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def make_engine(url: str) -> Engine:
    url = driver_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, pool_size=8)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_size=8, pool_pre_ping=True)


WRITE_LOCK = 0x6B61727269  # PostgreSQL's advisory lock key for karri's writers ("karri")


def take_write_lock(connection: Connection) -> None:
    """Begin as the one writer, before the first statement.

    SQLite: ``BEGIN IMMEDIATE``. SQLite otherwise starts a transaction as a reader and
    upgrades it at the first write, which fails (or, between statements run outside a
    transaction, goes stale) when another process wrote meanwhile. Taken first, the lock
    makes a read-then-write (which version is the latest?) atomic against every process
    sharing the database; waiting for it is bounded by ``busy_timeout``.

    PostgreSQL: a transaction-scoped advisory lock, the same one for every writer of
    every process (and host) sharing the database, so write sessions follow one another
    as on SQLite. Each statement after it (READ COMMITTED) sees every write committed
    before the lock was granted, so the read-then-write stays atomic against the other
    write sessions; the lock ends with the transaction, commit or rollback."""
    name = connection.dialect.name
    if name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision of every component's migration branch."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


READ_ONLY = "karri.read_only"  # Session.info key: set on the sessions of Database.session()


class WriteOutsideWriteSession(RuntimeError):
    """A write in a read session: it belongs in ``Database.write_session()``."""


class NestedWriteSession(RuntimeError):
    """A write session opened by a thread that already holds one: it would wait on itself
    (SQLite) or deadlock (PostgreSQL's advisory lock, taken on another connection)."""


def _refuse(session: Session, what: str) -> None:
    raise WriteOutsideWriteSession(
        f"{what} in a read session (Database.session()): writes run in "
        "Database.write_session(), which takes the write lock first (see take_write_lock)"
    )


def _refuse_flushed_changes(session: Session, _context, _instances) -> None:
    """``before_flush``: runs only when the session holds changes, so reads pay nothing."""
    if session.info.get(READ_ONLY) and (
        session.new or session.deleted or any(session.is_modified(o) for o in session.dirty)
    ):
        _refuse(session, "ORM changes flushed")


def _refuse_dml(state: ORMExecuteState) -> None:
    """``do_orm_execute``: Core ``insert``/``update``/``delete`` through the session."""
    if state.session.info.get(READ_ONLY) and (
        state.is_insert or state.is_update or state.is_delete
    ):
        _refuse(state.session, "an INSERT/UPDATE/DELETE statement")


class Database:
    """One engine and its session factory.

    ``session()`` is for reads and refuses to write (a flush with changes, or an
    insert/update/delete statement, raises ``WriteOutsideWriteSession``): on PostgreSQL
    (READ COMMITTED) a read-then-write there silently overwrites a concurrent change, on
    SQLite it fails with SQLITE_BUSY_SNAPSHOT. Writes run in ``write_session()``."""

    def __init__(self, url: str, *, run_migrations: bool = True) -> None:
        self.engine = make_engine(url)
        if run_migrations:
            migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "before_flush", _refuse_flushed_changes)
        event.listen(self._sessions, "do_orm_execute", _refuse_dml)
        self._writing = threading.local()  # .held: this thread is in a write transaction
        # This process's writers queue here before they ask the database's lock: SQLite's
        # busy handler polls a taken lock with sleeps of up to 100 ms, so writers of one
        # process contending through it (a wave of launches recording their instances)
        # waited far longer than the lock was held; a thread lock hands it on at release.
        self._writers = threading.Lock()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session in a transaction (rolled back on error): it refuses writes."""
        with self._sessions(info={READ_ONLY: True}) as session, session.begin():
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A session holding the write lock from its start (see ``take_write_lock``):
        committed on success, rolled back on error. Never opened inside another on the
        same thread (``NestedWriteSession``): pass the outer session down instead."""
        with self._one_writer(), self._sessions() as session, session.begin():
            take_write_lock(session.connection())
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core transaction holding the write lock from its start."""
        with self._one_writer(), self.engine.begin() as connection:
            take_write_lock(connection)
            yield connection

    @contextmanager
    def _one_writer(self) -> Iterator[None]:
        if getattr(self._writing, "held", False):
            raise NestedWriteSession(
                "a write session opened inside another on the same thread would wait on "
                "itself: pass the outer session down"
            )
        queued = self._writers.acquire(timeout=QUEUE_TIMEOUT)
        self._writing.held = True
        try:
            yield
        finally:
            self._writing.held = False
            if queued:
                self._writers.release()

    def dispose(self) -> None:
        self.engine.dispose()
