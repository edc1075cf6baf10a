"""`karri db migrate-to URL`: move a stopped cloud's state to another database."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from karri.config import default_data_dir, save_settings, saved_db_url, sqlite_url
from karri.lock import DataDirInUse, DataDirLock

console = Console()


@click.group("db")
def db() -> None:
    """The cloud's database."""


@db.command("migrate-to")
@click.argument("url")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_data_dir,
    show_default="~/.karri or $KARRI_HOME",
)
def migrate_to(url: str, data_dir: Path) -> None:
    """Copy the stopped cloud's every row into the empty database at URL (for example
    postgresql://karri@dbhost/karri), check the row counts, and make URL the data dir's
    database for every later `karri up` and command. The old database is left as it was."""
    from sqlalchemy.exc import OperationalError

    import karri.tables  # noqa: F401  (every component's tables)
    from karri.db.base import Base
    from karri.db.engine import Database, driver_url
    from karri.db.transfer import TransferError, copy_database

    source_url = saved_db_url(data_dir) or sqlite_url(data_dir)
    if source_url == sqlite_url(data_dir) and not (data_dir / "karri.db").exists():
        _fail(f"no cloud in {data_dir}")
    if driver_url(source_url) == driver_url(url):
        _fail("the cloud already uses that database")
    try:
        with DataDirLock(data_dir):  # karri up holds it while it runs
            source, target = Database(source_url), Database(url)
            try:
                counts = copy_database(source.engine, target.engine, Base.metadata)
            finally:
                source.dispose()
                target.dispose()
            save_settings(data_dir, db_url=url)
    except DataDirInUse as error:
        _fail(f"{error}; stop it before migrating")
    except TransferError as error:
        _fail(str(error))
    except OperationalError as error:
        _fail(f"cannot reach the database: {error.orig}")
    console.print(f"copied {sum(counts.values())} rows of {len(counts)} tables")
    console.print(f"{data_dir} now uses {url} (the old database is left untouched)")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    sys.exit(1)
