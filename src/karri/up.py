"""`karri up`: every component of a single-host cloud in one asyncio process.

The background work (the node and reconciler, the EBS worker, the images pipeline,
lifecycle and sweeps) runs only while this front end leads (``cloud/leadership.py``):
always on SQLite; on PostgreSQL when it holds the leader lock. A front end with its own
node must lead (it refuses to start otherwise); front ends started with
``--no-local-node`` stand by until they do, serving the API meanwhile, and may share a
data dir (``lock.DataDirLock`` shared). A leader that loses the lock exits at once."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import functools
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator
from typing import Any

import uvicorn

from karri.api.apps import build_apps
from karri.api.ec2.app import refusal as ec2_refusal
from karri.api.nodes import gateway_app
from karri.api.nodes import refusal as gateway_refusal
from karri.api.s3.app import refusal as s3_refusal
from karri.api.s3.processes import S3Workers
from karri.cloud.controller import Cloud
from karri.cloud.instances.reconciler import Reconciler
from karri.cloud.instances.standby import StandbyDriver
from karri.cloud.leadership import LEADER, LeaderLock, Leadership
from karri.cloud.nodes.ceph import ceph_access
from karri.cloud.nodes.directory import RegistryDirectory
from karri.cloud.nodes.gateways import GatewayRegistry
from karri.cloud.volumes.nodehost import NodeVolumeHost
from karri.config import Settings, read_runtime
from karri.db.engine import Database
from karri.db.leader_lock import leader_lock, on_postgres
from karri.lock import DataDirInUse, DataDirLock
from karri.logs import configure
from karri.rcfile import write_account_rc
from karri.serving import (
    MutualTls,
    listen,
    loop_factory,
    raise_open_file_limit,
    server_config,
    settle_memory,
)

log = logging.getLogger("karri")
NODE_START_TIMEOUT = 60.0  # the KVM probe and the namespace set-up take seconds at most
RESYNC_SECONDS = 30.0  # how often a leader beside standbys tells nodes each VPC again
LOST_LEADERSHIP = 75  # the exit status of a leader that lost its lock


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to `karri up`, which runs several."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def open_cloud(settings: Settings) -> Cloud:
    """The data dir, the database and the cloud controller, created on first use."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    return Cloud(settings, Database(settings.database_url))


def serve(settings: Settings, *, verbose: bool = False) -> None:
    # `kill -USR1 <pid>`: every thread's stack on the console, for a cloud that hangs
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    lock = DataDirLock(settings.data_dir)
    shared = not settings.local_node and on_postgres(settings.database_url)
    try:
        # before anything else: a second karri must not touch the data dir (front ends
        # without a node of their own on PostgreSQL share it)
        lock.acquire(shared=shared)
    except DataDirInUse as error:
        raise SystemExit(str(error)) from None
    leader = leader_lock(settings.database_url)
    try:
        leadership = Leadership(leader)
        if _leads(leader):
            leadership.role = LEADER  # its background work starts before it serves
        elif settings.local_node:
            raise SystemExit(
                "karri: another front end runs this cloud's background work; only front "
                "ends started with --no-local-node may serve beside it"
            )
        _serve(settings, verbose, lock, leadership)
    finally:
        leader.release()
        lock.release()


def _leads(leader: LeaderLock) -> bool:
    try:
        return leader.try_acquire()
    except Exception as error:
        raise SystemExit(f"karri: cannot take the leader lock: {error}") from None


