"""Group commit: one thread applies Walrus's object writes, many per transaction.

Every PUT and DELETE is a small transaction, and a durable commit costs an fsync of the
database's log. Requests queue their write (a function of the open connection); the
committer thread runs whatever has queued in one transaction and commits once, so
sixteen concurrent writers pay for one fsync, not sixteen, and nobody convoys on a lock.

If one write of a batch fails, the batch is rolled back and each of its writes is run
again in a transaction of its own, so a failure is only ever its own request's.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.sql import Executable

from karri.db.engine import Database
from karri.db.reads import HotConnection

log = logging.getLogger("karri.walrus")

MAX_BATCH = 256

# A write gets the connection and returns (its result, blobs it no longer references).
Write = Callable[[Any], tuple[Any, Iterable[str | None]]]


class GroupCommitter:
    """``submit(write)`` → a Future of the write's result, settled after the commit."""

    def __init__(
        self,
        db: Database,
        lock: AbstractContextManager,
        committed: Callable[[list[str | None]], None],
        hot: Iterable[Executable] = (),
    ) -> None:
        self._db = db
        self._hot = HotConnection.compile(db.engine, list(hot))
        self._lock = lock  # also held by Walrus's other writers
        self._committed = committed  # gets the stale blobs once they are safe to remove
        # ``hot``: the statements the writes execute, run on the DB-API directly.
        self._queue: queue.SimpleQueue[tuple[Write, Future]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def submit(self, write: Write) -> Future:
        future: Future = Future()
        self._queue.put((write, future))
        if self._thread is None:
            self._start()
        return future

    def run(self, write: Write) -> Any:
        return self.submit(write).result()

    def _start(self) -> None:
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="walrus-commit", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch = [(w, f) for w, f in batch if f.set_running_or_notify_cancel()]
            try:
                self._commit(batch)
            except BaseException as error:  # never leave a writer waiting, never stop
                log.exception("walrus: group commit failed")
                for _write, future in batch:
                    if not future.done():
                        future.set_exception(error)

    def _commit(self, batch: list[tuple[Write, Future]]) -> None:
        try:
            outcomes = self._transact(batch)
        except Exception as error:
            if len(batch) == 1:
                batch[0][1].set_exception(error)
                return
            for one in batch:  # one of them failed: each alone, so only it fails
                try:
                    self._settle([one], self._transact([one]))
                except Exception as alone:
                    one[1].set_exception(alone)
            return
        self._settle(batch, outcomes)

    def _transact(self, batch: list[tuple[Write, Future]]) -> list[tuple[Any, Any]]:
        """Run the writes in one transaction and commit it; their (result, stale blobs)."""
        if not batch:
            return []
        with self._lock, self._db.write_connection() as connection:
            hot = HotConnection(connection, self._hot)
            return [write(hot) for write, _future in batch]

    def _settle(self, batch: list[tuple[Write, Future]], outcomes: list[tuple[Any, Any]]) -> None:
        """After the commit: hand over the stale blobs, then answer the writers."""
        stale = [blob for _result, blobs in outcomes for blob in blobs]
        if stale:
            self._committed(stale)  # before the writers learn of it: they may wait for it
        for (_write, future), (result, _blobs) in zip(batch, outcomes, strict=True):
            future.set_result(result)
