"""`karri storage migrate`: move a stopped cloud's data to another storage backend."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from karri.cli.common import console, data_dir_option, db_url_option
from karri.config import saved_db_url, saved_settings, sqlite_url
from karri.lock import DataDirInUse, DataDirLock


@click.group("storage")
def storage() -> None:
    """Where the cloud's data lives."""


@storage.command("migrate")
@data_dir_option
@db_url_option
@click.option(
    "--walrus",
    "walrus_backend",
    type=click.Choice(["files", "rados"]),
    required=True,
    help="Where object bytes go: files in the data dir, or a Ceph RADOS pool.",
)
@click.option("--ceph-conf", default=None, help="The Ceph configuration file (rados).")
@click.option("--ceph-user", default=None, help="The Ceph client user, without client.  [admin]")
@click.option("--rados-pool", default=None, help="The pool of object bytes  [karri-objects]")
def migrate(
    data_dir: Path,
    db_url: str | None,
    walrus_backend: str,
    ceph_conf: str | None,
    ceph_user: str | None,
    rados_pool: str | None,
) -> None:
    """Move the stopped cloud's object bytes to another backend: copy every blob, verify
    each copy (size and SHA-256), switch the data dir to the new backend, then delete
    the old blobs. Interrupted, the cloud still starts on one complete backend; running
    the same command again finishes the migration."""
    from karri.db.engine import Database
    from karri.walrus.migrate import MigrationError, WalrusMigration

    url = db_url or saved_db_url(data_dir) or sqlite_url(data_dir)
    if url == sqlite_url(data_dir) and not (data_dir / "karri.db").exists():
        _fail(f"no cloud in {data_dir}")
    target = {"walrus_backend": walrus_backend}
    if walrus_backend == "rados":
        saved = saved_settings(data_dir)
        target |= {
            "ceph_conf": ceph_conf or saved.get("ceph_conf"),
            "ceph_user": ceph_user or saved.get("ceph_user") or "admin",
            "rados_pool": rados_pool or "karri-objects",
        }
    try:
        with DataDirLock(data_dir):  # karri up holds it while it runs
            db = Database(url)
            try:
                progress = WalrusMigration(data_dir, db, target).run(_say)
            finally:
                db.dispose()
    except DataDirInUse as error:
        _fail(f"{error}; stop it before migrating")
    except MigrationError as error:
        _fail(str(error))
    except Exception as error:  # a store out of reach (S3Error), a file system error
        _fail(f"the migration stopped, nothing is lost (run it again): {error}")
    console.print(
        f"{data_dir}'s objects are now kept in {walrus_backend}: "
        f"{progress.done_objects} blobs, {progress.done_bytes} bytes moved"
    )


def _say(line: str) -> None:
    print(line, flush=True)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    sys.exit(1)
