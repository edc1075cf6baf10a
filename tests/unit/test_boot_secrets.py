"""Encrypted volumes at boot: QEMU gets each passphrase from a 0600 file (never on its
command line), the files exist only while QEMU starts, and the node's record on disk
holds no passphrase."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest

from karri.node import qemu
from karri.node.errors import NodeError
from karri.node.secretfiles import secret_files, with_keys
from karri.node.spec import Attachment, FileTarget, InstanceSpec, RbdTarget, VolumeDisk
from karri.node.store import RECORD, InstanceRecord

PASS = "correct horse battery staple"


def spec(secret: str | None = PASS) -> InstanceSpec:
    return InstanceSpec(
        instance_id="i-0123abcd",
        vcpus=1,
        memory_mib=128,
        root=VolumeDisk(
            "vol-root0001", FileTarget(Path("/v/vol-root0001.qcow2")), "qcow2-luks", secret=secret
        ),
        volumes=(
            VolumeDisk("vol-plain001", FileTarget(Path("/v/vol-plain001.raw"))),
            # a legacy raw LUKS volume
            VolumeDisk(
                "vol-data0001", FileTarget(Path("/v/vol-data0001.luks")), "luks", secret=PASS + "2"
            ),
        ),
        mac="d0:0d:00:00:00:01",
        private_ip="172.31.0.5",
    )


def test_command_names_secret_files_not_passphrases(tmp_path: Path) -> None:
    cmd = qemu.command("qemu", spec(), "tcg", qemu.InstanceFiles(tmp_path), "tap0")
    assert not any(PASS in arg for arg in cmd)
    objects = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-object"]
    assert objects == [
        "secret,id=sec-root,file=secrets/sec-root,format=raw",
        "secret,id=sec-vol-data0001,file=secrets/sec-vol-data0001,format=raw",
    ]
    blockdevs = [json.loads(cmd[i + 1]) for i, arg in enumerate(cmd) if arg == "-blockdev"]
    root, plain, legacy = blockdevs
    assert (root["driver"], root["encrypt"], root["backing"]) == (
        "qcow2",
        {"format": "luks", "key-secret": "sec-root"},
        None,  # never a backing file, whatever the qcow2 header says
    )
    assert (plain["driver"], "key-secret" in plain, "encrypt" in plain) == ("raw", False, False)
    assert (legacy["driver"], legacy["key-secret"]) == ("luks", "sec-vol-data0001")
    assert PASS not in repr(spec())


def test_an_encrypted_rbd_volume_is_qcow2_over_rbd_without_a_write_cache(
    tmp_path: Path,
) -> None:
    """An encrypted volume on Ceph RBD (root or not): qcow2 with LUKS over QEMU's rbd
    driver, and no write cache in the guest's disk (each write is durable when done, so an
    RBD snapshot under the guest holds it); plain RBD and encrypted file volumes keep
    theirs."""
    ceph = Path("/etc/ceph/ceph.conf")
    encrypted = RbdTarget("karri-volumes", "vol-root0001", "karri", ceph)
    on_rbd = dataclasses.replace(
        spec(),
        root=VolumeDisk("vol-root0001", encrypted, "qcow2-luks", secret=PASS),
        volumes=(
            VolumeDisk("vol-plain001", RbdTarget("karri-volumes", "vol-plain001", "karri", ceph)),
            VolumeDisk(
                "vol-data0001",
                RbdTarget("karri-volumes", "vol-data0001", "karri", ceph),
                "qcow2-luks",
                secret=PASS,
            ),
        ),
    )
    cmd = qemu.command("qemu", on_rbd, "tcg", qemu.InstanceFiles(tmp_path), "tap0")
    blockdevs = [json.loads(cmd[i + 1]) for i, arg in enumerate(cmd) if arg == "-blockdev"]
    devices = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-device"]
    devices = [json.loads(d) for d in devices if "virtio-blk-pci" in d]
    root, plain, data = blockdevs
    assert (root["driver"], root["encrypt"]["key-secret"], root["file"]["driver"]) == (
        "qcow2",
        "sec-root",
        "rbd",
    )
    assert (data["driver"], data["file"]["image"]) == ("qcow2", "vol-data0001")
    assert (plain["driver"], plain["file"]["driver"]) == ("raw", "rbd")
    assert [d.get("write-cache") for d in devices] == ["off", None, "off"]
    assert devices[0]["serial"] == "vol-root0001" and devices[0]["bootindex"] == 0
    on_files = qemu.command("qemu", spec(), "tcg", qemu.InstanceFiles(tmp_path), "tap0")
    assert not any("write-cache" in arg for arg in on_files)


def test_an_encrypted_disk_without_its_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NodeError):
        qemu.boot_secrets(spec(secret=None))


def test_secret_files_exist_only_in_the_block(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    with secret_files(directory, qemu.boot_secrets(spec())):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        root = directory / "sec-root"
        assert stat.S_IMODE(root.stat().st_mode) == 0o600
        assert root.read_text() == PASS
    assert not directory.exists()
    with pytest.raises(RuntimeError), secret_files(directory, [("sec-x", PASS)]):
        raise RuntimeError("QEMU did not start")
    assert not directory.exists()


def test_the_record_keeps_no_passphrase(tmp_path: Path) -> None:
    record = InstanceRecord(spec(), "tcg", "tap0", 0.0)
    record.volumes = {
        "vol-data0001": Attachment(
            "vol-data0001", FileTarget(Path("/v/d.luks")), "luks", secret=PASS
        )
    }
    record.save(tmp_path)
    assert PASS not in (tmp_path / RECORD).read_text()
    loaded = InstanceRecord.load(tmp_path)
    assert loaded.spec.root == spec().root  # the same disk, its passphrase not kept
    assert loaded.volumes["vol-data0001"].secret is None


def test_a_relaunch_gets_the_keys_its_record_lost() -> None:
    lost = dataclasses.replace(
        spec(secret=None),
        volumes=tuple(dataclasses.replace(v, secret=None) for v in spec().volumes),
    )
    keys = {"vol-root0001": "k-root", "vol-data0001": "k-data"}
    keyed = with_keys(lost, keys.get)
    assert qemu.boot_secrets(keyed) == [("sec-root", "k-root"), ("sec-vol-data0001", "k-data")]
    assert keyed.volumes[0].secret is None  # a plain volume needs none
    assert with_keys(spec(), lambda _v: "other").root.secret == PASS  # a key held is kept
