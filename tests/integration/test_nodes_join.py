"""Nodes joining a real `karri up` (issue 19, its first step): `karri node token` on the
cloud's side, `karri node --cloud --token` as a separate process with its own data dir;
its heartbeats over mutual TLS make it ENABLED, SIGKILL makes it BROKEN, a restart
(without a token) ENABLED again; a spent or forged token, a certificate of another CA and a
removed node's certificate get nothing."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from karri.pki import csr_for, new_key
from tests.conftest import KARRI, Karri, free_port, start_karri, stop_karri

INTERVAL = "0.5"  # seconds between heartbeats: BROKEN after three are missed


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    data = tmp_path_factory.mktemp("nodes") / "data"
    karri = start_karri(data, "--node-driver", "fake", "--node-port", str(free_port()))
    try:
        yield karri
    finally:
        stop_karri(karri)


def token(cloud: Karri) -> str:
    return cloud.cli("node", "token").stdout.strip().splitlines()[-1]


def nodes(cloud: Karri) -> dict[str, dict]:
    return {n["name"]: n for n in json.loads(cloud.cli("node", "list", "--json").stdout)}


def start_node(cloud: Karri, node_dir: Path, *args: str) -> subprocess.Popen:
    log = open(node_dir.parent / f"{node_dir.name}.out", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [KARRI, "node", "--data-dir", str(node_dir), "--interval", INTERVAL,
         "--host", "127.0.0.1", "--port", str(free_port()), "--node-driver", "fake", *args],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_for(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def join_answer(cloud: Karri, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        cloud.ec2_url + "/karri/nodes/join",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_node_joins_beats_breaks_and_comes_back(cloud: Karri, tmp_path: Path) -> None:
    node_dir = tmp_path / "node1"
    given = token(cloud)
    process = start_node(
        cloud, node_dir, "--cloud", cloud.ec2_url, "--token", given, "--name", "n1"
    )
    try:
        wait_for(lambda: nodes(cloud).get("n1", {}).get("state") == "ENABLED")
        listed = nodes(cloud)["n1"]
        assert listed["zone"] == "eucalyptus-1a" and listed["vcpus"] >= 1
        assert listed["memory_mib"] > 0
        assert (node_dir / "node.key").stat().st_mode & 0o077 == 0
        status, answer = join_answer(
            cloud, {"token": given, "name": "n9", "csr": csr_for(new_key(), "n9").decode()}
        )
        assert status == 403 and "not valid" in answer["error"]  # spent
        process.send_signal(signal.SIGKILL)
        process.wait()
        wait_for(lambda: nodes(cloud)["n1"]["state"] == "BROKEN")
        process = start_node(cloud, node_dir)  # joined already: no token needed
        wait_for(lambda: nodes(cloud)["n1"]["state"] == "ENABLED")
        cloud.cli("node", "disable", "n1")
        assert nodes(cloud)["n1"]["state"] == "DISABLED"
        cloud.cli("node", "enable", "n1")
        wait_for(lambda: nodes(cloud)["n1"]["state"] == "ENABLED")
        gateway = json.loads((node_dir / "node.json").read_text())["gateway"]
        context = ssl.create_default_context(cafile=str(node_dir / "node-ca.pem"))
        context.load_cert_chain(str(node_dir / "node.pem"), str(node_dir / "node.key"))
        body = json.dumps({"vcpus": 1, "memory_mib": 1, "interval": 1}).encode()

        def beat() -> int:
            request = urllib.request.Request(gateway + "/v1/heartbeat", data=body, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10, context=context) as reply:
                    return reply.status
            except urllib.error.HTTPError as error:
                return error.code

        assert beat() == 200
        cloud.cli("node", "remove", "n1")
        assert beat() == 403  # its certificate names no node any more
        assert "n1" not in nodes(cloud)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_what_the_cloud_refuses(cloud: Karri, tmp_path: Path) -> None:
    forged = token(cloud)
    forged = forged[:-1] + ("0" if forged[-1] != "0" else "1")  # another CA hash
    joined = subprocess.run(
        [KARRI, "node", "--data-dir", str(tmp_path / "n2"), "--cloud", cloud.ec2_url,
         "--token", forged, "--name", "n2"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert joined.returncode != 0 and "token is not valid" in joined.stderr, joined.stderr
    assert "n2" not in nodes(cloud)

    for body in ({}, {"token": "x", "name": "n3", "csr": "y"}, [1, 2]):
        status, answer = join_answer(cloud, body)  # type: ignore[arg-type]
        assert status in (400, 403) and answer["error"], body
    status, _ = join_answer(
        cloud, {"token": token(cloud), "name": "n4", "csr": csr_for(new_key(), "other").decode()}
    )
    assert status == 403

    # TLS: a client without a certificate, or with one of another CA, gets no answer
    gateway = f"https://127.0.0.1:{_gateway_port(cloud)}"
    context = ssl.create_default_context(cafile=str(cloud.data_dir / "node-ca.pem"))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(
            urllib.request.Request(gateway + "/v1/heartbeat", data=b"{}", method="POST"),
            timeout=10,
            context=context,
        ).read()


def _gateway_port(cloud: Karri) -> int:
    runtime = json.loads((cloud.data_dir / "runtime.json").read_text())
    return int(runtime["node_port"])
