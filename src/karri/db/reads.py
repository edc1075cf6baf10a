"""Hot statements: compiled once, run straight on the DB-API connection.

For a Describe call that reads a dozen rows, SQLAlchemy's execution and result layers cost
about five times the query itself (result metadata is rebuilt per call). A ``CompiledQuery``
keeps what matters: the SQL is compiled by the engine's own dialect (so it stays portable),
each thread reads on a connection of its own (checking one out of the pool costs ten times
the query), and column values go through their types' result processors (so
``UTCDateTime`` still hands back aware datetimes). Reads run outside any transaction, so
each one sees everything committed before it. A ``HotConnection`` does the same for the
statements of a write transaction (parameters through their types' bind processors).
"""

from __future__ import annotations

import threading
import weakref
from collections import namedtuple
from collections.abc import Iterator
from typing import Any

from sqlalchemy import JSON, Connection, Engine, Result
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable, Select


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
        if engine.dialect.name == "postgresql":  # reads outside any transaction, as SQLite's
            connection.rollback()  # whatever the pool's ping began
            connection.dbapi_connection.autocommit = True
        _THREAD.by_engine[engine] = connection
    return connection


def _drop_thread_connection(engine: Engine) -> None:
    connection = _THREAD.by_engine.pop(engine, None)
    if connection is not None:
        connection.close()


def _empty_json_first(process: Any) -> Any:
    """A JSON column's processor that skips the decoder for the commonest value, ``{}``
    (an object without user metadata, tags or checksums: three of its five columns)."""

    def decode(value: Any) -> Any:
        return {} if value == "{}" else process(value)

    return decode


_RECORD_TYPES: dict[tuple[str, ...], Any] = {}


def records(result: Result[Any]) -> list[Any]:
    """A result's rows as named tuples: read by attribute in a few tens of nanoseconds,
    where a SQLAlchemy ``Row``'s attribute costs microseconds (most of the time of a
    Describe listing thousands of rows, each read some fifty times)."""
    keys = tuple(result.keys())
    record = _RECORD_TYPES.get(keys)
    if record is None:
        record = _RECORD_TYPES[keys] = namedtuple("Record", keys, rename=True)  # type: ignore[misc]
    return [record._make(row) for row in result.all()]


def read_records(session: Session, statement: Select) -> list[Any]:
    """``records`` of a SELECT of columns, run on the session's connection after its
    pending changes are flushed (as the session's own ``execute`` would), but without the
    ORM's row loading, which at thousands of rows costs more than the query itself."""
    session.flush()
    return records(session.connection().execute(statement))


class _Compiled:
    """One statement compiled by a dialect, with its parameter and column processors."""

    def __init__(self, dialect: Any, statement: Executable, row_type: Any = None) -> None:
        compiled = statement.compile(dialect=dialect)
        self.compiled = compiled
        self.sql = str(compiled)
        self.names = compiled.positiontup if compiled.positional else None
        self.binders = {}
        for key, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self.binders[key] = process
        columns = list(statement.selected_columns) if isinstance(statement, Select) else []
        self.processors = [
            (i, _empty_json_first(p) if isinstance(column.type, JSON) else p)
            for i, column in enumerate(columns)
            if (p := column.type.dialect_impl(dialect).result_processor(dialect, None))
        ]
        names = [str(column.key) for column in columns]  # rename: max(...) has no name
        self.row = row_type or (namedtuple("Row", names, rename=True) if columns else None)

    def bound(self, params: dict[str, Any]) -> Any:
        values = self.compiled.construct_params(params)
        for name, process in self.binders.items():
            if name in values:
                values[name] = process(values[name])
        return tuple(values[name] for name in self.names) if self.names else values

    def make_row(self, raw: tuple[Any, ...]) -> Any:
        if self.processors:
            values = list(raw)
            for i, process in self.processors:
                values[i] = process(values[i])
            raw = tuple(values)
        return self.row._make(raw) if self.row is not None else raw


class CompiledQuery:
    """A SELECT run on this thread's own connection, outside any transaction."""

    def __init__(self, engine: Engine, statement: Select, row_type: Any = None) -> None:
        """``row_type``: a NamedTuple class for the rows (one is made up by default)."""
        self.engine = engine
        self._compiled = _Compiled(engine.dialect, statement, row_type)

    def first(self, **params: Any) -> Any:
        """The first row (a named tuple), or None."""
        for row in self.rows(**params):
            return row
        return None

    def rows(self, **params: Any) -> list[Any]:
        """All rows, named tuples in the order of the statement's columns."""
        compiled = self._compiled
        try:
            cursor = thread_connection(self.engine).cursor()
            try:
                cursor.execute(compiled.sql, compiled.bound(params))
                fetched = cursor.fetchall()
            finally:
                cursor.close()
        except Exception:
            _drop_thread_connection(self.engine)  # the next read starts afresh
            raise
        return [compiled.make_row(raw) for raw in fetched]


class HotConnection:
    """A SQLAlchemy Connection whose ``execute`` runs a fixed set of hot statements
    straight on the DB-API cursor (same transaction, a fifth of the cost); any other
    statement, or a list of parameter sets, goes through SQLAlchemy as usual."""

    def __init__(self, connection: Connection, hot: dict[int, _Compiled]) -> None:
        self.connection = connection
        self._hot = hot
        self._dbapi = connection.connection.driver_connection

    @staticmethod
    def compile(engine: Engine, statements: list[Executable]) -> dict[int, _Compiled]:
        """The ``hot`` argument: compile ``statements`` (kept alive by the caller) once.

        SQLite only (an INSERT's key is the cursor's ``lastrowid``, which other drivers do
        not promise): elsewhere every statement goes through SQLAlchemy."""
        if engine.dialect.name != "sqlite":
            return {}
        return {id(s): _Compiled(engine.dialect, s) for s in statements}

    def execute(self, statement: Executable, params: Any = None) -> Any:
        compiled = self._hot.get(id(statement))
        if compiled is None or isinstance(params, list):
            return self.connection.execute(statement, params)
        cursor = self._dbapi.cursor()
        try:
            cursor.execute(compiled.sql, compiled.bound(params or {}))
            rows = [compiled.make_row(raw) for raw in cursor.fetchall()]
            return _Result(rows, cursor.lastrowid)
        finally:
            cursor.close()


class _Result:
    """The part of SQLAlchemy's Result the hot paths use."""

    def __init__(self, rows: list[Any], lastrowid: int | None) -> None:
        self._rows = rows
        self.inserted_primary_key = (lastrowid,)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def all(self) -> list[Any]:
        return self._rows

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalars(self) -> Iterator[Any]:
        return (row[0] for row in self._rows)
