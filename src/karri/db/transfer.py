"""Copy every row of a cloud's database into another one (`karri db migrate-to`).

Both databases are at the newest revision of every migration branch first, so their
tables match. The copy runs in one transaction on the target: tables in dependency order
(parents before the rows that refer to them), rows in key order, in chunks; then the
target's sequences move past the copied keys (PostgreSQL hands out keys from its own
sequences, which a copy with explicit keys leaves behind) and every table's row count is
compared with the source's. Any difference rolls the whole copy back.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, Engine, Integer, MetaData, Table, func, select, text

CHUNK = 1000


class TransferError(Exception):
    """The target cannot take the copy, or the copy is not what the source holds."""


def copy_database(source: Engine, target: Engine, metadata: MetaData) -> dict[str, int]:
    """Copy every table of ``metadata`` from ``source`` into the empty ``target``; the
    row count of each table."""
    tables = metadata.sorted_tables
    with source.connect() as reading, target.begin() as writing:
        filled = [t.name for t in tables if _count(writing, t)]
        if filled:
            raise TransferError(f"the target database is not empty: {', '.join(filled)}")
        for table in tables:
            for rows in _chunks(reading, table):
                writing.execute(table.insert(), rows)
        if writing.dialect.name == "postgresql":
            for table in tables:
                _advance_sequence(writing, table)
        counts = {t.name: _count(reading, t) for t in tables}
        copied = {t.name: _count(writing, t) for t in tables}
        if copied != counts:
            wrong = [name for name in counts if counts[name] != copied[name]]
            raise TransferError(f"row counts differ after the copy: {', '.join(wrong)}")
    return counts


def _count(connection: Connection, table: Table) -> int:
    return connection.scalar(select(func.count()).select_from(table)) or 0


def _chunks(connection: Connection, table: Table) -> Iterator[list[dict]]:
    statement = select(table).order_by(*table.primary_key.columns)
    result = connection.execution_options(stream_results=True).execute(statement)
    for partition in result.mappings().partitions(CHUNK):
        yield [dict(row) for row in partition]


def _advance_sequence(connection: Connection, table: Table) -> None:
    """The next key PostgreSQL hands out for ``table`` follows the largest copied one."""
    keys = list(table.primary_key.columns)
    if len(keys) != 1 or not isinstance(keys[0].type, Integer):
        return
    column = keys[0].name
    sequence = connection.scalar(
        text("SELECT pg_get_serial_sequence(:table, :column)"),
        {"table": table.name, "column": column},
    )
    largest = connection.scalar(select(func.max(keys[0])))
    if sequence and largest is not None:
        setval = text("SELECT setval(:sequence, :value)")
        connection.execute(setval, {"sequence": sequence, "value": largest})
