"""What the ``instances.version`` triggers (migration ``c004_instance_render_versions``)
cost writes: 10,000 tag INSERTs (one per instance), then 10,000 instance UPDATEs, each set
in one transaction (SQLAlchemy's executemany), on a database of a filled cloud, with the
triggers and, with ``--drop``, without them.

Run it on a throwaway copy (it writes, and ``--drop`` drops the triggers for good): a copy
of ``DIR/sqlite/data/karri.db`` of ``bench/describe_scale.py --work DIR``, or a PostgreSQL
database made with ``CREATE DATABASE copy TEMPLATE karri_bench``.

    .venv/bin/python bench/version_triggers.py URL [--drop]
"""

from __future__ import annotations

import argparse
import time

import sqlalchemy as sa

TRIGGERS = {
    "sqlite": "SELECT name, tbl_name FROM sqlite_master "
    "WHERE type = 'trigger' AND name LIKE 'instance_version%'",
    "postgresql": "SELECT tgname, tgrelid::regclass::text FROM pg_trigger "
    "WHERE tgname LIKE 'instance_version%'",
}


def drop_triggers(connection: sa.Connection) -> None:
    name = connection.dialect.name
    for trigger, table in connection.execute(sa.text(TRIGGERS[name])).all():
        on = f" ON {table}" if name == "postgresql" else ""
        connection.execute(sa.text(f"DROP TRIGGER {trigger}{on}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--drop", action="store_true", help="without the triggers")
    args = parser.parse_args()
    engine = sa.create_engine(args.url)
    with engine.begin() as connection:
        if args.drop:
            drop_triggers(connection)
        ids = [row[0] for row in connection.execute(sa.text("SELECT id FROM instances"))]
        account = connection.execute(sa.text("SELECT account_id FROM instances")).scalar()
    writes = (
        (
            "tag INSERTs",
            "INSERT INTO tags (resource_id, account_id, key, value) VALUES (:i, :a, 'b', 'v')",
            [{"i": i, "a": account} for i in ids],
        ),
        (
            "instance UPDATEs",
            "UPDATE instances SET transition_reason = 'bench' WHERE id = :i",
            [{"i": i} for i in ids],
        ),
    )
    for what, statement, params in writes:
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(sa.text(statement), params)
        spent = time.perf_counter() - started
        print(
            f"{'without' if args.drop else 'with'} the triggers: {len(ids)} {what}: "
            f"{spent * 1000:.0f} ms, {spent / max(1, len(ids)) * 1e6:.0f} µs each"
        )
    engine.dispose()


if __name__ == "__main__":
    main()
