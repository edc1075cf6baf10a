"""A throwaway one-host Ceph cluster for the tests: one per test process, a pool per cloud.

`KARRI_TEST_WALRUS=rados` makes ``start_karri`` keep every new data dir's object bytes in
a fresh pool of this cluster (saved in the data dir's ``settings.json``, so restarts and
CLI commands find it too). The cluster is Debian's Ceph (as ../shared/recipes/ceph-one-host.sh
builds it): one monitor on loopback ports, one manager, one bluestore OSD on a sparse file,
pool size 1, everything in a temporary directory, no systemd and no /etc/ceph. It is
stopped when the test process ends, however it ends. ``stop()``/``start()`` take the
daemons down and back up with their data (a Ceph outage, for the tests of one).
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

DAEMONS = ("osd.0", "mgr.x", "mon.a")  # the order they stop in: the OSD before the mon


def wanted() -> bool:
    """True when this run's clouds keep their object bytes in RADOS."""
    return os.environ.get("KARRI_TEST_WALRUS", "files").lower() == "rados"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(directory: Path, fsid: str, v2: int, v1: int) -> str:
    d = directory
    per_daemon = f"log file = {d}/log/$cluster-$name.log\npid file = {d}/run/$name.pid\n"
    return f"""[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
run dir = {d}/run
crash dir = {d}/crash
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
[client]
keyring = {d}/admin.keyring
log file = {d}/log/client.log
rados osd op timeout = 8
rados mon op timeout = 8
client mount timeout = 8
[mon]
mon data = {d}/mon/$id
mon cluster log file = {d}/log/cluster.log
paxos propose interval = 0.05
{per_daemon}[mgr]
mgr data = {d}/mgr/$id
{per_daemon}[osd]
osd data = {d}/osd/$id
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 10737418240
osd memory target = 1073741824
{per_daemon}"""


class Cluster:
    """One running cluster; ``new_pool()`` hands out empty pools' names."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="karri-ceph-"))
        self.conf = self.dir / "ceph.conf"
        self._names = itertools.count()
        self._watch(os.getpid())
        atexit.register(self.destroy)
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise

    def _create(self) -> None:
        d = self.dir
        for sub in ("run", "log", "crash", "mon/a", "mgr/x", "osd/0"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        v2, v1 = _free_port(), _free_port()
        self.conf.write_text(_config(d, fsid, v2, v1))
        tool = "ceph-authtool"
        self._run(tool, "--create-keyring", d / "mon.keyring", "--gen-key", "-n", "mon.",
                  "--cap", "mon", "allow *")  # fmt: skip
        self._run(tool, "--create-keyring", d / "admin.keyring", "--gen-key", "-n",
                  "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *",
                  "--cap", "mgr", "allow *")  # fmt: skip
        self._run(tool, d / "mon.keyring", "--import-keyring", d / "admin.keyring")
        self._run("monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                  f"[v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]", d / "monmap")  # fmt: skip
        self._run("ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", d / "monmap",
                  "--keyring", d / "mon.keyring")  # fmt: skip
        self._run("ceph-mon", "-c", self.conf, "-i", "a")  # daemonizes
        self.command("auth get-or-create", entity="mgr.x",
                     caps=["mon", "allow profile mgr", "osd", "allow *"])  # fmt: skip
        mgr_key = self.command("auth get", entity="mgr.x")
        (d / "mgr/x/keyring").write_bytes(mgr_key)
        self._run("ceph-mgr", "-c", self.conf, "-i", "x")
        osd_uuid = str(uuid.uuid4())
        osd_key = subprocess.run(
            [tool, "--gen-print-key"], check=True, capture_output=True, text=True
        ).stdout.strip()
        osd_id = self.command(
            "osd new", uuid=osd_uuid, inbuf=json.dumps({"cephx_secret": osd_key}).encode()
        )
        assert osd_id.strip() == b"0", osd_id
        (d / "osd/0/keyring").write_text(f"[osd.0]\n\tkey = {osd_key}\n")
        self._run("ceph-osd", "-c", self.conf, "-i", "0", "--mkfs", "--key", osd_key,
                  "--osd-uuid", osd_uuid)  # fmt: skip
        self._run("ceph-osd", "-c", self.conf, "-i", "0")
        self._wait_osd_up()

    def _wait_osd_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stat = json.loads(self.command("osd stat", format="json"))
            if stat.get("num_up_osds", 0) >= 1:
                return
            time.sleep(0.2)
        raise TimeoutError("the test cluster's OSD did not come up")

    def _run(self, *command: object) -> None:
        subprocess.run(
            list(map(str, command)), check=True, capture_output=True, timeout=120,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def client(self):
        """A connected ``rados.Rados`` (the caller shuts it down)."""
        import rados

        cluster = rados.Rados(conffile=str(self.conf), conf={"client_mount_timeout": "30"})
        cluster.connect(timeout=30)
        return cluster

    def command(self, prefix: str, inbuf: bytes = b"", **arguments: object) -> bytes:
        """A monitor command's output; raises on failure."""
        cluster = self.client()
        try:
            code, out, status = cluster.mon_command(
                json.dumps({"prefix": prefix, **arguments}), inbuf, timeout=60
            )
        finally:
            cluster.shutdown()
        if code != 0:
            raise RuntimeError(f"ceph {prefix}: {status} ({code})")
        return out

    def new_pool(self) -> str:
        """An empty pool's name, new in this cluster."""
        name = f"karri-{os.getpid()}-{next(self._names)}"
        self.command("osd pool create", pool=name, pg_num=8)
        self.command("osd pool application enable", pool=name, app="karri")
        return name

    def _pid(self, name: str) -> int | None:
        """A daemon's pid, if its pid file names a live daemon of this cluster."""
        try:
            pid = int((self.dir / "run" / f"{name}.pid").read_text())
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        return pid if str(self.conf).encode() in command_line and state != "Z" else None

    def stop(self) -> None:
        """Stop every daemon (the OSD first); their data stays for ``start``."""
        for name in DAEMONS:
            pid = self._pid(name)
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if self._pid(name) is None:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)

    def start(self) -> None:
        """Start the daemons ``stop`` stopped, and wait for the OSD."""
        self._run("ceph-mon", "-c", self.conf, "-i", "a")
        self._run("ceph-mgr", "-c", self.conf, "-i", "x")
        self._run("ceph-osd", "-c", self.conf, "-i", "0")
        self._wait_osd_up()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _watch(self, pid: int) -> None:
        """Stop the cluster once this process is gone, however it ends (a killed xdist
        worker runs no atexit): a shell of its own session polls for it, then stops the
        daemons through their pid files."""
        script = (
            'ours() { tr "\\0" " " </proc/$1/cmdline 2>/dev/null | grep -qF "$0/ceph.conf"; }; '
            'while kill -0 "$1" 2>/dev/null; do sleep 1; done; '
            'for n in osd.0 mgr.x mon.a; do f="$0/run/$n.pid"; [ -e "$f" ] || continue; '
            'p=$(cat "$f"); ours "$p" || continue; kill "$p"; '
            'for i in $(seq 50); do ours "$p" || break; sleep 0.1; done; '
            'ours "$p" && kill -9 "$p"; done; rm -rf "$0"'
        )
        subprocess.Popen(
            ["bash", "-c", script, str(self.dir), str(pid)],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


_cluster: Cluster | None = None


def cluster() -> Cluster:
    """This process's cluster, started at first use and removed when the process exits."""
    global _cluster
    if _cluster is None:
        _cluster = Cluster()
    return _cluster
