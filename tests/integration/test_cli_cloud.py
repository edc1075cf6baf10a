"""`karri vmtype`, and `karri up` restarted on the same data dir, stopped by SIGTERM, and
refused a busy port."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import KARRI, Karri, free_port, start_karri, stop_karri
from tests.integration.ec2_wire import unique


def test_vmtype_list_and_set(karri: Karri) -> None:
    types = {t["name"]: t for t in json.loads(karri.cli("vmtype", "list", "--json").stdout)}
    assert {"t1.micro", "m1.small", "m1.medium", "c1.medium", "m1.large"} <= types.keys()
    name = unique("t9").lower().replace("-", ".")
    out = karri.cli("vmtype", "set", name, "--cpu", "3", "--memory", "768", "--disk", "7").stdout
    assert name in out
    ec2 = karri.client("ec2")
    (info,) = ec2.describe_instance_types(InstanceTypes=[name])["InstanceTypes"]
    assert info["VCpuInfo"]["DefaultVCpus"] == 3
    assert info["MemoryInfo"]["SizeInMiB"] == 768
    assert info["InstanceStorageInfo"]["TotalSizeInGB"] == 7
    karri.cli("vmtype", "set", name, "--memory", "1024")
    (info,) = ec2.describe_instance_types(InstanceTypes=[name])["InstanceTypes"]
    assert (info["VCpuInfo"]["DefaultVCpus"], info["MemoryInfo"]["SizeInMiB"]) == (3, 1024)
    assert "m1.small" in karri.cli("vmtype", "list").stdout
    for bad in (
        ["vmtype", "set", "new.partial", "--cpu", "1"],
        ["vmtype", "set", name, "--cpu", "0"],
    ):
        assert karri.cli(*bad, check=False).returncode != 0


@pytest.fixture
def own_cloud(tmp_path: Path):
    instance = start_karri(tmp_path / "data")
    yield instance
    stop_karri(instance)


def test_restart_reuses_everything_and_sigterm_stops_cleanly(own_cloud: Karri) -> None:
    first = own_cloud
    name = unique("survivor")
    key = first.client("ec2").create_key_pair(KeyName=name)
    account = first.create_account(unique("kept").lower())

    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=30) == 0
    assert "karri stopped" in (first.data_dir.parent / "data.out").read_text()
    assert not (first.data_dir / "runtime.json").exists()

    second = start_karri(first.data_dir)
    try:
        assert second.admin == first.admin  # the same admin account and key
        ec2 = second.client("ec2")
        info = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]
        assert info["KeyFingerprint"] == key["KeyFingerprint"]
        assert second.client("ec2", account).describe_key_pairs()["KeyPairs"] == []
        report = json.loads(second.cli("status", "--json").stdout)
        assert report["running"] is True and report["pid"] == second.process.pid
        assert report["database"].startswith(("sqlite:///", "postgresql"))
        assert "joined nodes" in report["counts"] and "NAT gateways" in report["counts"]
    finally:
        stop_karri(second)
    assert second.process.returncode == 0


def test_status_of_a_cloud_not_yet_upgraded(tmp_path: Path) -> None:
    """`karri status` on a database that lacks a newer component's table (say, made by an
    older karri and not yet migrated by `karri up`) reports what it can instead of failing."""
    data_dir = tmp_path / "older"
    cli = [KARRI, "account", "create", "someone", "--data-dir", str(data_dir)]
    subprocess.run(cli, check=True, capture_output=True, timeout=120)
    with sqlite3.connect(data_dir / "karri.db") as db:
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("DROP TABLE key_pairs")
    status = [KARRI, "status", "--json", "--data-dir", str(data_dir)]
    out = subprocess.run(status, check=True, capture_output=True, text=True, timeout=120)
    report = json.loads(out.stdout)
    assert report["running"] is False
    assert report["counts"]["accounts"] == 1 and "key pairs" not in report["counts"]


def test_a_busy_port_is_named_without_a_traceback(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        for name, ports in (("S3", [free_port(), port]), ("EC2", [port, free_port()])):
            result = subprocess.run(
                [KARRI, "up", "--data-dir", str(tmp_path / "data"), "--no-default-images",
                 "--ec2-port", str(ports[0]), "--s3-port", str(ports[1])],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert result.returncode != 0
            assert f"cannot listen on the {name} port {port}" in result.stderr
            assert "Traceback" not in result.stderr
    finally:
        busy.close()
