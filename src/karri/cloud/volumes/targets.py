"""Where a node opens a volume: the storage controller's answer in the node's terms.

A node on the cloud's own host opens the volume file itself (``FileTarget``); a volume on
Ceph RBD is opened by any node with QEMU's rbd driver (``RbdTarget``: the node needs the
Ceph configuration and key at the same path). A node on another host gets a file volume
as an NBD export with TLS (``VolumeExports``: ``storage/nbdexport.py``, a server
certificate from the cloud's node CA, only that node's certificate accepted), asked for
at hot-plug (``nodehost.NodeVolumeHost``) and at an EBS boot
(``instances/launch.ImageDisks``) of an instance placed there. An export's size is fixed:
an encrypted volume's qcow2 file is lengthened first to hold every cluster
(``luks.fit_container``), and a volume grown since its export is exported anew. A
snapshot of an exported volume is copied by its daemon (``backup``, ``exportjobs``).
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Protocol

from karri.cloud.nodes.ca import GATEWAY_NAME, NodeCA
from karri.cloud.volumes import exportjobs
from karri.node import FileTarget, NbdTarget, RbdTarget
from karri.node import VolumeTarget as NodeTarget
from karri.pki import write_file
from karri.storage import StorageError, VolumeTarget, luks
from karri.storage.nbdexport import NbdExports


def node_target(target: VolumeTarget) -> FileTarget | RbdTarget:
    """The volume as a node on this host opens it: its file, or its RBD image."""
    if target.driver == "rbd":
        pool, _, image = target.path.partition("/")
        conf = Path(target.ceph_conf) if target.ceph_conf else None
        return RbdTarget(pool, image, target.ceph_user or "admin", conf)
    if target.driver != "file":
        raise ValueError(f"{target.volume_id}: no node target for a {target.driver!r} volume")
    return FileTarget(Path(target.path))


PORT_TRIES = 3


class Targets(Protocol):
    def target(self, volume_id: str) -> VolumeTarget: ...


class VolumeExports:
    """Volumes for nodes: the file for the cloud's own node, an NBD export for another.

    ``host`` is the cloud's address the nodes reach; the NBD server's certificate names it
    (and ``karri-cloud``, which targets ask for)."""

    def __init__(self, storage: Targets, ca: NodeCA, directory: Path, host: str) -> None:
        self.storage = storage
        self.host = host
        self.exports = NbdExports(server_tls(ca, directory / "tls", [host]), directory / "run")

    def target(self, volume_id: str, node: str | None = None) -> NodeTarget:
        """Where ``node`` (None: the cloud's own) opens the volume; blocking."""
        stored = self.storage.target(volume_id)
        if node is None or stored.driver == "rbd":  # every host reaches the Ceph cluster
            return node_target(stored)
        if stored.format == luks.FORMAT:  # room for its clusters: an export's size is fixed
            _fit(stored)
        current = self.exports.running(volume_id)
        if current and current.client == node and current.size == _length(stored):
            return NbdTarget(current.url, GATEWAY_NAME)  # else exported anew: it grew
        for attempt in range(PORT_TRIES):  # a free port can be taken before the daemon binds
            try:
                port = _free_port(self.host)
                export = self.exports.export(volume_id, Path(stored.path), self.host, port, node)
                return NbdTarget(export.url, GATEWAY_NAME)
            except StorageError:
                if attempt == PORT_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def release(self, volume_id: str) -> None:
        """The volume left the other host's node: end its export."""
        self.exports.unexport(volume_id)

    def backup(self, volume_id: str, target: VolumeTarget, name: str) -> None:
        """Copy the exported volume, as it is now, into the file of ``target`` (a
        checkpoint's): its file's bytes, an encrypted volume's container as it is
        (``exportjobs``); blocking. StorageError without a running export."""
        if self.exports.running(volume_id) is None:
            raise StorageError(f"{volume_id} is not exported")
        exportjobs.backup(self.exports.monitor(volume_id), Path(target.path), name)


def _length(stored: VolumeTarget) -> int:
    try:
        return Path(stored.path).stat().st_size
    except OSError as error:
        raise StorageError(f"{stored.volume_id}: {error}") from error


def _fit(stored: VolumeTarget) -> None:
    try:
        luks.fit_container(Path(stored.path))
    except (OSError, luks.LuksError) as error:
        raise StorageError(f"{stored.volume_id}: {error}") from error


def server_tls(ca: NodeCA, directory: Path, hosts: list[str]) -> Path:
    """QEMU's ``tls-creds-x509`` server files in ``directory``: the node CA, and a server
    certificate it issued for ``hosts``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert, key = ca.gateway_identity(directory, hosts)
    write_file(directory / "ca-cert.pem", ca.pem, 0o644)
    shutil.copyfile(cert, directory / "server-cert.pem")
    write_file(directory / "server-key.pem", key.read_bytes(), 0o600)
    return directory


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
