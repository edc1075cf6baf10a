"""A throwaway PostgreSQL cluster for the tests: one per test process, a database per cloud.

`KARRI_TEST_DB=postgresql` makes ``start_karri`` put every new data dir on a fresh
database of this cluster (saved in the data dir's ``settings.json``, as `karri db
migrate-to` does, so restarts and CLI commands find it too). The cluster is Debian's
PostgreSQL (``initdb``/``pg_ctl`` from ``PG_BIN``) in a temporary directory, listening on a
unix socket there only (no TCP port to collide on), run as the ``postgres`` user when the
tests run as root (PostgreSQL refuses root), without fsync (nothing here outlives the run).
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def _pg_bin() -> Path:
    """Debian's newest PostgreSQL server programs (``KARRI_PG_BIN`` overrides)."""
    if "KARRI_PG_BIN" in os.environ:
        return Path(os.environ["KARRI_PG_BIN"])
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    return versions[-1] if versions else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
USER = "karri"


def wanted() -> bool:
    """True when this run's clouds keep their state in PostgreSQL."""
    return os.environ.get("KARRI_TEST_DB", "sqlite").lower() in ("postgresql", "postgres")


class Cluster:
    """One running cluster; ``new_database()`` hands out empty databases' URLs."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="karri-pg-"))
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._names = itertools.count()
        data = self.dir / "data"
        self._run(
            PG_BIN / "initdb", "-D", data, "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync"
        )
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.dir}' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=400"
        )
        self._run(
            PG_BIN / "pg_ctl", "-D", data, "-l", self.dir / "log", "-o", options, "-w", "start"
        )
        atexit.register(self.stop)
        self._watch(os.getpid())

    def _watch(self, pid: int) -> None:
        """Stop the cluster once this process is gone, however it ends (a killed xdist
        worker runs no atexit): a shell of its own session polls for it."""
        stop = [*self._prefix(), PG_BIN / "pg_ctl", "-D", self.dir / "data", "-m", "immediate"]
        script = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; shift; "$@" stop; rm -rf "$0"'
        subprocess.Popen(
            ["bash", "-c", script, str(self.dir), str(pid), *map(str, stop)],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _prefix(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if self._as_postgres else []

    def _run(self, *command: object) -> None:
        command_line = [*self._prefix(), *map(str, command)]
        subprocess.run(command_line, check=True, capture_output=True, timeout=120)

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@/{database}?host={self.dir}"

    def new_database(self) -> str:
        import psycopg

        name = f"karri_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if (self.dir / "data" / "postmaster.pid").exists():
            self._run(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


_cluster: Cluster | None = None


def cluster() -> Cluster:
    """This process's cluster, started at first use and stopped when the process exits."""
    global _cluster
    if _cluster is None:
        _cluster = Cluster()
    return _cluster
