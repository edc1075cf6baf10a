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
    "VolumeTarget",
    "encode",
    "open_storage",
]


def open_storage(data_dir: Path) -> StorageController:
    """The storage of a single-host cloud: sparse raw files in ``DATA_DIR/volumes``."""
    return LocalFileStorage(data_dir / "volumes")
