"""Volumes exported over NBD with TLS, for nodes on other hosts (``NbdTarget``).

One ``qemu-storage-daemon`` per exported volume serves the volume file's raw bytes,
whatever its format: a qcow2-luks volume leaves as its qcow2 container, still encrypted;
the node opens qcow2 with its secret over the nbd protocol node, so the passphrase never
reaches the storage side and the bytes cross the network encrypted at rest and in TLS.

TLS is QEMU's ``tls-creds-x509`` (endpoint server, ``verify-peer``): ``tls_dir`` holds
``ca-cert.pem``, ``server-cert.pem`` and ``server-key.pem`` (the cloud's node CA and a
server certificate it issued, ``cloud/volumes/exports.py``), so only a client certificate
of that CA is accepted, and ``tls-authz`` accepts only the one node the volume is for (its
certificate's ``CN``). The daemons are their own sessions: like guests, they outlive
``karri up``; ``export`` finds a running one by its pid file and keeps it.

Each daemon has a QMP monitor on a unix socket in ``run_dir`` (``monitor``): the
volume's point-in-time copies are taken there, where its bytes are
(``cloud/volumes/exportjobs.py``); its block node is ``NODE``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from karri.ids import is_valid_id
from karri.pidfiles import alive, running_pid
from karri.storage.interface import StorageError

START_TIMEOUT = 30.0
BINARY = "qemu-storage-daemon"
NODE = "vol"  # the daemon's block node: the volume's file


@dataclass(frozen=True)
class NbdExport:
    volume_id: str
    host: str
    port: int
    client: str  # the node (certificate CN) allowed to open it
    size: int = 0  # its length in bytes: the file's when the daemon opened it (fixed)

    @property
    def url(self) -> str:
        return f"nbd://{self.host}:{self.port}/{self.volume_id}"


class NbdExports:
    """The exports of one storage controller; ``run_dir`` keeps their pid files."""

    def __init__(self, tls_dir: Path, run_dir: Path, binary: str = BINARY) -> None:
        self.tls_dir = tls_dir
        self.run_dir = run_dir
        self.binary = binary

    def export(self, volume_id: str, path: Path, host: str, port: int, client: str) -> NbdExport:
        """Serve ``path`` as export ``volume_id`` on ``host:port`` to node ``client``
        (kept if already served so); StorageError if the daemon does not start."""
        check_volume(volume_id)
        try:
            wanted = NbdExport(volume_id, host, port, client, path.stat().st_size)
        except OSError as error:
            raise StorageError(f"{volume_id}: {error}") from error
        if self.running(volume_id) == wanted:
            return wanted
        self.unexport(volume_id)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        pid_file, log = self._pid_file(volume_id), self.run_dir / f"{volume_id}.log"
        with open(log, "wb") as out:
            daemon = subprocess.Popen(
                self._command(wanted, path, pid_file),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.run_dir,  # the monitor's socket by its name: paths may be long
                start_new_session=True,  # outlives karri up, as guests do
            )
        self._wait_listening(wanted, daemon, log)
        self._describe(volume_id).write_text(json.dumps(wanted.__dict__))
        return wanted

    def running(self, volume_id: str) -> NbdExport | None:
        """The volume's export, if its daemon runs."""
        pid = self._pid(volume_id)
        description = self._describe(volume_id)
        if pid is None or not description.exists():
            return None
        return NbdExport(**json.loads(description.read_text()))

    def monitor(self, volume_id: str) -> Path:
        """The unix socket of the export's QMP monitor (none for a daemon started before
        exports had one)."""
        return self.run_dir / f"{check_volume(volume_id)}.qmp"

    def unexport(self, volume_id: str) -> None:
        """End the volume's export (nothing if there is none)."""
        pid = self._pid(volume_id)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not alive(pid):
                    break
                time.sleep(0.05)
            else:
                os.kill(pid, signal.SIGKILL)
        for file in (self._pid_file(volume_id), self._describe(volume_id), self.monitor(volume_id)):
            file.unlink(missing_ok=True)

    def _command(self, export: NbdExport, path: Path, pid_file: Path) -> list[str]:
        tls = {
            "qom-type": "tls-creds-x509",
            "id": "tls0",
            "dir": str(self.tls_dir),
            "endpoint": "server",
            "verify-peer": True,
        }
        authz = {"qom-type": "authz-simple", "id": "authz0", "identity": f"CN={export.client}"}
        blockdev = {"driver": "file", "filename": str(path), "node-name": NODE}
        server = {
            "addr": {"type": "inet", "host": export.host, "port": str(export.port)},
            "tls-creds": "tls0",
            "tls-authz": "authz0",
        }
        nbd = {"type": "nbd", "id": "exp0", "node-name": NODE, "name": export.volume_id}
        monitor = f"socket,id=mon0,path={self.monitor(export.volume_id).name},server=on,wait=off"
        return [
            self.binary,
            "--object", json.dumps(tls),
            "--object", json.dumps(authz),
            "--blockdev", json.dumps(blockdev),
            "--nbd-server", json.dumps(server),
            "--export", json.dumps(nbd | {"writable": True}),
            "--chardev", monitor,
            "--monitor", "chardev=mon0",
            "--pidfile", str(pid_file),
        ]  # fmt: skip

    def _wait_listening(self, export: NbdExport, daemon: subprocess.Popen, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if daemon.poll() is not None:
                said = log.read_text(errors="replace").strip()[-500:]
                raise StorageError(f"{export.volume_id}: {self.binary} failed: {said}")
            try:
                with socket.create_connection((export.host, export.port), timeout=1):
                    pass
                if self._pid(export.volume_id) is not None:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                daemon.kill()
                raise StorageError(f"{export.volume_id}: {self.binary} did not listen")
            time.sleep(0.05)

    def _pid_file(self, volume_id: str) -> Path:
        return self.run_dir / f"{volume_id}.pid"

    def _describe(self, volume_id: str) -> Path:
        return self.run_dir / f"{volume_id}.json"

    def _pid(self, volume_id: str) -> int | None:
        """The export's daemon, if it still runs (a pid file left by a dead one: None)."""
        pid_file = self._pid_file(volume_id)
        return running_pid(pid_file, str(pid_file))


def check_volume(volume_id: str) -> str:
    if not is_valid_id(volume_id, "vol"):
        raise StorageError(f"not a volume id: {volume_id!r}")
    return volume_id
