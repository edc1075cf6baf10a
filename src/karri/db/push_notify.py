"""Push requests from the other front ends to the leader: PostgreSQL's LISTEN/NOTIFY
(``cloud/push_requests.py`` says what a request is).

A front end without a running reconciler sends each request with ``pg_notify`` on
``CHANNEL`` once the change is committed (``PgNotify``); PostgreSQL delivers it to every
session listening at that moment. The leader listens on a connection of its own, on a
thread of its own (``PushListener``); when that connection drops it connects again, and
since what was sent meanwhile reached no one it asks for a resync (``missed``) once it
listens again. A leader that just took over listens before its reconciler's start,
which tells every VPC its state: nothing committed in between is missed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from sqlalchemy import Engine, text

from karri.db.leader_lock import kept_alive

log = logging.getLogger("karri.pushes")

CHANNEL = "karri_push"
RETRY = 1.0  # seconds between tries to listen again
WAKE = 1.0  # how often the listening thread looks whether it is stopped


class PgNotify:
    """``send(payload)``: one ``pg_notify`` in a transaction of its own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, payload: str) -> None:
        with self.engine.connect() as connection:
            connection.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": payload},
            )
            connection.commit()  # delivered at the commit


class Notice(Protocol):
    payload: str


class ListenConnection(Protocol):
    """What the listener needs of a psycopg connection (autocommit)."""

    def execute(self, query: Any) -> Any: ...
    def notifies(self, *, timeout: float | None = None) -> Iterator[Notice]: ...
    def close(self) -> None: ...


def listen_connection(url: str) -> Callable[[], ListenConnection]:
    return lambda: kept_alive(url)


class PushListener:
    """Hands each payload sent on ``CHANNEL`` to ``heard``, from a thread of its own;
    ``missed`` is called each time it listens again after a drop."""

    def __init__(
        self,
        connect: Callable[[], ListenConnection],
        heard: Callable[[str], None],
        missed: Callable[[], None],
        retry: float = RETRY,
        wake: float = WAKE,
    ) -> None:
        self.connect, self.heard, self.missed = connect, heard, missed
        self.retry, self.wake = retry, wake
        self.listening = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="karri-push-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        dropped = False
        while not self._stopped.is_set():
            try:
                connection = self.connect()
            except Exception as error:
                log.warning("cannot connect to hear push requests: %s", error)
                self._stopped.wait(self.retry)
                continue
            try:
                connection.execute(f"LISTEN {CHANNEL}")
                if dropped:  # what was sent meanwhile reached no one
                    self.missed()
                self.listening.set()
                self._hear(connection)
            except Exception as error:
                log.warning("hearing push requests: %s: listening again", error)
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    connection.close()
            dropped = True
            self._stopped.wait(self.retry)

    def _hear(self, connection: ListenConnection) -> None:
        while not self._stopped.is_set():
            for notice in connection.notifies(timeout=self.wake):
                try:
                    self.heard(notice.payload)
                except Exception:
                    log.exception("push request %r", notice.payload[:200])
