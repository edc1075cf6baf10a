"""On PostgreSQL too, every migration branch at its head builds the models' schema."""

from __future__ import annotations

from tests import postgres
from tests.unit.test_migrations import assert_migrated_schema_is_the_models


def test_the_migrated_schema_is_the_models_schema_on_postgresql() -> None:
    assert_migrated_schema_is_the_models(postgres.cluster().new_database())
