"""`karri lifecycle run`: one pass of S3's lifecycle rules now, or as of another time.

`karri up` runs a pass every hour by itself; this command runs one at once, in its own
process (Walrus is shared safely between processes), "as of" ``--at`` or ``--days``
from now, so that an administrator can apply the rules ahead of their time and tests can
drive the clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click


@click.group()
def lifecycle() -> None:
    """S3 bucket lifecycle rules."""


@lifecycle.command("run")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The cloud's data dir (~/.karri or $KARRI_HOME).",
)
@click.option("--at", "at", default=None, help="Apply the rules as of this ISO 8601 time.")
@click.option("--days", default=0.0, type=float, help="... or as of this many days from now.")
def run(data_dir: Path | None, at: str | None, days: float) -> None:
    """Apply every bucket's lifecycle rules once; prints what was done, as JSON."""
    from karri.cli.common import open_cloud
    from karri.config import default_data_dir

    if at is not None:
        try:
            now = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"not an ISO 8601 time: {at}", param_hint="--at") from None
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    else:
        now = datetime.now(UTC)
    now += timedelta(days=days)
    cloud = open_cloud(data_dir or default_data_dir())
    done = cloud.walrus.apply_lifecycle(now)
    click.echo(json.dumps({"as_of": now.isoformat(), **done}))
