"""Snapshots as Walrus objects: one object per snapshot in a bucket the cloud owns.

The object holds the snapshot stream (``karri.storage.sparse``): the volume's data
extents, never its holes. Eucalyptus's Storage Controller kept snapshots in Walrus the
same way, so they are ordinary objects that the system account can list. An incremental
export's object is a diff: its metadata names its base (``BASE``), the ``ContentDigest``
of the whole snapshot (``DIGEST``) and how many diffs deep it is (``DEPTH``); ``open``
reads a snapshot whole either way (``karri.storage.sparsechain``). Where exports are
incremental, a snapshot also has its bytes' ``RangeDigests`` (``<id>.ranges``: a SHA-256
per ``DIGEST_RANGE``), what the next diff over it is checked against (``exports``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager

from karri.errors import CloudError
from karri.storage.sparse import DIGEST_RANGE, StreamReader
from karri.storage.sparsechain import ChainStream, chain, layer
from karri.walrus import SYSTEM_ACCOUNT, ObjectReader, Walrus

BUCKET = "karri-ebs-snapshots"
FORMAT = "karri-sparse-1"
BASE, DIGEST, DEPTH = "base", "content-digest", "chain-depth"  # a diff's metadata
MAX_DEPTH = 64  # a longer chain is taken for a loop
RANGES_FORMAT = "karri-ranges-1"
SHA256 = 32


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
    def open(self, snapshot_id: str) -> Iterator[tuple[SequentialReader | StreamReader, int]]:
        """The snapshot stream and its length (a diff's laid over its base)."""
        with ExitStack() as stack:
            readers = self._chain(stack, snapshot_id)
            if len(readers) == 1:
                yield SequentialReader(readers[0]), readers[0].info.size
            else:
                stream = self._compose(snapshot_id, readers)
                yield StreamReader(stream), stream.length

    @contextmanager
    def stream(self, snapshot_id: str) -> Iterator[ChainStream]:
        """The snapshot as a ``SparseStream`` read from its object(s) at random."""
        with ExitStack() as stack:
            yield self._compose(snapshot_id, self._chain(stack, snapshot_id))

    def meta(self, snapshot_id: str) -> dict[str, str]:
        with self._open(snapshot_id) as reader:
            return dict(reader.info.meta)

    def _open(self, snapshot_id: str) -> ObjectReader:
        try:
            return self.walrus.open_object(BUCKET, self.key(snapshot_id))
        except CloudError as error:
            raise LookupError(f"snapshot {snapshot_id} has no object: {error.code}") from error

    def _chain(self, stack: ExitStack, snapshot_id: str) -> list[ObjectReader]:
        """The open objects of a snapshot and of the bases it is a diff of, newest first."""
        readers = [stack.enter_context(self._open(snapshot_id))]
        while BASE in readers[-1].info.meta:
            if len(readers) > MAX_DEPTH:
                raise LookupError(f"snapshot {snapshot_id}'s diffs do not end in a snapshot")
            readers.append(stack.enter_context(self._open(readers[-1].info.meta[BASE])))
        return readers

    @staticmethod
    def _compose(snapshot_id: str, readers: list[ObjectReader]) -> ChainStream:
        layers = [layer(reader.read, reader.info.size) for reader in reversed(readers)]
        return chain(snapshot_id, layers, readers[0].info.meta.get(DIGEST))

    def put_ranges(self, snapshot_id: str, digests: list[bytes]) -> None:
        """Keep the snapshot's ``RangeDigests`` (a SHA-256 per ``DIGEST_RANGE``)."""
        self.walrus.put_object(
            BUCKET,
            f"{snapshot_id}.ranges",
            [b"".join(digests)],
            owner=SYSTEM_ACCOUNT,
            headers={"content-type": "application/octet-stream"},
            meta={"format": RANGES_FORMAT, "range": str(DIGEST_RANGE)},
        )

    def ranges(self, snapshot_id: str) -> list[bytes] | None:
        """The snapshot's kept ``RangeDigests``; None if it has none (exported before
        they were kept, or whole by a backend that does not diff)."""
        try:
            reader = self.walrus.open_object(BUCKET, f"{snapshot_id}.ranges")
        except CloudError:
            return None
        with reader:
            meta = reader.info.meta
            if meta.get("format") != RANGES_FORMAT or meta.get("range") != str(DIGEST_RANGE):
                return None
            data = reader.read(reader.info.size, 0)
        if len(data) != reader.info.size or len(data) % SHA256:
            return None
        return [data[at : at + SHA256] for at in range(0, len(data), SHA256)]

    def delete(self, snapshot_id: str) -> None:
        self.walrus.delete_object(BUCKET, f"{snapshot_id}.ranges")
        self.walrus.delete_object(BUCKET, self.key(snapshot_id))
