"""What the `karri` commands share: the data dir option, the cloud's settings as it runs,
opening the cloud's services, and failing with a message."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click
from rich.console import Console

from karri.config import (
    Settings,
    default_data_dir,
    read_runtime,
    saved_db_url,
    saved_ebs,
    saved_walrus,
)
from karri.errors import CloudError

console = Console()

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_data_dir,
    show_default="~/.karri or $KARRI_HOME",
    help="Where the cloud keeps its database, objects, volumes and instances.",
)
db_url_option = click.option(
    "--db-url",
    default=None,
    help="SQLAlchemy URL, e.g. postgresql://user@host/db  "
    "[default: the data dir's saved one (`karri db migrate-to`), else SQLite]",
)


def settings_for(data_dir: Path, db_url: str | None = None) -> Settings:
    """Settings of the cloud in ``data_dir``: as it runs now, else the defaults."""
    runtime = read_runtime(data_dir) or {}
    fields = {f.name for f in dataclasses.fields(Settings)}
    known = {k: v for k, v in runtime.items() if k in fields and k != "data_dir"}
    for port in ("ec2_port", "s3_port"):
        if port in known:
            known[port] = int(known[port])
    if "node_port" in known:
        known["node_port"] = None if known["node_port"] in ("None", "") else int(known["node_port"])
    if known.get("db_url") in ("None", ""):
        known["db_url"] = None
    for optional in ("ceph_conf", "node_address"):
        if known.get(optional) in ("None", ""):
            known[optional] = None
    if "walrus_backend" not in known:
        known |= saved_walrus(data_dir)
    if "ebs_backend" not in known:
        known |= saved_ebs(data_dir)
    if db_url:
        known["db_url"] = db_url
    elif not known.get("db_url"):
        known["db_url"] = saved_db_url(data_dir)
    return Settings(data_dir=data_dir, **known)


def open_cloud(data_dir: Path, db_url: str | None = None):
    from karri.up import open_cloud as _open

    return _open(settings_for(data_dir, db_url))


def fail(error: CloudError) -> None:
    console.print(f"[red]error:[/red] {error.message}")
    sys.exit(1)
