"""The Storage Controller (Eucalyptus's SC): volumes, and the checkpoints snapshots are
read from. The cloud and the nodes reach it through ``StorageController``; it imports
neither ``karri.cloud`` nor ``karri.api``, so it can move to a host of its own.
"""

from __future__ import annotations

from pathlib import Path

from karri.storage.interface import (
    GIB,
    StorageController,
    StorageError,
    StorageUnavailable,
    VolumeTarget,
)
from karri.storage.local import LocalFileStorage
from karri.storage.sparse import CorruptStream, SparseStream, encode

__all__ = [
    "GIB",
    "CorruptStream",
    "LocalFileStorage",
    "SparseStream",
    "StorageController",
    "StorageError",
    "StorageUnavailable",
    "VolumeTarget",
    "encode",
    "open_storage",
]


def open_storage(
    data_dir: Path,
    backend: str = "files",
    ceph_conf: str | None = None,
    ceph_user: str = "admin",
    rbd_pool: str = "karri-volumes",
) -> StorageController:
    """The cloud's volumes: sparse raw files in ``DATA_DIR/volumes`` (``files``), or RBD
    images in a Ceph pool (``rbd``)."""
    if backend == "rbd":
        from karri.storage.rbd import RbdPool, RbdStorage

        return RbdStorage(RbdPool(ceph_conf, ceph_user, rbd_pool))
    if backend != "files":
        raise ValueError(f"unknown EBS backend {backend!r}")
    return LocalFileStorage(data_dir / "volumes")
