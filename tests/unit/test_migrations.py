"""The migrations build the schema the models describe: a fresh database migrated to
every branch's head differs from ``Base.metadata`` in nothing Alembic can see, nor in the
primary keys (which Alembic's comparison leaves out)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

import karri.tables  # noqa: F401  (registers every table)
from karri.db.base import Base
from karri.db.engine import MIGRATIONS, Database


def test_the_migrated_schema_is_the_models_schema(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'karri.db'}")
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        inspector = sa.inspect(connection)
        keys = {
            name: inspector.get_pk_constraint(name)["constrained_columns"]
            for name in Base.metadata.tables
        }
    assert differences == []
    assert keys == {
        name: [column.name for column in table.primary_key.columns]
        for name, table in Base.metadata.tables.items()
    }


def test_tags_written_before_they_were_per_account_are_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'karri.db'}"
    engine = sa.create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            sa.text(
                "INSERT INTO accounts (id, name, created_at) "
                "VALUES ('123456789012', 'a', '2026-01-01')"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO tags (resource_id, key, value, account_id) "
                "VALUES ('vol-1', 'k', 'v', '123456789012')"
            )
        )
    db = Database(url)
    with db.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT resource_id, account_id, key, value FROM tags"))
        assert list(rows) == [("vol-1", "123456789012", "k", "v")]
