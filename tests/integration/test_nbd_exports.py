"""A volume exported over NBD with TLS for a node on another host: read through the very
block nodes the node would open (``node.disks.blockdev``), it equals the volume; only the
node it is for, with its certificate from the cloud's node CA, gets in. An encrypted
volume's qcow2 grows inside its export (the file is lengthened to hold every cluster), and
a point-in-time copy of an exported volume is taken by its daemon (``exportjobs``)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from karri.cloud.nodes.ca import NodeCA
from karri.cloud.volumes.targets import VolumeExports
from karri.node import NbdTarget, membership
from karri.node.disks import NBD_TLS, blockdev, nbd_tls_object, node_name, secret_id
from karri.node.qmp import QMPError
from karri.pki import csr_for, key_pem, new_key, write_file
from karri.storage import LocalFileStorage, StorageError, VolumeTarget, luks
from tests.integration.bare_qemu import bare_qemu
from tests.qemu_keys import opened, run_keyed

VOLUME = "vol-0123abcd"
SECURE = "vol-0badf00d"
FRESH = "vol-0f0f0f0f"  # encrypted, never written: its file holds its metadata only
PASSPHRASE = "correct horse battery staple"
SIZE = 4 << 20


def client_files(directory: Path, ca: NodeCA, node: str, trusted: bytes | None = None) -> Path:
    """A node's TLS files as a joined node keeps them (``membership.nbd_tls_files``)."""
    directory.mkdir(parents=True)
    key = new_key()
    cert, _serial = ca.issue(csr_for(key, node), node)
    write_file(directory / membership.CA, trusted or ca.pem, 0o644)
    write_file(directory / membership.CERT, cert, 0o644)
    write_file(directory / membership.KEY, key_pem(key), 0o600)
    return membership.nbd_tls_files(directory)


