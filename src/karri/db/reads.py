"""Hot reads: a SELECT compiled once and run on the pooled DB-API connection.

For a Describe call that reads a dozen rows, SQLAlchemy's execution and result layers cost
about five times the query itself (result metadata is rebuilt per call). A ``CompiledQuery``
keeps what matters: the SQL is compiled by the engine's own dialect (so it stays portable),
each thread reads on a connection of its own (checking one out of the pool costs ten times
the query), and column values go through their types' result processors (so
``UTCDateTime`` still hands back aware datetimes). Reads run outside any transaction, so
each one sees everything committed before it.
"""

from __future__ import annotations

import threading
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.sql import Select


class _ThreadConnections(threading.local):
    def __init__(self) -> None:
        self.by_engine: weakref.WeakKeyDictionary[Engine, Any] = weakref.WeakKeyDictionary()


_THREAD = _ThreadConnections()


def thread_connection(engine: Engine) -> Any:
    """This thread's own DB-API connection to ``engine``, detached from the pool (so
    holding it takes no pool slot), opened with the engine's connect-time settings."""
    connection = _THREAD.by_engine.get(engine)
    if connection is None:
        connection = engine.raw_connection()
        connection.detach()
        _THREAD.by_engine[engine] = connection
    return connection


def _drop_thread_connection(engine: Engine) -> None:
    connection = _THREAD.by_engine.pop(engine, None)
    if connection is not None:
        connection.close()


class CompiledQuery:
    def __init__(self, engine: Engine, statement: Select) -> None:
        self.engine = engine
        compiled = statement.compile(dialect=engine.dialect)
        self.compiled = compiled
        self.sql = str(compiled)
        self.names = compiled.positiontup if compiled.positional else None
        processors: list[Callable[[Any], Any] | None] = [
            column.type.dialect_impl(engine.dialect).result_processor(engine.dialect, None)
            for column in statement.selected_columns
        ]
        self.processors = [(i, p) for i, p in enumerate(processors) if p is not None]
        self.row = namedtuple("Row", [column.key for column in statement.selected_columns])

    def first(self, **params: Any) -> Any:
        """The first row with attribute access (``row.name``), or None."""
        for row in self.rows(**params):
            return self.row._make(row)
        return None

    def rows(self, **params: Any) -> Iterator[tuple[Any, ...]]:
        """All rows, each a tuple in the order of the statement's columns."""
        values = self.compiled.construct_params(params)
        bound = tuple(values[name] for name in self.names) if self.names else values
        try:
            cursor = thread_connection(self.engine).cursor()
            try:
                cursor.execute(self.sql, bound)
                fetched = cursor.fetchall()
            finally:
                cursor.close()
        except Exception:
            _drop_thread_connection(self.engine)  # the next read starts afresh
            raise
        if not self.processors:
            yield from (tuple(row) for row in fetched)
            return
        for row in fetched:
            values_ = list(row)
            for i, process in self.processors:
                values_[i] = process(values_[i])
            yield tuple(values_)
