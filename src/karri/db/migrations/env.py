"""Alembic environment: run against the connection karri hands over, or a URL."""

from alembic import context
from sqlalchemy import create_engine

import karri.tables  # noqa: F401  (registers every table)
from karri.db.base import Base

config = context.config
connection = config.attributes.get("connection")


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        run(conn)
