"""Hot reads: a SELECT compiled once and run on the pooled DB-API connection.

For a Describe call that reads a dozen rows, SQLAlchemy's execution and result layers cost
about five times the query itself (result metadata is rebuilt per call). A ``CompiledQuery``
keeps what matters: the SQL is compiled by the engine's own dialect (so it stays portable),
connections come from the engine's pool, and column values go through their types' result
processors (so ``UTCDateTime`` still hands back aware datetimes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.sql import Select


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

    def rows(self, **params: Any) -> Iterator[tuple[Any, ...]]:
        """All rows, each a tuple in the order of the statement's columns."""
        values = self.compiled.construct_params(params)
        bound = tuple(values[name] for name in self.names) if self.names else values
        with self.engine.connect() as connection:
            cursor = connection.connection.driver_connection.cursor()
            try:
                cursor.execute(self.sql, bound)
                fetched = cursor.fetchall()
            finally:
                cursor.close()
        if not self.processors:
            yield from (tuple(row) for row in fetched)
            return
        for row in fetched:
            values_ = list(row)
            for i, process in self.processors:
                values_[i] = process(values_[i])
            yield tuple(values_)
