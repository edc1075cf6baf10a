"""`karri node`: nodes on other hosts. On the cloud's host: ``token``, ``list``,
``enable``, ``disable``, ``remove``. On a node's host: ``karri node --cloud URL --token T``
joins once and then, until Ctrl-C, keeps telling the cloud that the node lives and serves
the node to the cloud (the node agent, ``node/agent.py``, on ``--host``/``--port``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from karri.cli.common import console, data_dir_option, settings_for
from karri.lock import DataDirInUse, DataDirLock
from karri.serving import loop_factory

if TYPE_CHECKING:
    from karri.node.cloudlink import CloudLink
    from karri.node.gateways import Gateways

AGENT_PORT = 8776  # beside the gateway's 8775 (Eucalyptus's node controller's port)
STOP_GRACE = 5.0  # seconds the agent waits for its answers to be taken when it stops


def open_nodes(data_dir: Path):
    """The cloud's node registry alone (not the whole cloud: these commands are polled)."""
    from karri.cloud.nodes.ca import NodeCA
    from karri.cloud.nodes.registry import Nodes
    from karri.db.engine import Database

    settings = settings_for(data_dir)
    return settings, Nodes(Database(settings.database_url), NodeCA(data_dir), settings.zones)


def default_node_dir() -> Path:
    return Path(os.environ.get("KARRI_NODE_HOME", "~/.karri-node")).expanduser()


@click.group(invoke_without_command=True)
@click.option("--cloud", "cloud_url", default=None, help="The cloud's EC2 URL (to join).")
@click.option("--token", default=None, help="A join token from `karri node token`.")
@click.option("--name", default=None, help="This node's name  [default: the host name]")
@click.option("--zone", default=None, help="The zone to join  [default: the cloud's first]")
@click.option(
    "--data-dir",
    "node_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_node_dir,
    show_default="~/.karri-node or $KARRI_NODE_HOME",
    help="Where this node keeps its key, certificate and state.",
)
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True)
@click.option("--host", default="0.0.0.0", show_default=True, help="Where the agent listens.")
@click.option("--port", type=click.IntRange(1, 65535), default=AGENT_PORT, show_default=True)
@click.option(
    "--node-driver",
    type=click.Choice(["qemu", "fake"]),
    default="qemu",
    show_default=True,
    help="fake: no guests run (tests and benchmarks only).",
)
@click.option(
    "--qemu-in-host-namespace",
    is_flag=True,
    help="Start guests' QEMU in the host's network namespace (taps passed in), so that it "
    "reaches storage on the host's network (implied when the cloud hands the node its Ceph "
    "access: volumes on RBD).",
)
@click.pass_context
def node(
    ctx: click.Context,
    cloud_url: str | None,
    token: str | None,
    name: str | None,
    zone: str | None,
    node_dir: Path,
    interval: float,
    host: str,
    port: int,
    node_driver: str,
    qemu_in_host_namespace: bool,
) -> None:
    """Nodes on other hosts (Eucalyptus's node controllers)."""
    if ctx.invoked_subcommand is not None:
        return
    from karri.node.membership import Heartbeats, JoinError, Membership, join

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per report otherwise
    lock = DataDirLock(node_dir)
    try:
        lock.acquire()
    except DataDirInUse as error:
        raise SystemExit(str(error)) from None
    try:
        membership = Membership.load(node_dir)
        if membership is None:
            if not (cloud_url and token):
                raise SystemExit("karri node: not joined yet: give --cloud and --token")
            node_name = name or socket.gethostname().split(".")[0].lower()
            try:
                membership = join(node_dir, cloud_url, token, node_name, zone)
            except JoinError as error:
                raise SystemExit(f"karri node: {error}") from None
            click.echo(f"joined as {membership.name}; the gateway is {membership.gateway}")
        wildcard = host in ("0.0.0.0", "::", "")
        gateways = membership.reached(node_dir)  # shared by heartbeats and reports
        beats = Heartbeats(node_dir, gateways, interval, (None if wildcard else host, port))
        threading.Thread(target=beats.run, name="heartbeats", daemon=True).start()
        click.echo(f"node {membership.name}: heartbeats every {interval:g} s", err=True)
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                serving = _serve_agent(
                    node_dir, membership.name, gateways, host, port, node_driver,
                    qemu_in_host_namespace,
                )  # fmt: skip
                runner.run(serving)
        finally:
            beats.stop()
    finally:
        lock.release()


