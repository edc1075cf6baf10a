"""The snapshot stream: a volume's data extents, never its holes, as one byte stream.

Layout (little-endian)::

    header   "KSPARSE1" | virtual size (u64)
    record   offset (u64) | length (u32) | crc32 of the data (u32) | data     (repeated)
    end      0xFFFFFFFFFFFFFFFF | 0 (u32) | number of records (u32)

Records are at most ``RECORD_MAX`` bytes, in increasing offset order, and never overlap.
What no record covers reads as zeros. The length of a stream is known before it is
written (``SparseStream.length``), so it can go anywhere that wants a size up front; the
end record makes a truncated stream detectable, the CRCs a damaged one.

A *diff* (``SparseStream.since``: what changed since an earlier snapshot, ``rbd
export-diff``'s) has the header ``KSPDIFF1`` and one more kind of record: ``ZERO_FLAG``
set in the length, no data and a CRC of 0, for a range that now reads as zeros. What no
record covers reads as in the earlier snapshot (``karri.storage.sparsechain`` lays diffs
over their base).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAGIC = b"KSPARSE1"
DIFF_MAGIC = b"KSPDIFF1"
ZERO_FLAG = 0x8000_0000  # a diff's record of zeros (no data follows)
HEADER = struct.Struct("<8sQ")
RECORD = struct.Struct("<QII")
END_OFFSET = 0xFFFF_FFFF_FFFF_FFFF
RECORD_MAX = 4 << 20
ZERO_BLOCK = 1 << 20  # checkpoint copies skip all-zero blocks of this size
_ZEROS = bytes(ZERO_BLOCK)
DIGEST_RANGE = 4 << 20  # ``RangeDigests``: a digest per range of this size (of blocks)
EMPTY_RANGE = hashlib.sha256().digest()  # the digest of a range that holds only zeros


class CorruptStream(ValueError):
    """The stream is not a complete, intact snapshot stream."""


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of the regions of a file that hold data, by SEEK_DATA/SEEK_HOLE."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:  # only a hole remains
                return
            raise
        if start >= size:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end - start
        offset = end


def records_of(extents: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Extents (in increasing order) as records of at most ``RECORD_MAX`` bytes."""
    for offset, length in extents:
        while length > 0:
            step = min(length, RECORD_MAX)
            yield offset, step
            offset += step
            length -= step


