"""The Storage Controller's interface: what the cloud and the nodes may ask of it.

A backend keeps volumes (block devices of a fixed size) and *checkpoints*: point-in-time
copies of a volume that a snapshot is read from while the volume goes on changing. The
snapshot bytes themselves live in Walrus; the backend only produces and consumes the
snapshot stream (``karri.storage.sparse``). Two backends implement it: local files
(``storage.local``) and Ceph RBD (``storage.rbd``: QEMU opens RBD images natively, RBD
snapshots are checkpoints).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from karri.storage.sparse import SparseStream

GIB = 1 << 30
VOLUME_ID = re.compile(r"^vol-[0-9a-f]{8,17}$")
SNAPSHOT_ID = re.compile(r"^snap-[0-9a-f]{8,17}$")


class StorageError(Exception):
    """A backend could not do what it was asked (missing volume, bad stream, I/O error)."""


class StorageUnavailable(StorageError):
    """The backend's storage cannot be reached (a Ceph cluster down): try again later."""


@dataclass(frozen=True)
class VolumeTarget:
    """How a hypervisor opens a volume: QEMU ``blockdev-add`` terms."""

    volume_id: str
    driver: str  # the protocol: "file", or "rbd" (a Ceph RBD image)
    path: str  # the file for "file"; "POOL/IMAGE" for "rbd"
    # "raw"; encrypted at rest, opened with the account's passphrase: "qcow2-luks" (qcow2
    # with LUKS encryption), or "luks" (raw LUKS, volumes made before; ``storage.luks``)
    format: str
    size_bytes: int  # the volume's size as the guest sees it (not the file's)
    ceph_conf: str | None = None  # "rbd": the Ceph configuration file (None: the default)
    ceph_user: str | None = None  # "rbd": the client's user name (without ``client.``)


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class StorageController(Protocol):
    """Volumes and checkpoints, by id. Every call blocks; callers run it off the loop.

    ``keeps_checkpoints``: a checkpoint stays once its snapshot is in Walrus (until
    ``drop_checkpoint``), so that volumes are cloned from it (``clone_checkpoint``);
    ``live_checkpoints``: ``checkpoint`` is consistent while a guest writes to the volume
    (no copy through the hypervisor is needed)."""

    keeps_checkpoints: bool
    live_checkpoints: bool

    def create(self, volume_id: str, size_gib: int, passphrase: bytes | None = None) -> None:
        """A new zero-filled volume (replacing the leftover of an unfinished create);
        with a ``passphrase``, encrypted at rest (its target's format is ``qcow2-luks``)."""

    def create_from(
        self,
        volume_id: str,
        stream: Readable | BinaryIO,
        size_gib: int,
        progress: Callable[[int], None] | None = None,
        *,
        encrypted: bool = False,
        passphrase: bytes | None = None,
    ) -> None:
        """A new volume holding a snapshot stream's bytes, grown to ``size_gib``
        (``encrypted``: the stream is an encrypted volume's, which it stays; else with a
        ``passphrase``, the plain stream is encrypted into a new encrypted volume). An
        encrypted volume needs its ``passphrase`` to grow. Durable when it returns; on
        failure nothing is left behind."""

    def clone_checkpoint(
        self,
        snapshot_id: str,
        volume_id: str,
        size_gib: int,
        *,
        flatten: bool,
        passphrase: bytes | None = None,
    ) -> bool:
        """A new volume sharing a kept checkpoint's blocks (copy-on-write), grown to
        ``size_gib``; with ``flatten``, made independent of it in the background; with a
        ``passphrase``, an encrypted volume from an encrypted one's checkpoint (its
        ciphertext shared, grown through the passphrase). False (nothing done) when the
        backend cannot: the caller restores the snapshot stream."""

    def delete(self, volume_id: str) -> None:
        """Remove a volume; removing one that is gone succeeds."""

    def exists(self, volume_id: str) -> bool: ...

    def target(self, volume_id: str) -> VolumeTarget:
        """Where the node opens the volume (``StorageError`` if it does not exist)."""

    def resize(self, volume_id: str, size_gib: int, passphrase: bytes | None = None) -> None:
        """Grow a volume (never shrinks); an encrypted one with its ``passphrase``."""

    def checkpoint(self, volume_id: str, snapshot_id: str) -> None:
        """A point-in-time copy of a volume nobody writes to, for ``snapshot_id``."""

    def checkpoint_file(self, snapshot_id: str, path: Path) -> None:
        """A checkpoint holding a raw disk image from the cloud's host (image import)."""

    def checkpoint_target(
        self, snapshot_id: str, size_gib: int, passphrase: bytes | None = None
    ) -> VolumeTarget:
        """An empty checkpoint for a hypervisor to fill (a backup job of a volume in use;
        with a ``passphrase``, an encrypted file: an encrypted volume's copy stays so);
        ``seal_checkpoint`` once it is complete."""

    def encrypted_checkpoint(
        self,
        snapshot_id: str,
        stream: Readable | BinaryIO,
        passphrase: bytes,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """A sealed checkpoint holding a plain snapshot stream's blocks in an encrypted file
        (an encrypted copy of an unencrypted snapshot); on failure nothing is left."""

    def seal_checkpoint(self, snapshot_id: str) -> None: ...

    def has_checkpoint(self, snapshot_id: str) -> bool:
        """True when a complete, trustworthy checkpoint exists."""

    def export(self, snapshot_id: str, since: str | None = None) -> SparseStream:
        """The snapshot stream of a checkpoint; with ``since`` (an earlier kept checkpoint
        of the same volume), only what changed since it where the backend can tell (the
        stream's ``since`` is then set: a diff), else the whole checkpoint."""

    def drop_checkpoint(self, snapshot_id: str) -> None: ...

    def volume_ids(self) -> set[str]:
        """Every volume the backend holds."""

    def volume_stream(self, volume_id: str) -> SparseStream:
        """A volume's stored bytes as a snapshot stream, read while nobody writes to it
        (``karri storage migrate``): an encrypted one's are its file, ciphertext (restored
        with ``create_from(encrypted=True)``; its ``target`` tells which)."""

    def checkpoint_from(
        self,
        snapshot_id: str,
        stream: Readable | BinaryIO,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """A sealed checkpoint holding a plain snapshot stream's bytes (a checkpoint moved
        from another backend); on failure nothing is left."""

    def checkpoint_ids(self) -> set[str]:
        """Every snapshot that has a checkpoint (complete or not)."""

    def sweep(self) -> int:
        """Remove what a crash left behind (temporary files); returns how many."""


def check_volume_id(volume_id: str) -> str:
    if not VOLUME_ID.match(volume_id):
        raise StorageError(f"not a volume id: {volume_id!r}")
    return volume_id


def check_snapshot_id(snapshot_id: str) -> str:
    if not SNAPSHOT_ID.match(snapshot_id):
        raise StorageError(f"not a snapshot id: {snapshot_id!r}")
    return snapshot_id
