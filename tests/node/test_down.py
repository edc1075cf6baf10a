"""`karri down` after a node was killed with its guest running: without ``--guests`` the
guest and its network stay (a restarted karri adopts them); with it nothing is left."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from karri.node.cleanup import leftovers
from karri.node.commands import pid_alive
from karri.node.netns import namespace_name
from tests.conftest import KARRI

from . import guests
from .conftest import needs_root

pytestmark = [needs_root, pytest.mark.guests]

REPO = Path(__file__).resolve().parents[2]
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from karri.node import Node, NodeSettings
    from tests.node import guests

    async def main():
        node = Node(Path(sys.argv[1]), NodeSettings(accelerator="tcg"))
        await node.set_groups(guests.VPC, [guests.OPEN])
        await node.start()
        spec = guests.spec(Path(sys.argv[2]), "i-000000a1", "172.31.0.21", "52:54:00:00:00:a1")
        print((await node.launch(spec)).pid, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def down(data_dir: Path, *args: str) -> str:
    return subprocess.run(
        [KARRI, "down", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


def test_karri_down_keeps_running_guests_and_ends_them_with_guests(
    tiny_image: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), str(tiny_image)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        qemu = int(child.stdout.readline())
    finally:
        child.kill()  # SIGKILL: the guest, dnsmasq and the namespace stay
        child.wait()
    left = leftovers(data)
    assert left.namespaces == (namespace_name(data, guests.VPC),) and left.dnsmasqs
    assert [pid for pid, _ in left.guests] == [qemu]

    assert "kept (guests still run" in down(data)
    assert pid_alive(qemu, None) and leftovers(data).namespaces

    out = down(data, "--guests")
    assert f"QEMU pid {qemu}" in out and f"dnsmasq pid {left.dnsmasqs[0][0]}" in out
    assert not pid_alive(qemu, None) and not pid_alive(left.dnsmasqs[0][0], None)
    assert not leftovers(data)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert namespace_name(data) not in listed  # the prefix of every namespace of the data dir
