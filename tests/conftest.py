"""Fixtures that start a real `karri up` on free ports and hand out real AWS clients."""

from __future__ import annotations

import functools
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from botocore.config import Config

from karri.config import save_settings, saved_db_url, saved_walrus
from tests import ceph, leftovers, postgres
from tests.hosts import Host

VENV_BIN = Path(sys.executable).parent
KARRI = str(VENV_BIN / "karri")
AWS = str(VENV_BIN / "aws")
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Creds:
    account_id: str
    account_name: str
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None  # temporary credentials (STS)


@dataclass
class Karri:
    """A running `karri up` and the means to talk to it."""

    data_dir: Path
    ec2_url: str
    s3_url: str
    admin: Creds
    process: subprocess.Popen
    region: str = "eucalyptus"
    rc: dict[str, str] = field(default_factory=dict)  # what its karrirc exports
    on: Host | None = None  # the simulated host it runs in (tests/hosts.py), if not this one

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` where the cloud is reachable: in its host's namespace, if it has one."""
        return self.on.call(fn) if self.on else fn()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [KARRI, *args, "--data-dir", str(self.data_dir)]
        return subprocess.run(
            self.on.ns.exec_args(*command) if self.on else command,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def create_account(self, name: str) -> Creds:
        out = self.cli("account", "create", name, "--json").stdout
        return Creds(**json.loads(out))

    def endpoint(self, service: str) -> str:
        paths = {"ec2": "", "iam": "/services/Euare", "sts": "/services/Tokens"}
        return self.ec2_url + paths[service] if service in paths else self.s3_url

    def client(self, service: str, creds: Creds | None = None, **config: Any) -> Any:
        creds = creds or self.admin
        client = boto3.client(
            service,
            endpoint_url=self.endpoint(service),
            region_name=self.region,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            aws_session_token=creds.session_token,
            config=Config(retries={"max_attempts": 1}, **config),
        )
        return InHost(client, self.on) if self.on else client

    def aws_env(self, creds: Creds | None = None) -> dict[str, str]:
        """A shell that sourced karrirc, with ``creds`` in place of the admin's."""
        creds = creds or self.admin
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.rc)
        if creds.session_token:
            env["AWS_SESSION_TOKEN"] = creds.session_token
        env.update(
            AWS_ACCESS_KEY_ID=creds.access_key_id,
            AWS_SECRET_ACCESS_KEY=creds.secret_access_key,
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            AWS_MAX_ATTEMPTS="1",
        )
        return env

    def aws(self, *args: str, creds: Creds | None = None, check: bool = True) -> Any:
        """Run the AWS CLI; returns parsed JSON output (or the process when check=False)."""
        command = [AWS, *args, "--output", "json"]
        result = subprocess.run(
            self.on.ns.exec_args(*command) if self.on else command,
            capture_output=True,
            text=True,
            env=self.aws_env(creds),
            timeout=300,
        )
        if not check:
            return result
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else None


class InHost:
    """A boto3 client whose calls run in a simulated host's namespace (``Host.call``): its
    connections are opened there, and a pooled one stays there."""

    def __init__(self, client: Any, host: Host) -> None:
        self._client, self._host = client, host

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute
        return lambda *args, **kwargs: self._host.call(lambda: attribute(*args, **kwargs))


PORT_TAKEN = b"Address already in use"
LOG_TAIL_LINES = 40

# Every cloud this test process started, with its log: a failed test shows the tails of
# those still running (CI keeps nothing else of a run).
_STARTED: list[tuple[Path, subprocess.Popen]] = []  # (data dir, process)
_HUNG: list[tuple[Path, subprocess.Popen]] = []  # killed by stop_karri, not yet reported


def pytest_report_header() -> str:
    database = "PostgreSQL" if postgres.wanted() else "SQLite"
    walrus = "a Ceph pool" if ceph.wanted() else "files"
    return (
        f"karri's database: {database} (KARRI_TEST_DB); object bytes: {walrus} (KARRI_TEST_WALRUS)"
    )


def start_karri(data_dir: Path, *extra: str, on: Host | None = None) -> Karri:
    """A real ``karri up`` on free ports; tries new ports when another process took one
    between ``free_port`` and karri's bind (tests run in parallel). ``on``: in that
    simulated host (tests/hosts.py), listening on its address. Under
    ``KARRI_TEST_DB=postgresql`` a new data dir gets a new PostgreSQL database, under
    ``KARRI_TEST_WALRUS=rados`` a new pool of the test process's Ceph cluster."""
    if postgres.wanted() and not saved_db_url(data_dir):
        save_settings(data_dir, db_url=postgres.cluster().new_database())
    if ceph.wanted() and not saved_walrus(data_dir):
        cluster = ceph.cluster()
        save_settings(
            data_dir,
            walrus_backend="rados",
            ceph_conf=str(cluster.conf),
            rados_pool=cluster.new_pool(),
        )
    log_path = data_dir.parent / f"{data_dir.name}.out"
    address = on.address if on else "127.0.0.1"
    for _attempt in range(3):
        start = log_path.stat().st_size if log_path.exists() else 0
        ec2_port, s3_port = free_port(), free_port()
        if ec2_port == s3_port:
            continue
        command = [
            KARRI, "up", "--data-dir", str(data_dir), "--ec2-port", str(ec2_port),
            "--s3-port", str(s3_port), *(("--host", address) if on else ()), *extra,
        ]  # fmt: skip
        if on:
            process = on.popen(command, log_path)
        else:
            with open(log_path, "ab") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        ec2_url = f"http://{address}:{ec2_port}"
        wait = functools.partial(wait_healthy, ec2_url, process)
        if on.call(wait) if on else wait():
            _STARTED.append((data_dir, process))
            break
        process.kill()
        process.wait()
        output = log_path.read_bytes()[start:]
        if PORT_TAKEN not in output:
            tail = output[-3000:].decode(errors="replace")
            raise RuntimeError(f"karri up did not start ({log_path}):\n{tail}")
    else:
        raise RuntimeError(f"karri up found no free ports: see {log_path}")
    rc = read_rc(data_dir / "karrirc")
    admin = Creds(
        rc["EC2_ACCOUNT_NUMBER"],
        rc["KARRI_ACCOUNT"],
        rc["AWS_ACCESS_KEY_ID"],
        rc["AWS_SECRET_ACCESS_KEY"],
    )
    region = rc.get("AWS_DEFAULT_REGION", "eucalyptus")  # clients sign for the cloud's region
    s3_url = f"http://{address}:{s3_port}"
    return Karri(data_dir, ec2_url, s3_url, admin, process, region, rc, on)


def read_rc(path: Path) -> dict[str, str]:
    """The variables an rc file exports (its values are shell-quoted)."""
    exports = (line.removeprefix("export ") for line in path.read_text().splitlines())
    pairs = (line.split("=", 1) for line in exports if "=" in line and line[:1] != "#")
    return {name: shlex.split(value)[0] if value else "" for name, value in pairs}


def wait_healthy(ec2_url: str, process: subprocess.Popen, timeout: float = 120) -> bool:
    """True once karri answers its health check; False if it exited or never answered."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{ec2_url}/karri/health", timeout=1):
                return True
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.1)


def stop_karri(karri: Karri) -> None:
    """SIGTERM; a cloud that has not stopped a minute later prints its threads' stacks
    (SIGUSR1) into its console log, for the failed test's report, and is killed."""
    if karri.process.poll() is None:
        karri.process.send_signal(signal.SIGTERM)
        try:
            karri.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            karri.process.send_signal(signal.SIGUSR1)
            time.sleep(2)
            karri.process.kill()
            karri.process.wait()
            _HUNG.append((karri.data_dir, karri.process))


_SESSION_DIRS: set[Path] = set()  # ended by their session fixture, not by a module's end


@pytest.fixture(scope="session")
def karri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    """One cloud per test process, shared by the tests that only need the API."""
    base = tmp_path_factory.mktemp("karri")
    _SESSION_DIRS.add(base)
    instance = start_karri(base / "data")
    yield instance
    stop_karri(instance)
    leftovers.end_all(base)


@pytest.fixture(autouse=True)
def _end_what_the_test_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever karri or node a test ran in its ``tmp_path`` ends with the test."""
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if tmp is not None:
        leftovers.end_all(tmp)


@pytest.fixture(autouse=True, scope="module")
def _end_what_the_module_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Whatever karri or node a module's fixtures or tests ran (in directories made while
    the module ran) ends with the module, guests included, also after a SIGKILL."""
    base = tmp_path_factory.getbasetemp()
    before = set(base.iterdir())
    yield
    for directory in set(base.iterdir()) - before - _SESSION_DIRS:
        if not directory.is_symlink():  # NAMEcurrent: it may point into a session dir
            leftovers.end_all(directory)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """A failed test's report carries the log tails of each cloud still running or killed
    because it hung: its console output and its own log (logs/karri.log, requests and
    reconciler included)."""
    report = yield
    if report.failed:
        running = [(d, LOG_TAIL_LINES) for d, p in _STARTED if p.poll() is None]
        hung = [(d, LOG_TAIL_LINES * 8) for d, _p in _HUNG]  # the stacks of every thread
        for data_dir, tail in running + hung:
            for log_path in (data_dir.parent / f"{data_dir.name}.out", data_dir / "logs/karri.log"):
                _add_log_tail(report, log_path, tail)
        own = item.funcargs.get("tmp_path") if isinstance(item, pytest.Function) else None
        for log_path in sorted(own.glob("*.out")) if isinstance(own, Path) else ():
            _add_log_tail(report, log_path, LOG_TAIL_LINES)  # nodes the test started
        _HUNG.clear()
    return report


def _add_log_tail(report: pytest.TestReport, log_path: Path, tail: int) -> None:
    """The last lines of a log, without the requests that succeeded (a test polling
    Describe* would fill any tail with them)."""
    if not log_path.exists():
        return
    lines = [
        line
        for line in log_path.read_text(errors="replace").splitlines()
        if not (" karri.request " in line and " status=2" in line)
    ]
    report.sections.append((f"karri log {log_path}", "\n".join(lines[-tail:])))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After the whole run (on the xdist controller): nothing of this run's data dirs may
    be left, no namespace and no process; what is left is reported, ended, and fails the
    run."""
    factory = getattr(session.config, "_tmp_path_factory", None)  # pytest's own tmp_path_factory
    if hasattr(session.config, "workerinput") or factory is None:
        return
    base = factory.getbasetemp()
    deadline = time.monotonic() + 10  # what a teardown just ended may still be exiting
    while True:
        namespaces, processes = leftovers.namespaces_left(base), leftovers.processes_left(base)
        if not (namespaces or processes) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if not (namespaces or processes):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"namespace {name}" for name in namespaces]
    lines += [f"pid {pid}: {cmdline}" for (pid, _), cmdline in processes]
    if reporter:
        reporter.write("\n")
        reporter.write_sep("=", f"karri left behind after the run ({base})", red=True)
        for line in lines:
            reporter.write_line(f"  {line}", red=True)
    leftovers.end_all(base)
    leftovers.end_processes(leftovers.processes_left(base))
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def ec2(karri: Karri) -> Any:
    return karri.client("ec2")


_counter = iter(range(1_000_000))


@pytest.fixture
def other_account(karri: Karri) -> Creds:
    """A fresh second account."""
    return karri.create_account(f"acct-{os.getpid()}-{next(_counter)}")
