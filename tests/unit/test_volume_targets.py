"""The contract's locators on the node: NBD targets in QEMU's terms, and what a node's
record keeps of targets and image references (records from before them still load)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karri.node import (
    FileTarget,
    ImageRef,
    ImageRoot,
    InstanceSpec,
    KernelBoot,
    NbdTarget,
    NodeError,
    VolumeDisk,
    qemu,
)
from karri.node.disks import NBD_TLS, blockdev, write_through
from karri.node.spec import Attachment
from karri.node.store import RECORD, InstanceRecord

NBD = NbdTarget("nbd://10.0.0.5:10809/vol-0badf00d", "karri-cloud")
REF = ImageRef("emi-12345678", 3, "a" * 64, "http://127.0.0.1:8774/x?X-Amz-Signature=s", "b/x")


def spec(**changes) -> InstanceSpec:
    fields = dict(
        instance_id="i-0123abcd",
        vcpus=1,
        memory_mib=128,
        root=ImageRoot(REF),
        volumes=(VolumeDisk("vol-0badf00d", NBD, "qcow2-luks", secret="pass"),),
        mac="d0:0d:00:00:00:01",
        private_ip="172.31.0.5",
    )
    return InstanceSpec(**(fields | changes))


def test_an_nbd_volume_is_opened_over_tls_with_its_format_on_top() -> None:
    options = blockdev("vol-0badf00d", NBD, "qcow2-luks")
    assert options["driver"] == "qcow2" and options["encrypt"]["format"] == "luks"
    assert options["file"] == {
        "driver": "nbd",
        "server": {"type": "inet", "host": "10.0.0.5", "port": "10809"},
        "export": "vol-0badf00d",
        "tls-creds": NBD_TLS,
        "tls-hostname": "karri-cloud",
        "discard": "unmap",
    }
    assert blockdev("v", FileTarget(Path("/v.raw")), "raw")["file"]["filename"] == "/v.raw"
    with pytest.raises(NodeError):
        blockdev("v", NbdTarget("http://10.0.0.5/v", "karri-cloud"), "raw")


def test_an_encrypted_nbd_volume_has_no_write_cache() -> None:
    """Its snapshots are copied by its export's daemon, which sees what QEMU wrote: qcow2's
    tables with each write (as on RBD), so a snapshot holds every write the guest saw done;
    a plain volume over NBD has no tables to hold back and keeps its cache."""
    assert write_through(NBD, "qcow2-luks")
    assert not write_through(NBD, "raw")
    assert not write_through(FileTarget(Path("/v.qcow2")), "qcow2-luks")


def test_the_command_has_the_tls_credentials_only_with_an_nbd_volume(tmp_path: Path) -> None:
    files = qemu.InstanceFiles(tmp_path)
    cmd = qemu.command("qemu", spec(), "tcg", files, "tap0", nbd_tls=Path("/node/tls"))
    objects = [
        json.loads(cmd[i + 1]) for i, a in enumerate(cmd) if a == "-object" and "{" in cmd[i + 1]
    ]
    assert objects == [
        {
            "qom-type": "tls-creds-x509",
            "id": NBD_TLS,
            "dir": "/node/tls",
            "endpoint": "client",
            "verify-peer": True,
        }
    ]
    with pytest.raises(NodeError, match="nbd_tls"):
        qemu.command("qemu", spec(), "tcg", files, "tap0")
    plain = spec(volumes=(VolumeDisk("vol-1", FileTarget(tmp_path / "v")),))
    assert "tls-creds-x509" not in " ".join(qemu.command("qemu", plain, "tcg", files, "tap0"))


def test_a_kernel_boots_from_the_image_cache(tmp_path: Path) -> None:
    booted = spec(kernel=KernelBoot(REF, None, "console=ttyS0"), volumes=())
    cmd = qemu.command(
        "qemu",
        booted,
        "tcg",
        qemu.InstanceFiles(tmp_path),
        "tap0",
        images=lambda r: Path(r.image_id),
    )
    assert cmd[cmd.index("-kernel") + 1] == "emi-12345678"


def test_records_keep_targets_and_references_but_no_url(tmp_path: Path) -> None:
    record = InstanceRecord(spec(kernel=KernelBoot(REF, REF)), "tcg", "tap0", 0.0)
    record.volumes = {"vol-0badf00d": Attachment("vol-0badf00d", NBD, "qcow2-luks")}
    record.save(tmp_path)
    assert "X-Amz-Signature" not in (tmp_path / RECORD).read_text()
    loaded = InstanceRecord.load(tmp_path)
    assert loaded.spec.volumes[0].target == NBD and loaded.volumes["vol-0badf00d"].target == NBD
    assert loaded.spec.root == ImageRoot(ImageRef(REF.image_id, 3, REF.sha256, "", REF.blob))
    assert loaded.spec.kernel and loaded.spec.kernel.ramdisk == loaded.spec.root.image


def test_records_from_before_locators_load(tmp_path: Path) -> None:
    cached = tmp_path / "node" / "images" / "emi-12345678" / "image"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"img")
    record = InstanceRecord(spec(volumes=()), "tcg", "tap0", 0.0)
    record.volumes = {"vol-1": Attachment("vol-1", FileTarget(tmp_path / "v"), "raw")}
    record.save(tmp_path)
    data = json.loads((tmp_path / RECORD).read_text())
    data["spec"]["root"]["image"] = str(cached)  # as records named the cache's file
    attachment = data["volumes"][0]
    attachment["path"] = attachment.pop("target")["path"]
    (tmp_path / RECORD).write_text(json.dumps(data))
    loaded = InstanceRecord.load(tmp_path)
    assert loaded.spec.root == ImageRoot(ImageRef("emi-12345678", 3, "", ""))
    assert loaded.volumes["vol-1"].target == FileTarget(tmp_path / "v")
