"""Which front end of a cloud runs its background work: a session-scoped PostgreSQL
advisory lock (``LEADER_LOCK``, not ``engine.WRITE_LOCK``: that one is per transaction)
held on a connection of its own for the front end's life (``cloud/leadership.py`` polls
it). PostgreSQL drops a session's advisory locks when its connection ends, however the
front end ends (SIGKILL included). The connection asks for TCP keepalives both ways
(probes after 5 s idle, every 2 s, 3 unanswered: about 11 s), so that the server drops
the lock of a front end cut off by the network, not after the kernel's two hours.

On SQLite there is one front end (the data dir's ``flock``): ``LocalLeaderLock`` is
always held.
"""

from __future__ import annotations

import contextlib
from typing import Any

LEADER_LOCK = 0x6B61727269 + 1  # "karri" + 1: the leader's key, beside the writers'
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
SERVER_KEEPALIVE = (
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; "
    "SET tcp_keepalives_count = 3; SET statement_timeout = 5000"
)


def libpq_url(url: str) -> str:
    """psycopg's own form of a SQLAlchemy URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def kept_alive(url: str, connect_timeout: int = 5) -> Any:
    """An autocommit connection of its own whose loss both ends notice within seconds
    (``KEEPALIVE``, ``SERVER_KEEPALIVE``): the leader lock's, the push listener's."""
    import psycopg

    connection = psycopg.connect(
        libpq_url(url), autocommit=True, connect_timeout=connect_timeout, **KEEPALIVE
    )
    try:
        connection.execute(SERVER_KEEPALIVE)
    except Exception:
        connection.close()
        raise
    return connection


class LocalLeaderLock:
    """SQLite: the only front end leads."""

    def try_acquire(self) -> bool:
        return True

    def holds(self) -> bool:
        return True

    def release(self) -> None:
        pass


class PostgresLeaderLock:
    """``pg_try_advisory_lock(LEADER_LOCK)`` on a connection of its own (blocking calls:
    the caller bounds them)."""

    def __init__(self, url: str, connect_timeout: int = 5) -> None:
        self.url = libpq_url(url)
        self.connect_timeout = connect_timeout
        self._connection: Any = None
        self._held = False

    def _connect(self) -> Any:
        if self._connection is None:
            self._connection = kept_alive(self.url, self.connect_timeout)
        return self._connection

    def try_acquire(self) -> bool:
        """Whether this front end leads now (it took the lock, or held it already)."""
        try:
            row = self._connect().execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,))
            self._held = bool(row.fetchone()[0])
        except Exception:
            self._drop()
            raise
        return self._held

    def holds(self) -> bool:
        """Whether the lock is still this session's (False: its connection is gone, and
        with it the lock). Raises when the database does not answer."""
        if not self._held or self._connection is None:
            return False
        high, low = LEADER_LOCK >> 32, LEADER_LOCK & 0xFFFFFFFF
        try:
            row = self._connection.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND classid = %s AND objid = %s AND objsubid = 1",
                (high, low),
            ).fetchone()
        except Exception:
            self._drop()
            raise
        return bool(row[0])

    def release(self) -> None:
        self._drop()

    def _drop(self) -> None:
        self._held = False
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


def on_postgres(database_url: str) -> bool:
    """Whether the cloud's state is in PostgreSQL (else SQLite: one front end)."""
    return database_url.startswith(("postgresql", "postgres:"))


def leader_lock(database_url: str) -> LocalLeaderLock | PostgresLeaderLock:
    if on_postgres(database_url):
        return PostgresLeaderLock(database_url)
    return LocalLeaderLock()
