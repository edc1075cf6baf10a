"""`karri status`: what is running, how it is reached, and how much of everything there is."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, inspect, select

from karri.config import read_runtime, saved_db_url, sqlite_url


def _probe(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def _counts(data_dir: Path, db_url: str | None) -> dict[str, Any]:
    from karri.db.engine import Database
    from karri.db.models import Account

    db_url = db_url or saved_db_url(data_dir)
    url = db_url or sqlite_url(data_dir)
    if not db_url and not (data_dir / "karri.db").exists():
        return {}
    db = Database(url, run_migrations=False)
    tables = set(inspect(db.engine).get_table_names())  # a cloud not yet upgraded lacks some
    counts: dict[str, Any] = {}
    with db.session() as session:
        counts["accounts"] = session.scalar(select(func.count()).select_from(Account))
        for name, model in _optional_models().items():
            if model.__tablename__ not in tables:
                continue
            counts[name] = session.scalar(select(func.count()).select_from(model))
            state = getattr(model, "state", None)
            if state is not None and counts[name]:
                rows = session.execute(select(state, func.count()).group_by(state))
                counts[f"{name} by state"] = dict(sorted(rows.tuples()))
        if "instances" in tables:
            counts["live instances by node"] = _by_node(db, session)
        if "nodes" in tables:
            counts["joined node states"] = _node_states(session)
    db.dispose()
    return counts


def _by_node(db: Any, session: Any) -> dict[str, int]:
    """How many live instances each node runs (``(cloud)``: the cloud's own node)."""
    from karri.cloud.instances import states
    from karri.cloud.instances.models import Instance

    if "node" not in {c["name"] for c in inspect(db.engine).get_columns("instances")}:
        return {}
    rows = session.execute(
        select(Instance.node, func.count())
        .where(Instance.state.in_(states.ACTIVE))
        .group_by(Instance.node)
    )
    return {node or "(cloud)": count for node, count in sorted(rows.tuples(), key=str)}


def _node_states(session: Any) -> dict[str, int]:
    """How many joined nodes are in each state (ENABLED, DISABLED, BROKEN, NOTREADY)."""
    from karri.cloud.nodes.models import NodeRow
    from karri.cloud.nodes.registry import state_of

    now = datetime.now(UTC)
    return dict(sorted(Counter(state_of(r, now) for r in session.scalars(select(NodeRow))).items()))


def _optional_models() -> dict[str, Any]:
    """Tables that later components add; counted when they exist."""
    from karri import tables

    return getattr(tables, "COUNTED", {})


def collect(data_dir: Path) -> dict[str, Any]:
    runtime = read_runtime(data_dir)
    report: dict[str, Any] = {"data_dir": str(data_dir), "running": False}
    if runtime:
        health = _probe(f"{runtime['ec2_url']}/karri/health")
        report.update(
            running=health is not None,
            pid=runtime.get("pid"),
            endpoints={"ec2": runtime["ec2_url"] + "/", "s3": runtime["s3_url"] + "/"},
            components=(health or {}).get("components", {}),
            accelerator=(health or {}).get("accelerator", "unknown"),
            node=(health or {}).get("node") or {},
            s3_processes=(health or {}).get("s3_processes", []),
            background_work=(health or {}).get("background_work"),
        )
    db_url = runtime.get("db_url") if runtime else None
    db_url = None if db_url in (None, "None") else db_url
    report["database"] = _shown_url(db_url or saved_db_url(data_dir) or sqlite_url(data_dir))
    report["counts"] = _counts(data_dir, db_url)
    report["volumes"] = _volumes(data_dir)
    return report


def _volumes(data_dir: Path) -> dict[str, Any]:
    """Where the volumes are: files, or an RBD pool with its cluster's health and use."""
    from karri.cli.common import settings_for

    settings = settings_for(data_dir)
    if settings.ebs_backend != "rbd":
        return {"backend": settings.ebs_backend}
    from karri.cephclient import pool_status

    status = pool_status(settings.ceph_conf, settings.ceph_user, settings.rbd_pool)
    return {"backend": "rbd", "pool": settings.rbd_pool} | status


def _shown_url(url: str) -> str:
    """The database's URL without its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unreadable URL)"


def render(console: Console, report: dict[str, Any]) -> None:
    state = "[green]running[/green]" if report["running"] else "[red]not running[/red]"
    table = Table(title=f"karri — {report['data_dir']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("cloud", f"{state}" + (f" (pid {report['pid']})" if report.get("pid") else ""))
    for name, url in report.get("endpoints", {}).items():
        table.add_row(f"{name} endpoint", url)
    if report.get("database"):
        table.add_row("database", escape(report["database"]))
    if report.get("background_work"):  # leader or standby (cloud/leadership.py)
        table.add_row("background work", report["background_work"])
    for name, health in report.get("components", {}).items():
        color = "green" if health == "ok" else "yellow"
        table.add_row(name, f"[{color}]{health}[/{color}]")
    if report["running"]:
        node = report.get("node") or {}
        reason = node.get("accelerator_reason")
        table.add_row(
            "accelerator",
            str(report.get("accelerator")) + (f" [dim]({escape(reason)})[/dim]" if reason else ""),
        )
        if node:
            counts = node.get("instances_by_health") or {}
            text = ", ".join(f"{status} {n}" for status, n in counts.items()) or "none running"
            table.add_row("instances by health", text)
            if node.get("last_fault"):
                table.add_row("last fault", f"[red]{escape(node['last_fault'])}[/red]")
        pids = report.get("s3_processes", [])
        table.add_row("S3 processes", f"{len(pids)} (pids {', '.join(map(str, pids))})")
    volumes = report.get("volumes") or {}
    if volumes.get("backend") == "rbd":
        text = f"Ceph RBD pool {escape(volumes['pool'])}"
        if "used_bytes" in volumes:
            text += f": {volumes['health']}, {volumes['used_bytes'] / 2**30:.2f} GiB used"
        if "error" in volumes:
            text += f" [red]({escape(volumes['error'])})[/red]"
        table.add_row("volumes", text)
    for name, count in report.get("counts", {}).items():
        if isinstance(count, dict):
            text = ", ".join(f"{state} {n}" for state, n in count.items())
            label = "  by state" if name.endswith(" by state") else name
            table.add_row(label, f"[dim]{text or 'none'}[/dim]")
        else:
            table.add_row(name, str(count))
    console.print(table)