async def _serve_agent(
    node_dir: Path,
    name: str,
    gateways: Gateways,
    host: str,
    port: int,
    driver: str,
    outside: bool = False,
) -> None:
    """Serve the node to the cloud until SIGINT/SIGTERM, then close it (guests keep
    running unless the cloud stopped them)."""
    import uvicorn

    from karri.cloud.instances.node_driver import NodeDriver
    from karri.node import Node, NodeSettings
    from karri.node.agent import agent_app, refusal
    from karri.node.cloudlink import CloudLink
    from karri.node.fake import FakeNode
    from karri.node.membership import CA, CERT, KEY, nbd_tls_files, tls
    from karri.serving import MutualTls, listen, server_config

    class AgentServer(uvicorn.Server):
        """uvicorn, leaving signals to ``_serve_agent``."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    link = CloudLink(gateways, tls(node_dir))
    ceph_conf = await _ceph_conf(link, node_dir)
    node: NodeDriver
    if driver == "fake":
        node = FakeNode(on_exit=link.on_exit, on_recovery=link.on_recovery)
    else:
        node = Node(
            node_dir,
            # volumes of the cloud over NBD (files) or RBD (QEMU outside the namespaces)
            NodeSettings(
                nbd_tls=nbd_tls_files(node_dir),
                qemu_in_host_namespace=outside or ceph_conf is not None,
                ceph_conf=ceph_conf,
            ),
            metadata=link.lookup,
            on_exit=link.on_exit,
            on_recovery=link.on_recovery,
            identity=lambda instance_id, _document: link.sign_identity(instance_id),
        )
    try:
        sock = listen(host, port)
    except OSError as error:
        raise SystemExit(f"karri node: cannot listen on {host}:{port}: {error}") from None
    mutual = MutualTls(node_dir / CERT, node_dir / KEY, node_dir / CA)
    report = await node.start()  # before serving: the cloud may call at once
    config = server_config(agent_app(node, NodeDriver, report), refusal, mutual)
    config.timeout_graceful_shutdown = STOP_GRACE  # a caller that keeps its connection open
    server = AgentServer(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    click.echo(f"node {name}: agent on {host}:{port} ({driver})", err=True)
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        try:
            await node.close()
        except Exception:
            logging.getLogger("karri.node").exception("closing the node")
        await link.close()


async def _ceph_conf(link: CloudLink, node_dir: Path) -> Path | None:
    """The Ceph client configuration the cloud hands this node, written into its data dir
    (None: the cloud's volumes are not on Ceph); the one written at an earlier start when
    the cloud cannot be asked now."""
    import httpx

    from karri.node import cephaccess

    directory = node_dir / cephaccess.DIRECTORY
    try:
        access = await link.ceph_access()
    except (LookupError, httpx.HTTPError, OSError, ValueError) as error:
        kept = cephaccess.kept(directory)
        click.echo(f"karri node: no Ceph access from the cloud ({error}); kept: {kept}", err=True)
        return kept
    if access is None:
        return None
    conf = await asyncio.to_thread(cephaccess.write, directory, access)
    click.echo(f"karri node: Ceph access for client.{access.user} in {conf}", err=True)
    return conf


@node.command("token")
@data_dir_option
def node_token(data_dir: Path) -> None:
    """Print a one-time join token (valid for an hour)."""
    settings, nodes = open_nodes(data_dir)
    if settings.node_url is None:
        console.print("[yellow]note:[/yellow] the cloud runs without --node-port: no gateway")
    click.echo(nodes.new_token())


@node.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True)
def node_list(data_dir: Path, as_json: bool) -> None:
    """The nodes that joined, with their state, what they reported and how many live
    instances each runs (the cloud's own node's first, as ``(cloud)``)."""
    from karri.cloud.nodes.directory import InstanceNodes

    settings, registry = open_nodes(data_dir)
    nodes = registry.list()
    counts = InstanceNodes(registry.db).counts()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": n.name,
                        "zone": n.zone,
                        "state": n.state,
                        "vcpus": n.vcpus,
                        "memory_mib": n.memory_mib,
                        "joined_at": n.joined_at.isoformat(),
                        "last_seen": n.last_seen.isoformat() if n.last_seen else None,
                        "agent": n.agent_url,
                        "instances": counts.get(n.name, 0),
                    }
                    for n in nodes
                ]
            )
        )
        return
    table = Table("node", "zone", "state", "vCPUs", "memory", "instances", "last heartbeat")
    table.add_row("(cloud)", settings.zone, "", "", "", str(counts.get(None, 0)), "")
    for n in nodes:
        seen = n.last_seen.strftime("%Y-%m-%d %H:%M:%S") if n.last_seen else "never"
        table.add_row(
            n.name, n.zone, n.state, str(n.vcpus), f"{n.memory_mib} MiB",
            str(counts.get(n.name, 0)), seen,
        )  # fmt: skip
    console.print(table)


def _change(data_dir: Path, name: str, what) -> None:
    from karri.cloud.nodes.registry import UnknownNode

    try:
        what(open_nodes(data_dir)[1], name)
    except UnknownNode:
        raise SystemExit(f"karri node: no node named {name}") from None


@node.command("disable")
@click.argument("name")
@data_dir_option
def node_disable(name: str, data_dir: Path) -> None:
    """Take the node out of service (it stays joined)."""
    _change(data_dir, name, lambda nodes, n: nodes.set_enabled(n, False))


@node.command("enable")
@click.argument("name")
@data_dir_option
def node_enable(name: str, data_dir: Path) -> None:
    """Put the node back in service."""
    _change(data_dir, name, lambda nodes, n: nodes.set_enabled(n, True))


@node.command("remove")
@click.argument("name")
@data_dir_option
def node_remove(name: str, data_dir: Path) -> None:
    """Forget the node: its certificate gets nothing any more (join again with a token)."""
    _change(data_dir, name, lambda nodes, n: nodes.remove(n))


@node.command("evacuate")
@click.argument("name")
@data_dir_option
def node_evacuate(name: str, data_dir: Path) -> None:
    """Take every instance off a BROKEN node: EBS-backed ones stop (StartInstances places
    them on another node), instance-store ones are lost with their host and terminate; the
    running cloud records it within a pass."""
    from karri.cloud.instances.failover import evacuate

    registry = open_nodes(data_dir)[1]
    state = next((n.state for n in registry.list() if n.name == name), None)
    if state is None:
        raise SystemExit(f"karri node: no node named {name}")
    if state != "BROKEN":
        raise SystemExit(
            f"karri node: {name} is {state}: only a BROKEN node's instances are evacuated "
            "(stop or terminate a live node's instances through the API)"
        )
    with registry.db.write_session() as session:
        moved = evacuate(session, name)
    for instance_id, state in moved:
        click.echo(f"{instance_id}\t{state}")
    if not moved:
        click.echo(f"{name} holds no live instance")


ZONE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")


@click.group("zone")
def zone() -> None:
    """Availability zones: groups of nodes (Eucalyptus's clusters)."""


@zone.command("create")
@click.argument("name")
@data_dir_option
def zone_create(name: str, data_dir: Path) -> None:
    """Add a zone that nodes may join (`karri node --zone NAME`); `karri up` serves it
    from its next start (every account's default VPC gets a default subnet in it)."""
    from karri.config import save_settings, saved_zones

    zones = settings_for(data_dir).zones
    if not ZONE_NAME.match(name):
        raise SystemExit("karri zone: a zone name is lowercase letters, digits and hyphens")
    if name in zones:
        raise SystemExit(f"karri zone: {name} exists")
    save_settings(data_dir, zones=[*saved_zones(data_dir), name])
    click.echo(f"zone {name} added; `karri up` serves it from its next start")


@zone.command("list")
@data_dir_option
def zone_list(data_dir: Path) -> None:
    """The zones, the first being the cloud's own node's."""
    for name in settings_for(data_dir).zones:
        click.echo(name)
