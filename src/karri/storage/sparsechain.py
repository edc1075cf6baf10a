"""A snapshot stored as diffs over an earlier one, read back as one whole snapshot stream.

An incremental export stores only what changed since an earlier snapshot (a diff:
``sparse.SparseStream.since``, ``rbd export-diff``'s extents); its base is a whole stream
or a diff itself. Each stored stream is a ``Layer`` (its records indexed by position, read
at random: no data is read to index it); ``ChainStream`` lays the diffs over their base,
the newest winning, and is an ordinary ``SparseStream`` again, so whatever restores,
copies or digests a snapshot reads a chain the same way. Its bytes are checked against
the ``ContentDigest`` the export recorded (the CRCs of records read in part cannot be).
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from karri.storage.sparse import (
    DIFF_MAGIC,
    END_OFFSET,
    HEADER,
    MAGIC,
    RECORD,
    RECORD_MAX,
    ZERO_FLAG,
    ContentDigest,
    CorruptStream,
    SparseStream,
)

ReadAt = Callable[[int, int], bytes]  # ``read(length, position)`` of a stored stream
ZEROS = -1  # the position of a range that reads as zeros
# (volume offset, length, the layer it comes from, position of its data in that layer)
Piece = tuple[int, int, int, int]


@dataclass(frozen=True)
class Layer:
    """One stored stream: its virtual size and records (offset, length, position of the
    data in the stream, or ``ZEROS``); ``diff``: laid over an earlier snapshot."""

    read: ReadAt
    size: int
    diff: bool
    records: list[tuple[int, int, int]]


def _exactly(read: ReadAt, length: int, position: int) -> bytes:
    data = read(length, position)
    if len(data) != length:
        raise CorruptStream("the snapshot stream ends early")
    return data


def layer(read: ReadAt, total: int) -> Layer:
    """Index a stored stream of ``total`` bytes by its record headers."""
    magic, size = HEADER.unpack(_exactly(read, HEADER.size, 0))
    if magic not in (MAGIC, DIFF_MAGIC):
        raise CorruptStream("not a snapshot stream")
    diff = magic == DIFF_MAGIC
    records: list[tuple[int, int, int]] = []
    position, last = HEADER.size, -1
    while True:
        offset, length, check = RECORD.unpack(_exactly(read, RECORD.size, position))
        position += RECORD.size
        if offset == END_OFFSET:
            if length != 0 or check != len(records) or position != total:
                raise CorruptStream("the snapshot stream's end record does not match")
            return Layer(read, size, diff, records)
        zero = diff and bool(length & ZERO_FLAG)
        if zero:
            length &= ~ZERO_FLAG
        if offset <= last or length == 0 or length > RECORD_MAX or offset + length > size:
            raise CorruptStream(f"bad record at offset {offset}")
        records.append((offset, length, ZEROS if zero else position))
        position += 0 if zero else length
        last = offset + length - 1


def _cut(piece: Piece, low: int, high: int) -> Piece:
    """The part ``low``..``high`` of a piece."""
    offset, _length, source, position = piece
    moved = position + low - offset if position != ZEROS else ZEROS
    return (low, high - low, source, moved)


def overlay(below: Sequence[Piece], above: Sequence[Piece]) -> list[Piece]:
    """``above``'s pieces over ``below``'s: both sorted, neither overlapping itself."""
    kept: list[Piece] = []
    first = 0  # the first piece above that may overlap what follows
    for piece in below:
        start, end = piece[0], piece[0] + piece[1]
        while first < len(above) and above[first][0] + above[first][1] <= start:
            first += 1
        index = first
        while start < end:
            if index < len(above) and above[index][0] < end:
                if above[index][0] > start:
                    kept.append(_cut(piece, start, above[index][0]))
                start = max(start, above[index][0] + above[index][1])
                index += 1
            else:
                kept.append(_cut(piece, start, end))
                break
    return sorted(kept + list(above))


@dataclass
class ChainStream(SparseStream):
    """The snapshot a base and its diffs add up to (``chain``); ``digest``: the
    ``ContentDigest`` its bytes must have, checked once all of them have been read."""

    layers: list[Layer] = field(default_factory=list, repr=False)
    pieces: list[Piece] = field(default_factory=list, repr=False)
    digest: str | None = None

    def read_at(self, length: int, offset: int) -> bytes:
        """The snapshot's bytes at ``offset`` (unchecked: ``reader`` checks them whole)."""
        return self._read(length, offset)

    def _read(self, length: int, offset: int) -> bytes:
        out = bytearray(length)  # what no piece covers reads as zeros
        index = max(0, bisect.bisect_right(self.pieces, (offset, 1 << 62)) - 1)
        while index < len(self.pieces) and self.pieces[index][0] < offset + length:
            start, size, source, position = self.pieces[index]
            low, high = max(start, offset), min(start + size, offset + length)
            if low < high:
                data = self.layers[source].read(high - low, position + low - start)
                if len(data) != high - low:
                    raise CorruptStream(f"{self.path} ends early")
                out[low - offset : high - offset] = data
            index += 1
        return bytes(out)

    @contextlib.contextmanager
    def reader(self) -> Iterator[Callable[[int, int], bytes]]:
        check = ContentDigest(self.size)
        read = 0

        def pread(length: int, offset: int) -> bytes:
            nonlocal read
            data = self._read(length, offset)
            check.write(data, offset)
            read += length
            return data

        yield pread
        if self.digest and read == self.data_bytes and check.hexdigest() != self.digest:
            raise CorruptStream(f"{self.path} does not add up to the snapshot it was")


def chain(name: str, layers: Sequence[Layer], digest: str | None = None) -> ChainStream:
    """The stream of ``layers`` (the whole base first, then its diffs, oldest first)."""
    if not layers or layers[0].diff or not all(lay.diff for lay in layers[1:]):
        raise CorruptStream(f"{name}: a chain is a whole snapshot and then diffs")
    pieces: list[Piece] = []
    for index, lay in enumerate(layers):
        pieces = overlay(pieces, [(o, n, index, p) for o, n, p in lay.records])
    pieces = [piece for piece in pieces if piece[3] != ZEROS]
    records = [(offset, length) for offset, length, _, _ in pieces]
    return ChainStream(
        Path(name), layers[-1].size, records, layers=list(layers), pieces=pieces, digest=digest
    )
