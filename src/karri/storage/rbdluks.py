"""Encrypted volumes on Ceph RBD: the image holds an encrypted qcow2 file, byte for byte
the file the local backend keeps (``karri.storage.luks``), so QEMU opens it with its qcow2
driver (LUKS, the account's passphrase as a secret object) over its rbd driver, and a
snapshot's stream is the file's ciphertext as on files: restores, copies and moves between
backends read the same streams.

The image's metadata says that it is encrypted (``ENCRYPTED_KEY``), never what it holds (a
guest may write any header into a plain volume). A new encrypted volume's file is made by
``qemu-img`` in a private temporary directory (its LUKS header and tables: a few MiB of
ciphertext and metadata, never plaintext) and copied into the image; whatever writes into
it afterwards is QEMU through the passphrase: ``qemu-img resize`` to grow it,
``qemu-storage-daemon`` to encrypt a plain snapshot's blocks into it (``nbdwrite``), a
guest's QEMU. QEMU's rbd driver grows the image as the qcow2 file grows (an image is thin:
its size is the file's length, not the volume's)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from karri.storage import luks

ENCRYPTED_KEY = "karri.format"  # an encrypted volume's image: luks.FORMAT


class CephPlace(Protocol):
    """Where the images are (``rbd.RbdPool``)."""

    conf: str | None
    user: str
    pool: str


def protocol_node(ceph: CephPlace, image: str) -> dict[str, object]:
    """QEMU's ``blockdev`` options opening the image ``image`` (by name) as the cloud's
    Ceph client (``qemu-img``, ``qemu-storage-daemon``)."""
    node: dict[str, object] = {"driver": "rbd", "pool": ceph.pool, "image": image}
    return node | {"user": ceph.user} | ({"conf": ceph.conf} if ceph.conf else {})


def is_encrypted(image: Any) -> bool:
    """Whether the open image is an encrypted volume's."""
    return ENCRYPTED_KEY in dict(image.metadata_list())


def mark_encrypted(image: Any) -> None:
    image.metadata_set(ENCRYPTED_KEY, luks.FORMAT)


def virtual_size(image: Any) -> int:
    """The volume's size, from the qcow2 header in the open image (``luks.LuksError`` if
    it is not an encrypted qcow2 file karri makes)."""
    return luks.header_size(image.read(0, luks.HEADER))


@contextlib.contextmanager
def new_file(size: int, passphrase: bytes) -> Iterator[Path]:
    """A new encrypted qcow2 file of virtual size ``size``, in a private (0700) temporary
    directory removed at the end of the block."""
    with tempfile.TemporaryDirectory(prefix="karri-luks-") as private:
        path = Path(private) / "volume.qcow2"
        luks.create(path, size, passphrase)
        yield path