def _serve(settings: Settings, verbose: bool, lock: DataDirLock, leadership: Leadership) -> None:
    configure(settings.data_dir / "logs", verbose=verbose)
    raise_open_file_limit()
    ec2_socket = _listen("EC2", settings.host, settings.ec2_port)
    s3_socket = _listen("S3", settings.host, settings.s3_port)
    node_socket = _listen("node", settings.host, settings.node_port) if settings.node_port else None
    cloud = open_cloud(settings)
    admin = cloud.bootstrap()
    if lock.alone:  # what a crash left in the object store, before anyone reads it
        cloud.walrus.sweep()
    lock.share()  # other front ends without a node of their own may start now
    rc_path = settings.data_dir / "karrirc"
    write_account_rc(rc_path, admin, settings)
    node = "starting" if settings.local_node else "none (--no-local-node)"
    components = {"cloud": "ok", "walrus": "ok", "node": node}
    health = {
        "status": "ok",
        "pid": os.getpid(),
        "components": components,
        "background_work": lambda: leadership.role,
    }
    ec2, s3 = build_apps(cloud, health)
    workers = S3Workers(settings, s3_socket, settings.s3_processes - 1, verbose)
    servers = [
        (_Server(server_config(ec2, ec2_refusal)), [ec2_socket]),
        (_Server(server_config(s3, s3_refusal)), [s3_socket]),
    ]
    gateways = GatewayRegistry(cloud.db)
    if node_socket is not None and settings.node_url is not None:
        cert, key = cloud.nodes.ca.gateway_identity(settings.data_dir, [settings.node_host])
        cloud.nodes.ca.cloud_identity(settings.data_dir)  # what it calls node agents with
        tls = MutualTls(cert, key, cloud.nodes.ca.cert_path)
        ceph = functools.partial(ceph_access, settings.ceph_conf, settings.ceph_user)
        gateway_routes = gateway_app(
            cloud.nodes,
            cloud.node_reports(),
            ceph if settings.ebs_backend == "rbd" else lambda: None,
            gateways.live,
            cloud.identity_signing(),
        )
        gateway = server_config(gateway_routes, gateway_refusal, tls)
        servers.append((_Server(gateway), [node_socket]))
    settings.write_runtime(os.getpid())
    if leadership.role == LEADER:
        cloud.start()
    if settings.node_port and not settings.local_node:  # until it leads, if it ever does
        cloud.instances.driver = StandbyDriver(
            RegistryDirectory(
                cloud.nodes, settings.data_dir, settings.cpu_overcommit,
                settings.memory_overcommit,
            )
        )  # fmt: skip
    settle_memory()
    workers.start()

    def list_s3_processes() -> None:
        health["s3_processes"] = [os.getpid(), *workers.pids]

    list_s3_processes()
    print(banner(settings, rc_path), flush=True)
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            chores = [workers.watch(list_s3_processes)]
            if node_socket is not None and settings.node_url is not None:
                chores.append(gateways.announcing(settings.node_url))  # while it serves
            runner.run(_run(servers, chores, cloud, health, leadership))
    finally:
        workers.stop()
        ec2_socket.close()
        s3_socket.close()
        if node_socket is not None:
            node_socket.close()
            _withdraw(gateways, settings.node_url)
        cloud.stop()
        if (read_runtime(settings.data_dir) or {}).get("pid") == os.getpid():
            settings.runtime_file.unlink(missing_ok=True)  # not another front end's
        cloud.db.dispose()
        print("karri stopped", flush=True)


def _withdraw(gateways: GatewayRegistry, url: str | None) -> None:
    """Tell nodes no more of this front end's gateway (a killed one's ends unheard of)."""
    if url is None:
        return
    try:
        gateways.withdraw(url)
    except Exception as error:
        log.warning("cannot withdraw the node gateway %s: %s", url, error)


def _listen(name: str, host: str, port: int) -> socket.socket:
    try:
        return listen(host, port)
    except OSError as error:
        raise SystemExit(f"karri: cannot listen on the {name} port {port}: {error}") from None


