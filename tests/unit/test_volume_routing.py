"""EBS's node host with joined nodes (many-hosts step 5): each volume call goes to the
instance's node; a guest on another host gets the volume's NBD target for that node
(``NodeTargets``), whose export ends when the volume is unplugged; a snapshot of a volume
attached on another host is copied by its export (here, where its bytes are), never by the
guest's node; one in use on another host is not grown (QEMU's NBD client keeps the size it
connected with)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from karri.cloud.volumes.host import CannotGrow, HostUnavailable
from karri.cloud.volumes.nodehost import NodeVolumeHost, NodeVolumes
from karri.node import DiskLimits, FileTarget, ImageRef, ImageRoot, InstanceSpec
from karri.node import VolumeTarget as NodeTarget
from karri.node.fake import FakeNode
from karri.storage import VolumeTarget

IMAGE = ImageRef("emi-1", 1, "0" * 64, "http://127.0.0.1:1/emi-1")
LIMITS = DiskLimits(iops=3000, bps=125 * 1024**2)


class Routing:
    def __init__(self, local: FakeNode, remote: FakeNode) -> None:
        self.nodes = {"i-local": (local, None), "i-remote": (remote, "n1")}

    def volume_node(self, instance_id: str) -> tuple[NodeVolumes, str | None]:
        return self.nodes[instance_id]  # type: ignore[return-value]


class Exports:
    """Stands for ``VolumeExports``: the fake node opens files only, so the "export" is
    the file itself; what was asked is recorded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.asked: list[tuple[str, str | None]] = []
        self.released: list[str] = []
        self.copied: list[tuple[str, str, str]] = []

    def target(self, volume_id: str, node: str | None = None) -> NodeTarget:
        self.asked.append((volume_id, node))
        return FileTarget(self.path)

    def release(self, volume_id: str) -> None:
        self.released.append(volume_id)

    def backup(self, volume_id: str, target: VolumeTarget, name: str) -> None:
        self.copied.append((volume_id, target.path, name))


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join()


def launched(loop: asyncio.AbstractEventLoop, node: FakeNode, instance_id: str) -> None:
    spec = InstanceSpec(instance_id, 1, 256, ImageRoot(IMAGE), "d0:0d:00:00:00:01", "172.31.0.5")

    async def go() -> None:
        await node.start()
        await node.launch(spec)

    asyncio.run_coroutine_threadsafe(go(), loop).result(10)


def test_volume_calls_go_to_the_instances_node(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    local, remote = FakeNode(), FakeNode()
    launched(loop, local, "i-local")
    launched(loop, remote, "i-remote")
    file = tmp_path / "vol-1"
    file.write_bytes(b"\0" * 4096)
    exports = Exports(file)
    host = NodeVolumeHost(local, loop, Routing(local, remote), exports)
    stored = VolumeTarget("vol-1", "file", str(file), "raw", 4096)

    host.attach("i-remote", "vol-1", stored, LIMITS)
    assert exports.asked == [("vol-1", "n1")]  # an export for n1
    assert host.attached("i-remote") == {"vol-1"} and host.attached("i-local") == set()
    assert host.running("i-remote") and host.running("i-local")
    checkpoint = VolumeTarget("snap-1", "file", str(tmp_path / "snap-1.raw"), "raw", 4096)
    host.backup("i-remote", "vol-1", checkpoint)  # by the export, not the remote node
    assert exports.copied == [("vol-1", checkpoint.path, "snap-1")]
    assert not (tmp_path / "snap-1.raw").exists()
    with pytest.raises(CannotGrow):
        host.resize("i-remote", "vol-1", 8192)
    assert file.stat().st_size == 4096
    without_exports = NodeVolumeHost(local, loop, Routing(local, remote))
    with pytest.raises(HostUnavailable):
        without_exports.backup("i-remote", "vol-1", checkpoint)
    assert host.detach("i-remote", "vol-1", force=False)
    assert exports.released == ["vol-1"] and host.attached("i-remote") == set()

    host.attach("i-local", "vol-1", stored, LIMITS)  # the cloud's own node: the file
    assert exports.asked == [("vol-1", "n1")]
    assert host.attached("i-local") == {"vol-1"}
    host.backup("i-local", "vol-1", checkpoint)  # through the guest's QEMU (here: a copy)
    host.resize("i-local", "vol-1", 8192)  # by the guest's QEMU
    assert len(exports.copied) == 1 and (tmp_path / "snap-1.raw").exists()
    assert host.detach("i-local", "vol-1", force=False)
    assert exports.released == ["vol-1"]
