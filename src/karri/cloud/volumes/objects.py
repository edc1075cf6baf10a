"""Snapshots as Walrus objects: one object per snapshot in a bucket the cloud owns.

The object holds the snapshot stream (``karri.storage.sparse``): the volume's data
extents, never its holes. Eucalyptus's Storage Controller kept snapshots in Walrus the
same way, so they are ordinary objects that the system account can list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from karri.errors import CloudError
from karri.walrus import SYSTEM_ACCOUNT, ObjectReader, Walrus

BUCKET = "karri-ebs-snapshots"
FORMAT = "karri-sparse-1"


class SequentialReader:
    """``read(n)`` from the start of an open object to its end."""

    def __init__(self, reader: ObjectReader) -> None:
        self._reader = reader
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        data = self._reader.read(size, self._offset)
        self._offset += len(data)
        return data


class SnapshotObjects:
    def __init__(self, walrus: Walrus) -> None:
        self.walrus = walrus

    def ensure_bucket(self) -> None:
        self.walrus.ensure_bucket(BUCKET, SYSTEM_ACCOUNT)

    @staticmethod
    def key(snapshot_id: str) -> str:
        return f"{snapshot_id}.snap"

    def put(self, snapshot_id: str, chunks: Iterable[bytes], meta: dict[str, str]) -> int:
        """Store a snapshot stream durably; returns the bytes stored."""
        info = self.walrus.put_object(
            BUCKET,
            self.key(snapshot_id),
            chunks,
            owner=SYSTEM_ACCOUNT,
            headers={"content-type": "application/octet-stream"},
            meta={"format": FORMAT, **meta},
        )
        return info.size

    @contextmanager
    def open(self, snapshot_id: str) -> Iterator[tuple[SequentialReader, int]]:
        """The snapshot stream and its length."""
        try:
            reader = self.walrus.open_object(BUCKET, self.key(snapshot_id))
        except CloudError as error:
            raise LookupError(f"snapshot {snapshot_id} has no object: {error.code}") from error
        with reader:
            yield SequentialReader(reader), reader.info.size

    def delete(self, snapshot_id: str) -> None:
        self.walrus.delete_object(BUCKET, self.key(snapshot_id))