@dataclass
class SparseStream:
    """The stream of one file; iterate it once for its bytes. ``data_bytes`` counts the
    volume bytes it carries (what progress is measured against). A diff (``since``, the
    snapshot it is a diff from) also lists the ranges that now read as zeros (``zeros``)."""

    path: Path
    size: int
    records: list[tuple[int, int]]
    zeros: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    since: str | None = None

    @property
    def data_bytes(self) -> int:
        return sum(length for _, length in self.records)

    @property
    def length(self) -> int:
        count = len(self.records) + len(self.zeros)
        return HEADER.size + RECORD.size * (count + 1) + self.data_bytes

    def __iter__(self) -> Iterator[bytes]:
        yield HEADER.pack(DIFF_MAGIC if self.since else MAGIC, self.size)
        data_records = [(offset, length, False) for offset, length in self.records]
        zero_records = [(offset, length, True) for offset, length in self.zeros]
        with self.reader() as pread:
            for offset, length, zero in sorted(data_records + zero_records):
                if zero:
                    yield RECORD.pack(offset, length | ZERO_FLAG, 0)
                    continue
                data = pread(length, offset)
                if len(data) != length:
                    raise OSError(errno.EIO, f"{self.path} changed while it was read")
                yield RECORD.pack(offset, length, zlib.crc32(data)) + data
        yield RECORD.pack(END_OFFSET, 0, len(data_records) + len(zero_records))

    @contextlib.contextmanager
    def reader(self) -> Iterator[Callable[[int, int], bytes]]:
        """``pread(length, offset)`` of the volume's bytes while the stream is read (a
        file here; another backend's stream reads its own storage)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            yield functools.partial(os.pread, fd)
        finally:
            os.close(fd)


@dataclass
class TappedStream(SparseStream):
    """Another stream whose bytes, as they are read, are also handed to ``seen(data,
    offset)`` (a digest made while the stream is stored: ``tapped``)."""

    inner: SparseStream | None = None
    seen: Callable[[bytes, int], None] | None = None

    @contextlib.contextmanager
    def reader(self) -> Iterator[Callable[[int, int], bytes]]:
        assert self.inner is not None and self.seen is not None
        seen = self.seen
        with self.inner.reader() as pread:

            def read(length: int, offset: int) -> bytes:
                data = pread(length, offset)
                seen(data, offset)
                return data

            yield read


def tapped(stream: SparseStream, seen: Callable[[bytes, int], None]) -> TappedStream:
    return TappedStream(
        stream.path, stream.size, stream.records, stream.zeros, stream.since, stream, seen
    )


class StreamReader:
    """``read(n)`` over a stream's bytes, as ``decode_into`` and the backends' restores
    read a snapshot object (a copy straight from one backend to another)."""

    def __init__(self, stream: SparseStream) -> None:
        self._chunks = iter(stream)
        self._buffer = b""
        self._at = 0  # bytes of the buffer already read

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) - self._at < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buffer, self._at = self._buffer[self._at :] + chunk, 0
        end = len(self._buffer) if size < 0 else self._at + size
        data = self._buffer[self._at : end]
        self._at += len(data)
        return data


class ContentDigest:
    """SHA-256 of a volume's bytes, the same whichever way they are stored (holes or
    written zeros, extents cut anywhere): the virtual size, then each ``ZERO_BLOCK``-aligned
    block that is not all zeros, with its offset. Fed ``write(data, offset)`` in increasing
    offsets (as ``decode_into`` writes); what is never written reads as zeros."""

    whole = True  # whether the whole digest is made (``RangeDigests`` may do without)

    def __init__(self, size: int) -> None:
        self.size = size
        self._sha = hashlib.sha256(HEADER.pack(MAGIC, size))
        self._block = -1  # the offset of the block being gathered
        self._data = bytearray()
        self.blocks: list[tuple[int, int]] = []  # (offset, length) of the blocks hashed

    def write(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            start = offset - offset % ZERO_BLOCK
            length = min(ZERO_BLOCK, self.size - start)
            if start != self._block and offset == start and len(view) >= length:
                self._flush()  # a whole block: hashed where it is, not gathered
                self._block, self._data = -1, bytearray()
                self._add(start, view[:length].tobytes())  # one copy: compared at C speed
                view, offset = view[length:], offset + length
                continue
            if start != self._block:
                self._flush()
                self._block = start
                self._data = bytearray(length)
            step = min(len(view), start + ZERO_BLOCK - offset)
            self._data[offset - start : offset - start + step] = view[:step]
            view, offset = view[step:], offset + step

    def _flush(self) -> None:
        if self._block >= 0:
            self._add(self._block, self._data)

    def _add(self, offset: int, block: bytes | bytearray) -> None:
        """Hash a block (with its offset) unless it is all zeros."""
        if block == (_ZEROS if len(block) == ZERO_BLOCK else _ZEROS[: len(block)]):
            return
        where = offset.to_bytes(8, "little")
        if self.whole:
            self._sha.update(where)
            self._sha.update(block)
        self._hashed(offset, where, block)
        self.blocks.append((offset, len(block)))

    def _hashed(self, offset: int, where: bytes, block: bytes | bytearray) -> None:
        """A block that is not all zeros was hashed (``RangeDigests`` keeps it per range)."""

    def hexdigest(self) -> str:
        self._flush()
        self._block, self._data = -1, bytearray()
        return self._sha.hexdigest()


class RangeDigests(ContentDigest):
    """A ``ContentDigest`` that also keeps the SHA-256 of each ``DIGEST_RANGE`` of the
    volume (the same bytes: its blocks that are not all zeros, with their offsets), so that
    the ranges of two snapshots compare without reading either again (``range_digest``;
    a range with nothing but zeros: ``EMPTY_RANGE``)."""

    def __init__(self, size: int, *, whole: bool = True) -> None:
        super().__init__(size)
        self.whole = whole  # False: ``hexdigest`` is not wanted (one hash less per block)
        self._ranges: dict[int, Any] = {}

    def _hashed(self, offset: int, where: bytes, block: bytes | bytearray) -> None:
        index = offset // DIGEST_RANGE
        if index not in self._ranges:
            self._ranges[index] = hashlib.sha256()
        self._ranges[index].update(where)
        self._ranges[index].update(block)

    def range_digest(self, index: int) -> bytes:
        self._flush()
        self._block, self._data = -1, bytearray()
        found = self._ranges.get(index)
        return found.digest() if found is not None else EMPTY_RANGE

    def ranges(self) -> list[bytes]:
        """Every range's digest, in order."""
        return [self.range_digest(index) for index in range(range_count(self.size))]


