"""One extra S3 process: ``python -m karri.s3worker`` (started by `karri up`, see
``karri.api.s3.processes``). It serves the S3 API on an inherited listening socket."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import signal
import socket
from pathlib import Path

import uvicorn

from karri.api.auth.credentials import account_keys
from karri.api.s3.app import refusal, s3_app
from karri.api.s3.processes import DB_URL_VARIABLE
from karri.cloud.iam.service import Iam, iam_counter
from karri.cloud.systemkey import SystemKey, WithSystemKey
from karri.db.engine import Database
from karri.logs import configure
from karri.serving import loop_factory, raise_open_file_limit, server_config, settle_memory
from karri.walrus import Walrus, blob_store

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Be killed when `karri up` dies, however it dies (kill -9 included)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the listening socket")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--s3-domain", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--walrus-backend", default="files")
    parser.add_argument("--ceph-conf", default=None)
    parser.add_argument("--ceph-user", default="admin")
    parser.add_argument("--rados-pool", default="karri-objects")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    raise_open_file_limit()
    configure(args.data_dir / "logs", verbose=args.verbose, file_name=f"s3-{args.index}.log")
    db = Database(os.environ[DB_URL_VARIABLE], run_migrations=False)  # `karri up` migrated it
    blobs = blob_store(
        args.data_dir / "walrus", args.walrus_backend, args.ceph_conf, args.ceph_user,
        args.rados_pool,
    )  # fmt: skip
    walrus = Walrus(db, args.data_dir / "walrus", blobs)
    iam = Iam(db, iam_counter(args.data_dir))  # keys and identity policies, as `karri up`'s
    finder = WithSystemKey(iam.keys, SystemKey.load(args.data_dir))
    keys = account_keys(finder, iam.generation, iam.access_keys.note_use)
    app = s3_app(walrus, keys, args.s3_domain, iam, args.region)
    server = uvicorn.Server(server_config(app, refusal))
    settle_memory()
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(server.serve(sockets=[socket.socket(fileno=args.fd)]))
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