def read_all(tls: Path, target: NbdTarget, fmt: str, out: Path, name: str = "vol") -> None:
    """``qemu-img convert`` of the disk the node would open, to a raw file."""
    image = node_image(tls, target, fmt, name, read_only=True)
    subprocess.run(
        ["qemu-img", "convert", *image[:-1], "-O", "raw", image[-1], str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_over(tls: Path, target: NbdTarget, fmt: str, commands: list[str]) -> None:
    """``qemu-io`` on the disk the node would open, running ``commands`` (writes)."""
    image = node_image(tls, target, fmt, "vol", read_only=False)
    subprocess.run(
        ["qemu-io", *image[:-1], *(arg for c in commands for arg in ("-c", c)), image[-1]],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )


def node_image(tls: Path, target: NbdTarget, fmt: str, name: str, read_only: bool) -> list[str]:
    """QEMU tools' ``--object`` options and the ``json:`` image of the node's disk."""
    objects = ["--object", f"tls-creds-x509,id={NBD_TLS},dir={tls},endpoint=client"]
    if fmt == "qcow2-luks":
        objects += ["--object", f"secret,id={secret_id(name)},data={PASSPHRASE}"]
    options = blockdev(name, target, fmt, read_only=read_only)  # type: ignore[arg-type]
    options.pop("node-name")
    return [*objects, f"json:{json.dumps(options)}"]


def plaintext(path: Path, out: Path) -> bytes:
    """The plaintext of the encrypted qcow2 file ``path``, read on this host."""
    command = ["qemu-img", "convert", "--image-opts", opened(path), "-O", "raw", str(out)]
    run_keyed(command, PASSPHRASE.encode())
    return out.read_bytes()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, NodeCA, VolumeExports]]:
    tmp = tmp_path_factory.mktemp("nbd")
    volumes = tmp / "volumes"
    volumes.mkdir()
    with open(volumes / f"{VOLUME}.raw", "wb") as f:  # a small plain volume, partly written
        f.truncate(SIZE)
        f.write(os.urandom(64 << 10))
        f.seek(3 << 20)
        f.write(b"karri volume content " * 1000)
    plain = tmp / "plaintext.raw"
    with open(plain, "wb") as f:
        f.truncate(SIZE)
        f.write(os.urandom(SIZE // 2))
    secure = volumes / f"{SECURE}.qcow2"
    encrypt = "encrypt.format=luks,encrypt.key-secret=k"
    run_keyed(
        ["qemu-img", "convert", "-O", "qcow2", "-o", encrypt, str(plain), str(secure)],
        PASSPHRASE.encode(),
    )
    luks.create(volumes / f"{FRESH}.qcow2", SIZE, PASSPHRASE.encode())
    ca = NodeCA(tmp / "cloud")
    exports = VolumeExports(LocalFileStorage(volumes), ca, tmp / "exports", "127.0.0.1")
    yield tmp, ca, exports
    for volume_id in (VOLUME, SECURE, FRESH):
        exports.release(volume_id)


def test_the_cloud_node_opens_the_file(cloud) -> None:
    tmp, _ca, exports = cloud
    assert exports.target(VOLUME).path == tmp / "volumes" / f"{VOLUME}.raw"  # type: ignore[union-attr]


def test_a_plain_volume_reads_the_same_over_nbd_with_tls(cloud, tmp_path: Path) -> None:
    tmp, ca, exports = cloud
    target = exports.target(VOLUME, "node-a")
    assert isinstance(target, NbdTarget) and target.url.startswith("nbd://127.0.0.1:")
    assert target.url.endswith(f"/{VOLUME}") and target.tls_hostname == "karri-cloud"
    assert exports.target(VOLUME, "node-a") == target  # the running export is kept
    out = tmp_path / "read.raw"
    read_all(client_files(tmp_path / "node-a", ca, "node-a"), target, "raw", out)
    assert out.read_bytes() == (tmp / "volumes" / f"{VOLUME}.raw").read_bytes()


def test_an_encrypted_volume_leaves_as_its_file_and_opens_on_the_node(
    cloud, tmp_path: Path
) -> None:
    """The export is the qcow2 file's bytes, still encrypted; the node's qcow2 node with
    the passphrase over the nbd protocol node reads the plaintext."""
    tmp, ca, exports = cloud
    target = exports.target(SECURE, "node-a")
    tls = client_files(tmp_path / "node-a", ca, "node-a")
    out = tmp_path / "read.raw"
    read_all(tls, target, "qcow2-luks", out)
    assert out.read_bytes() == (tmp / "plaintext.raw").read_bytes()
    cipher = tmp_path / "cipher.raw"
    read_all(tls, target, "raw", cipher)  # the bytes that cross: the file's, no plaintext
    assert cipher.read_bytes() == (tmp / "volumes" / f"{SECURE}.qcow2").read_bytes()
    assert (tmp / "plaintext.raw").read_bytes()[:4096] not in cipher.read_bytes()


def test_no_valid_certificate_of_that_node_gets_in(cloud, tmp_path: Path) -> None:
    _tmp, ca, exports = cloud
    target = exports.target(VOLUME, "node-a")
    stranger = NodeCA(tmp_path / "stranger")
    both = ca.pem + stranger.pem  # so the client itself accepts its foreign certificate
    no_cert = tmp_path / "no-cert"
    no_cert.mkdir()
    shutil.copyfile(ca.cert_path, no_cert / "ca-cert.pem")
    refused = {
        "another node": client_files(tmp_path / "node-b", ca, "node-b"),
        "another CA": client_files(tmp_path / "forged", stranger, "node-a", both),
        "no certificate": no_cert,
    }
    for why, tls in refused.items():
        out = tmp_path / f"{why}.raw"
        with pytest.raises(subprocess.CalledProcessError):
            read_all(tls, target, "raw", out)
        assert not out.exists() or out.stat().st_size == 0, why


def test_release_ends_the_export(cloud) -> None:
    _tmp, _ca, exports = cloud
    exports.target(VOLUME, "node-a")
    pid = int((exports.exports.run_dir / f"{VOLUME}.pid").read_text())
    exports.release(VOLUME)
    assert exports.exports.running(VOLUME) is None
    state = Path(f"/proc/{pid}/stat")  # gone, or a zombie this process has yet to reap
    assert not state.exists() or state.read_text().split(") ", 1)[1][0] == "Z"


def test_a_running_qemu_plugs_the_export_as_the_node_does(cloud, tmp_path: Path) -> None:
    """QMP ``object-add`` of the node's TLS credentials, then ``blockdev-add`` of the
    node's block nodes (what ``Hotplug.attach`` sends): the NBD client connects at open,
    so another node's certificate is refused there."""
    _tmp, ca, exports = cloud
    target = exports.target(VOLUME, "node-a")
    node_a = client_files(tmp_path / "node-a", ca, "node-a")
    node_b = client_files(tmp_path / "node-b", ca, "node-b")

    async def plug() -> None:
        async with bare_qemu(tmp_path) as qmp:
            assert not await qmp.has_object(NBD_TLS)
            await qmp.object_add(nbd_tls_object(node_b))
            assert await qmp.has_object(NBD_TLS)
            with pytest.raises(QMPError):
                await qmp.blockdev_add(blockdev(VOLUME, target, "raw"))
            await qmp.object_del(NBD_TLS)
            await qmp.object_add(nbd_tls_object(node_a))
            await qmp.blockdev_add(blockdev(VOLUME, target, "raw"))
            assert node_name(VOLUME) in await qmp.query_named_block_nodes()

    asyncio.run(plug())


def test_an_encrypted_volume_grows_inside_its_export(cloud, tmp_path: Path) -> None:
    """qcow2 allocates a cluster at each first write: the file is lengthened (sparse)
    before it is exported, so every cluster of the volume fits in the fixed-size export."""
    tmp, ca, exports = cloud
    file = tmp / "volumes" / f"{FRESH}.qcow2"
    before = file.stat().st_size
    target = exports.target(FRESH, "node-a")
    assert file.stat().st_size == luks.container_size(file) > SIZE > before
    assert file.stat().st_blocks * 512 < SIZE  # sparse: no space taken
    tls = client_files(tmp_path / "node-a", ca, "node-a")
    write_over(tls, target, "qcow2-luks", [f"write -P 0xab 0 {SIZE}"])  # every cluster
    exports.release(FRESH)
    assert plaintext(file, tmp_path / "plain.raw") == b"\xab" * SIZE
    assert luks.virtual_size(file) == SIZE


def test_the_daemon_copies_an_exported_volume(cloud, tmp_path: Path) -> None:
    """``backup``: a plain volume's copy is its bytes as written through the export."""
    tmp, ca, exports = cloud
    target = exports.target(VOLUME, "node-a")
    tls = client_files(tmp_path / "node-a", ca, "node-a")
    write_over(tls, target, "raw", ["write -P 0x5a 1048576 65536"])
    copy = tmp_path / "snap-0123abcd.raw"
    copy.write_bytes(b"")
    checkpoint = VolumeTarget("snap-0123abcd", "file", str(copy), "raw", SIZE)
    exports.backup(VOLUME, checkpoint, "snap-0123abcd")
    assert copy.read_bytes() == (tmp / "volumes" / f"{VOLUME}.raw").read_bytes()
    assert copy.read_bytes()[1 << 20 : (1 << 20) + 65536] == b"\x5a" * 65536
    exports.backup(VOLUME, checkpoint, "snap-0123abcd")  # again: its node was let go


def test_an_encrypted_volumes_copy_is_its_container(cloud, tmp_path: Path) -> None:
    """The daemon sees ciphertext only: the copy is the qcow2 file, which opens with the
    volume's passphrase (an encrypted checkpoint made as ``checkpoint_target`` makes it
    is replaced)."""
    tmp, ca, exports = cloud
    target = exports.target(SECURE, "node-a")
    tls = client_files(tmp_path / "node-a", ca, "node-a")
    write_over(tls, target, "qcow2-luks", ["write -P 0x77 0 65536"])
    storage = LocalFileStorage(tmp_path / "storage")
    checkpoint = storage.checkpoint_target("snap-0badf00d", 1, PASSPHRASE.encode())
    exports.backup(SECURE, checkpoint, "snap-0badf00d")
    file = tmp / "volumes" / f"{SECURE}.qcow2"
    copy = Path(checkpoint.path)
    assert copy.read_bytes() == file.read_bytes()
    expected = b"\x77" * 65536 + (tmp / "plaintext.raw").read_bytes()[65536:]
    assert plaintext(copy, tmp_path / "copy.raw") == expected


def test_no_copy_without_an_export(cloud, tmp_path: Path) -> None:
    _tmp, _ca, exports = cloud
    exports.release(VOLUME)
    checkpoint = VolumeTarget("snap-0123abcd", "file", str(tmp_path / "c.raw"), "raw", SIZE)
    with pytest.raises(StorageError):
        exports.backup(VOLUME, checkpoint, "snap-0123abcd")


def test_a_grown_volume_is_exported_anew_at_its_new_size(cloud, tmp_path: Path) -> None:
    """An export's size is fixed: a volume grown since (its instance stopped, its exports
    ended) is exported anew, an encrypted one lengthened again for its new clusters."""
    tmp, ca, exports = cloud
    tls = client_files(tmp_path / "node-a", ca, "node-a")
    plain, secure = "vol-0b0b0b0b", "vol-0a0a0a0a"
    raw = tmp / "volumes" / f"{plain}.raw"
    raw.write_bytes(b"")
    os.truncate(raw, SIZE)
    first = exports.target(plain, "node-a")
    os.truncate(raw, 2 * SIZE)  # LocalFileStorage.resize of a plain volume
    grown = exports.target(plain, "node-a")
    assert grown != first and exports.exports.running(plain).size == 2 * SIZE  # type: ignore[union-attr]
    write_over(tls, grown, "raw", [f"write -P 0x33 {SIZE} {SIZE}"])  # its new half
    assert raw.read_bytes()[SIZE:] == b"\x33" * SIZE

    file = tmp / "volumes" / f"{secure}.qcow2"
    luks.create(file, SIZE, PASSPHRASE.encode())
    exports.target(secure, "node-a")
    exports.release(secure)  # the instance stopped
    luks.grow(file, 4 * SIZE, PASSPHRASE.encode())
    target = exports.target(secure, "node-a")
    assert file.stat().st_size == luks.container_size(file) > 4 * SIZE
    write_over(tls, target, "qcow2-luks", [f"write -P 0x44 0 {4 * SIZE}"])
    for volume_id in (plain, secure):
        exports.release(volume_id)
    assert plaintext(file, tmp_path / "plain.raw") == b"\x44" * (4 * SIZE)