def range_count(size: int) -> int:
    return -(-size // DIGEST_RANGE)


def ranges_of(extents: Iterable[tuple[int, int]]) -> set[int]:
    """The indexes of the ``DIGEST_RANGE``s that extents touch."""
    return {
        index
        for offset, length in extents
        for index in range(offset // DIGEST_RANGE, (offset + length - 1) // DIGEST_RANGE + 1)
    }


def content_digest(stream: SparseStream) -> str:
    """The ``ContentDigest`` of a stream's bytes (only its records are read)."""
    return _digest(stream).hexdigest()


def range_digests(stream: SparseStream) -> tuple[str, RangeDigests]:
    """The ``ContentDigest`` of a stream's bytes, and their ``RangeDigests``."""
    digest = RangeDigests(stream.size)
    return _digest(stream, digest).hexdigest(), digest


def without_zeros(stream: SparseStream) -> tuple[SparseStream, str]:
    """The same stream with only the ``ZERO_BLOCK``s that are not all zeros (written
    zeros become holes in the copy), and its ``content_digest``."""
    digest = _digest(stream)
    hexdigest = digest.hexdigest()
    merged: list[tuple[int, int]] = []
    for offset, length in digest.blocks:
        if merged and sum(merged[-1]) == offset:
            merged[-1] = (merged[-1][0], merged[-1][1] + length)
        else:
            merged.append((offset, length))
    return dataclasses.replace(stream, records=list(records_of(merged))), hexdigest


def _digest(stream: SparseStream, digest: ContentDigest | None = None) -> ContentDigest:
    """``digest`` (a new ``ContentDigest`` if None) fed the stream's records."""
    digest = ContentDigest(stream.size) if digest is None else digest
    with stream.reader() as pread:
        for offset, length in stream.records:
            digest.write(pread(length, offset), offset)
    return digest


def encode(path: Path, size: int | None = None) -> SparseStream:
    """The snapshot stream of the file at ``path`` (virtual size: the file's, or ``size``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        real = os.fstat(fd).st_size
        size = real if size is None else size
        records = list(records_of(data_extents(fd, min(size, real))))
    finally:
        os.close(fd)
    return SparseStream(path, size, records)


def _exactly(read: Callable[[int], bytes], size: int) -> bytes:
    data = read(size)
    if len(data) == size:
        return data
    parts, got = [data], len(data)
    while got < size:
        more = read(size - got)
        if not more:
            raise CorruptStream("the snapshot stream ends early")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def read_header(read: Callable[[int], bytes]) -> int:
    """The virtual size the stream announces."""
    magic, size = HEADER.unpack(_exactly(read, HEADER.size))
    if magic != MAGIC:
        raise CorruptStream("not a snapshot stream")
    return size


def decode_into(
    read: Callable[[int], bytes],
    fd: int | Callable[[bytes, int], None],
    size: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write the records that follow the header into ``fd`` (holes stay holes).

    ``size`` is the stream's virtual size; ``progress`` gets the bytes written so far;
    ``fd`` a file, or a ``write(data, offset)`` (another file's payload: ``nbdwrite``).
    """
    write = fd if callable(fd) else functools.partial(pwrite_all, fd)
    count = written = 0
    position = -1
    while True:
        offset, length, check = RECORD.unpack(_exactly(read, RECORD.size))
        if offset == END_OFFSET:
            if length != 0 or check != count:
                raise CorruptStream("the snapshot stream's end record does not match")
            return
        if offset <= position or length == 0 or length > RECORD_MAX or offset + length > size:
            raise CorruptStream(f"bad record at offset {offset}")
        data = _exactly(read, length)
        if zlib.crc32(data) != check:
            raise CorruptStream(f"checksum mismatch at offset {offset}")
        write(data, offset)
        position = offset + length - 1
        count += 1
        written += length
        if progress is not None:
            progress(written)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def copy_sparse(source: Path, target_fd: int, size: int) -> int:
    """Copy a file's data into ``target_fd`` (already ``size`` long), leaving holes for its
    holes and for all-zero blocks. Returns the bytes copied.

    Blocks are read only to look for zeros; runs of data are copied in the kernel
    (``copy_file_range``), which is markedly faster than writing them from Python.
    """
    copied = 0
    fd = os.open(source, os.O_RDONLY)
    try:
        for offset, length in data_extents(fd, size):
            end = offset + length
            run = offset  # start of the current run of non-zero blocks
            while offset < end:
                step = min(ZERO_BLOCK - offset % ZERO_BLOCK, end - offset)
                if os.pread(fd, step, offset) == _ZEROS[:step]:
                    copied += _copy_range(fd, target_fd, run, offset)
                    run = offset + step
                offset += step
            copied += _copy_range(fd, target_fd, run, end)
    finally:
        os.close(fd)
    return copied


def _copy_range(source_fd: int, target_fd: int, start: int, end: int) -> int:
    at = start
    while at < end:
        done = os.copy_file_range(source_fd, target_fd, end - at, at, at)
        if done == 0:
            raise OSError(errno.EIO, "the source ended while it was copied")
        at += done
    return end - start
