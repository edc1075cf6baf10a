"""The migrations build the schema the models describe: a fresh database migrated to
every branch's head differs from ``Base.metadata`` in nothing Alembic can see, nor in the
primary keys (which Alembic's comparison leaves out)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
    assert_migrated_schema_is_the_models(f"sqlite:///{tmp_path / 'karri.db'}")


def assert_migrated_schema_is_the_models(url: str) -> None:
    """Migrate the empty database at ``url`` and compare it with the models."""
    db = Database(url)
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        inspector = sa.inspect(connection)
        keys = {
            name: inspector.get_pk_constraint(name)["constrained_columns"]
            for name in Base.metadata.tables
        }
    assert differences == []
    db.dispose()
    assert keys == {
        name: [column.name for column in table.primary_key.columns]
        for name, table in Base.metadata.tables.items()
    }


@contextmanager
def migrated_to(url: str, revision: str) -> Iterator[sa.Connection]:
    """A transaction on the database at ``url`` migrated up to ``revision`` (for rows as an
    older karri wrote them)."""
    engine = sa.create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        yield connection
    engine.dispose()


def test_tags_written_before_they_were_per_account_are_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'karri.db'}"
    with migrated_to(url, "0001") as connection:
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


def test_instance_profiles_made_before_their_tags_have_none(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'karri.db'}"
    with migrated_to(url, "p001") as connection:
        connection.execute(
            sa.text(
                "INSERT INTO accounts (id, name, created_at) "
                "VALUES ('123456789012', 'a', '2026-01-01')"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO iam_instance_profiles "
                "(id, account_id, name, name_key, path, created_at) "
                "VALUES ('AIPA1', '123456789012', 'P', 'p', '/', '2026-01-01')"
            )
        )
    db = Database(url)
    with db.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT name, tags FROM iam_instance_profiles"))
        assert list(rows) == [("P", "{}")]


def test_legal_holds_written_before_they_could_be_unset_become_unset(tmp_path: Path) -> None:
    """w009hold: false (then also "never set") becomes NULL; ON stays ON."""
    url = f"sqlite:///{tmp_path / 'karri.db'}"
    with migrated_to(url, "w005upload") as connection:
        connection.execute(
            sa.text(
                "INSERT INTO buckets (name, owner, location, versioning, acl, created_at) "
                "VALUES ('b', '123456789012', '', 'Enabled', '{}', '2026-01-01')"
            )
        )
        for seq, hold in ((1, 0), (2, 1)):
            connection.execute(
                sa.text(
                    "INSERT INTO objects (seq, bucket, key, version_id, is_latest, delete_marker,"
                    " owner, size, etag, last_modified, headers, meta, checksums, acl, tags,"
                    " parts, legal_hold) VALUES (:seq, 'b', 'k', :v, 0, 0, '123456789012', 0,"
                    " 'e', '2026-01-01', '{}', '{}', '{}', '{}', '{}', 0, :hold)"
                ),
                {"seq": seq, "v": f"v{seq}", "hold": hold},
            )
    db = Database(url)
    with db.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT seq, legal_hold FROM objects ORDER BY seq"))
        assert list(rows) == [(1, None), (2, 1)]
    db.dispose()
