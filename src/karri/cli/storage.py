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
    default=None,
    help="Move object bytes: to files in the data dir, or to a Ceph RADOS pool.",
)
@click.option(
    "--ebs",
    "ebs_backend",
    type=click.Choice(["files", "rbd"]),
    default=None,
    help="Move EBS volumes: to files in the data dir, or to RBD images in a Ceph pool.",
)
@click.option("--ceph-conf", default=None, help="The Ceph configuration file (rados, rbd).")
@click.option("--ceph-user", default=None, help="The Ceph client user, without client.  [admin]")
@click.option("--rados-pool", default=None, help="The pool of object bytes  [karri-objects]")
@click.option("--rbd-pool", default=None, help="The pool of volumes  [karri-volumes]")
def migrate(
    data_dir: Path,
    db_url: str | None,
    walrus_backend: str | None,
    ebs_backend: str | None,
    ceph_conf: str | None,
    ceph_user: str | None,
    rados_pool: str | None,
    rbd_pool: str | None,
) -> None:
    """Move the stopped cloud's object bytes (--walrus) or volumes (--ebs) to another
    backend: copy everything, verify each copy (size and SHA-256), switch the data dir to
    the new backend, then delete the old copy. Interrupted, the cloud still starts on one
    complete backend; running the same command again finishes the migration. Encrypted
    volumes move as their ciphertext. Volumes attached to instances that are not stopped,
    and (to rbd) volumes encrypted as raw LUKS before qcow2, are refused."""
    from karri.db.engine import Database
    from karri.migrating import MigrationError

    if (walrus_backend is None) == (ebs_backend is None):
        _fail("say what moves: --walrus files|rados or --ebs files|rbd (one of them)")
    url = db_url or saved_db_url(data_dir) or sqlite_url(data_dir)
    if url == sqlite_url(data_dir) and not (data_dir / "karri.db").exists():
        _fail(f"no cloud in {data_dir}")
    saved = saved_settings(data_dir)
    ceph = {
        "ceph_conf": ceph_conf or saved.get("ceph_conf"),
        "ceph_user": ceph_user or saved.get("ceph_user") or "admin",
    }
    if walrus_backend is not None:
        backend, what = walrus_backend, "objects"
        target = {"walrus_backend": walrus_backend}
        if walrus_backend == "rados":
            target |= ceph | {"rados_pool": rados_pool or "karri-objects"}
    else:
        assert ebs_backend is not None
        backend, what = ebs_backend, "volumes"
        target = {"ebs_backend": ebs_backend}
        if ebs_backend == "rbd":
            target |= ceph | {"rbd_pool": rbd_pool or "karri-volumes"}
    try:
        with DataDirLock(data_dir):  # karri up holds it while it runs
            db = Database(url)
            try:
                progress = _migration(data_dir, db, target).run(_say)
            finally:
                db.dispose()
    except DataDirInUse as error:
        _fail(f"{error}; stop it before migrating")
    except MigrationError as error:
        _fail(str(error))
    except Exception as error:  # a store out of reach (S3Error, StorageError), a file system error
        _fail(f"the migration stopped, nothing is lost (run it again): {error}")
    console.print(
        f"{data_dir}'s {what} are now kept in {backend}: "
        f"{progress.done_objects} {progress.unit}, {progress.done_bytes} bytes moved"
    )


def _migration(data_dir: Path, db, target: dict[str, str]):
    if "walrus_backend" in target:
        from karri.walrus.migrate import WalrusMigration

        return WalrusMigration(data_dir, db, target)
    from karri.cloud.volumes.migrate import EbsMigration

    return EbsMigration(data_dir, db, target)


def _say(line: str) -> None:
    print(line, flush=True)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    sys.exit(1)
