"""storage/sparsechain.py: diffs (``KSPDIFF1``, records of zeros) laid over a whole stream
read back as the whole snapshot, checked against the digest the export recorded."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from karri.storage.sparse import (
    CorruptStream,
    SparseStream,
    StreamReader,
    content_digest,
    decode_into,
    encode,
    read_header,
)
from karri.storage.sparsechain import ZEROS, chain, layer, overlay

KIB, MIB = 1 << 10, 1 << 20


def stored(stream: SparseStream) -> bytes:
    data = b"".join(stream)
    assert len(data) == stream.length
    return data


def as_layer(data: bytes):
    return layer(lambda length, position: data[position : position + length], len(data))


def decoded(stream: SparseStream) -> bytes:
    out = bytearray(stream.size)

    def write(data: bytes, offset: int) -> None:
        out[offset : offset + len(data)] = data

    reader = StreamReader(stream)
    decode_into(reader.read, write, read_header(reader.read))
    return bytes(out)


def write_at(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as file:
        file.seek(offset)
        file.write(data)


def test_a_diff_over_a_whole_stream_reads_as_the_later_bytes(tmp_path: Path) -> None:
    path = tmp_path / "disk"
    path.write_bytes(b"")
    with path.open("r+b") as file:
        file.truncate(16 * MIB)
    write_at(path, 0, random.randbytes(2 * MIB))
    write_at(path, 8 * MIB, random.randbytes(MIB))
    base = stored(encode(path))
    # later: a change inside the first extent, one past it, one range trimmed to zeros
    changed = random.randbytes(64 * KIB)
    write_at(path, MIB, changed)
    write_at(path, 12 * MIB, changed)
    write_at(path, 8 * MIB, bytes(MIB))
    later = path.read_bytes()
    diff = SparseStream(
        path,
        16 * MIB,
        [(MIB, 64 * KIB), (12 * MIB, 64 * KIB)],
        zeros=[(8 * MIB, MIB)],
        since="snap-00000001",
    )
    data = stored(diff)
    assert data[:8] == b"KSPDIFF1" and len(data) < 200 * KIB

    whole = chain("snap-00000002", [as_layer(base), as_layer(data)], content_digest(encode(path)))
    assert decoded(whole) == later
    assert whole.data_bytes == 2 * MIB + 64 * KIB  # the zeroed range is no record at all
    assert content_digest(whole) == whole.digest


def test_a_chain_that_does_not_add_up_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "disk"
    path.write_bytes(random.randbytes(MIB))
    base = stored(encode(path))
    write_at(path, 0, b"x" * KIB)
    diff = stored(SparseStream(path, MIB, [], since="snap-00000001"))  # misses the change
    whole = chain("snap-00000002", [as_layer(base), as_layer(diff)], content_digest(encode(path)))
    with pytest.raises(CorruptStream):
        decoded(whole)
    with pytest.raises(CorruptStream):
        chain("snap-00000002", [as_layer(diff)])  # a diff alone is no snapshot
    with pytest.raises(CorruptStream):
        as_layer(diff[:-4])  # truncated


def test_overlay_matches_a_byte_model() -> None:
    rng = random.Random(7)
    size = 4096
    for _ in range(200):
        model = [None] * size
        pieces: list = []
        for index in range(rng.randint(1, 4)):
            extents, at = [], 0
            while at < size:
                at += rng.randint(0, 300)
                length = rng.randint(1, 200)
                if at + length > size:
                    break
                position = ZEROS if index and rng.random() < 0.3 else 10_000 * index + at
                extents.append((at, length, index, position))
                for byte in range(at, at + length):
                    model[byte] = None if position == ZEROS else (index, position + byte - at)
                at += length
            pieces = overlay(pieces, extents)
        seen = [None] * size
        last_end = 0
        for offset, length, index, position in pieces:
            assert offset >= last_end  # sorted, never overlapping
            last_end = offset + length
            for byte in range(offset, offset + length):
                seen[byte] = None if position == ZEROS else (index, position + byte - offset)
        assert seen == model