async def _run(
    servers: list[tuple[_Server, list[socket.socket]]],
    chores: list[Coroutine[Any, Any, None]],
    cloud: Cloud,
    health: dict,
    leadership: Leadership,
) -> None:
    loop = asyncio.get_running_loop()
    lead = _Lead(cloud, health, leadership)
    background = asyncio.create_task(lead.run(), name="background")
    watching = [asyncio.create_task(chore) for chore in chores]  # until the servers end

    def stop() -> None:
        for server, _sockets in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(server.serve(sockets=sockets)) for server, sockets in servers]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    stop()  # one server ending (a port in use, say) ends the cloud
    for chore in watching:
        chore.cancel()
    await asyncio.gather(*tasks, *watching, return_exceptions=True)
    # Let a node that is still starting finish before closing it: cancelling it halfway
    # would leave its namespace and dnsmasq behind. (Only its start: once started, the
    # background work waits on the leadership for as long as the process lives.)
    if lead.starting:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lead.started.wait(), NODE_START_TIMEOUT)
    background.cancel()
    await asyncio.gather(background, return_exceptions=True)
    cloud.ebs.use_host(None)
    if lead.reconciler is not None:
        await lead.reconciler.close(stop_instances=cloud.settings.stop_instances_on_exit)
    for task in done:
        if task.exception():
            raise task.exception()  # type: ignore[misc]
    if not all(server.started for server, _sockets in servers):
        raise SystemExit("karri: could not start every endpoint (is a port in use?)")


class _Lead:
    """The background work, started once this front end leads; a lost lead ends the
    process at once (its guests, on its node or joined ones, run on)."""

    def __init__(self, cloud: Cloud, health: dict, leadership: Leadership) -> None:
        self.cloud, self.health, self.leadership = cloud, health, leadership
        self.starting = False
        self.started = asyncio.Event()  # the start has ended, well or not
        self.reconciler: Reconciler | None = None

    async def run(self) -> None:
        self.starting = True
        try:
            if self.leadership.role != LEADER:  # else started before serving
                self.starting = False
                await self.leadership.elected()
                self.starting = True
                await asyncio.to_thread(self.cloud.start)
            self.reconciler = await _run_node(self.cloud, self.health)
        except Exception:  # a leader without its background work would hold it from others
            log.exception("the background work could not start")
            _exit("this front end could not start the background work")
        finally:
            self.starting = False
            self.started.set()
        await self.leadership.lost()
        _exit("this front end lost the leader lock")


def _exit(why: str) -> None:
    """At once, as after a SIGKILL: another front end may lead now."""
    print(f"karri: {why}: exiting at once", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(LOST_LEADERSHIP)


def _resync(cloud: Cloud) -> float | None:
    """Beside standbys (PostgreSQL), whose changes reach the nodes only through the
    leader's passes, each VPC on joined nodes is told again every ``RESYNC_SECONDS``."""
    beside_standbys = on_postgres(cloud.settings.database_url) and cloud.settings.node_port
    return RESYNC_SECONDS if beside_standbys else None


async def _run_node(cloud: Cloud, health: dict) -> Reconciler | None:
    """Start the node and its reconciler; the API serves meanwhile (and without a node)."""
    try:
        reconciler = cloud.node_runtime(_resync(cloud))
        await asyncio.to_thread(cloud.hear_pushes)  # before its start tells every VPC
        await reconciler.start()
        loop = asyncio.get_running_loop()
        host = NodeVolumeHost(reconciler.node, loop, reconciler, cloud.volume_exports)
        cloud.ebs.use_host(host)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        log.exception("the node could not start; instances cannot run")
        health["components"]["node"] = f"error: {error}"
        return None
    if reconciler.node is not None:
        health["components"]["node"] = "ok"
        node = reconciler.node
        health["accelerator"] = lambda: node.accelerator
        health["node"] = node.summary  # evaluated at each request: it changes
    health["connected_nodes"] = reconciler.fleet.reachable  # joined, reached, not BROKEN
    return reconciler


def banner(settings: Settings, rc_path) -> str:
    return "\n".join(
        (
            f"karri is up (pid {os.getpid()}, data in {settings.data_dir})",
            f"  EC2 endpoint: {settings.ec2_url}/",
            f"  S3 endpoint:  {settings.s3_url}/",
            f"  credentials:  {rc_path}",
            "",
            "Try it:",
            f"  source {rc_path}",
            "  aws ec2 describe-regions --endpoint-url $EC2_URL",
        )
    )
