"""The extra processes that serve the S3 port beside `karri up` itself.

One Python process answers a few thousand small S3 requests a second on one core, so
`karri up` starts ``Settings.s3_processes - 1`` more, each accepting connections on the
same listening socket (which `karri up` serves as well) with its own Walrus over the
same database and data dir. What makes that safe lives in Walrus: write transactions
take the database's write lock first, bucket caches follow a shared change counter,
and a reader opens every file of an object at once.

Workers have their own session (Ctrl-C reaches `karri up` only, which then stops them),
die with `karri up` if it is killed (``PR_SET_PDEATHSIG``), and are restarted if one
ends on its own, unless it failed with an error right after starting.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from karri.config import Settings
from karri.serving import STOP_GRACE

log = logging.getLogger("karri.api.s3")

STOP_TIMEOUT = STOP_GRACE + 5.0  # a worker finishes its requests (or cuts them off) first
DB_URL_VARIABLE = "KARRI_WORKER_DB_URL"
MIN_UPTIME = 5.0  # a worker that errs out sooner is not restarted (it would again)


class S3Workers:
    """``count`` worker processes accepting on ``sock``; ``start``, ``watch``, ``stop``."""

    def __init__(self, settings: Settings, sock: socket.socket, count: int, verbose: bool):
        self.settings = settings
        self.sock = sock
        self.count = count
        self.verbose = verbose
        self._processes: list[tuple[subprocess.Popen, float] | None] = [None] * count
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [entry[0].pid for entry in self._processes if entry is not None]

    def start(self) -> None:
        """Start every worker; call from the main thread (the parent-death signal
        follows the thread that started the process)."""
        for index in range(self.count):
            self._processes[index] = (self._spawn(index), time.monotonic())

    def _spawn(self, index: int) -> subprocess.Popen:
        settings = self.settings
        command = [
            sys.executable, "-m", "karri.s3worker",
            "--fd", str(self.sock.fileno()),
            "--parent", str(os.getpid()),
            "--index", str(index + 1),
            "--data-dir", str(settings.data_dir),
            "--s3-domain", settings.s3_domain,
            "--region", settings.region,
        ]  # fmt: skip
        if self.verbose:
            command.append("--verbose")
        if settings.walrus_backend != "files":
            command += ["--walrus-backend", settings.walrus_backend]
            command += ["--ceph-user", settings.ceph_user, "--rados-pool", settings.rados_pool]
            command += ["--ceph-conf", settings.ceph_conf] if settings.ceph_conf else []
        # The database URL may hold a password: the environment, unlike the command line,
        # is readable by this user only.
        environment = os.environ | {DB_URL_VARIABLE: settings.database_url}
        return subprocess.Popen(
            command,
            env=environment,
            pass_fds=(self.sock.fileno(),),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def watch(self, changed: Callable[[], None], every: float = 1.0) -> None:
        """Restart workers that end while the cloud runs; ``changed()`` after each change
        to ``pids``."""
        while not self._stopping:
            await asyncio.sleep(every)
            for index, entry in enumerate(self._processes):
                if entry is None or self._stopping:
                    continue
                process, started = entry
                code = process.poll()
                if code is None:
                    continue
                if code > 0 and time.monotonic() - started < MIN_UPTIME:
                    log.error("S3 process %d failed at start (exit %s)", index + 1, code)
                    self._processes[index] = None
                else:
                    log.warning("S3 process %d ended (exit %s); restarting it", index + 1, code)
                    self._processes[index] = (self._spawn(index), time.monotonic())
                changed()

    def stop(self) -> None:
        """Ask every worker to finish its requests and end; kill those that do not."""
        self._stopping = True
        running = [entry[0] for entry in self._processes if entry is not None]
        for process in running:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
