"""A data dir from before VPCs whose guest still runs in the single namespace
``karri-<hash of the data dir>``: the next node ends it (its namespace goes), reports it
ended by the network upgrade, and the relaunch keeps its root disk (the tiny guest
records on it that its user-data ran).

The old layout is made from a new one: a node launches F and is closed (F runs on), then
F's namespace is bind-mounted at the pre-VPC name and its VPC name removed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from karri.node import ExitReason, InstanceExit, NodeSettings, VmState
from karri.node.netns import NETNS_DIR, namespace_name

from . import guests
from .conftest import LoopThread, needs_root

pytestmark = [needs_root, pytest.mark.guests]

F = "i-0000000f"
IP, MAC = "172.31.0.15", "52:54:00:00:00:0f"
MARKER = """if [ -e /upgrade-marker ]; then echo "karri-test: marker kept"
else touch /upgrade-marker; sync; echo "karri-test: marker made"; fi
"""


def test_a_guest_of_the_pre_vpc_namespace_is_ended_once_and_keeps_its_disk(
    loop: LoopThread, tiny_image: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    meta = {F: guests.metadata(F, IP, MAC, user_data=guests.user_data(MARKER))}
    spec = guests.spec(tiny_image, F, IP, MAC)
    old = guests.open_node(data, NodeSettings(stop_timeout=30), metadata=meta.get)
    loop.run(old.start(), 60)
    loop.run(old.launch(spec))
    guests.wait_console(loop, old, F, "marker made", 240)
    loop.run(old.close())  # F runs on in its namespace

    legacy = NETNS_DIR / namespace_name(data)
    current = guests.vpc_namespace(data)
    legacy.touch()
    subprocess.run(["mount", "--bind", str(current.path), str(legacy)], check=True)
    subprocess.run(["ip", "netns", "delete", current.name], check=True)

    ended: list[InstanceExit] = []
    node = guests.open_node(
        data, NodeSettings(stop_timeout=30), metadata=meta.get, on_exit=ended.append
    )
    try:
        report = loop.run(node.start(), 60)
        assert not legacy.exists()
        assert report.running == ()
        (exit,) = report.exited
        assert exit.reason == ExitReason.NETWORK_UPGRADE and ended == [exit]
        loop.run(node.launch(spec))  # what the cloud does, once
        assert loop.call(node.info, F).state == VmState.RUNNING
        # the root disk was kept: the guest remembers that its user-data ran (boot 2)
        guests.wait_console(loop, node, F, f"user-data already ran for {F}", 240)
    finally:
        loop.run(node.close(stop_instances=True), 180)
        if legacy.exists():
            subprocess.run(["ip", "netns", "delete", legacy.name], check=False)
    assert not current.exists()
