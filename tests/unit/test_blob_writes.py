"""Blob writes: every size and split lands byte for byte, with direct I/O or without."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from karri.walrus.appender import ALIGNMENT, STAGING, open_new
from karri.walrus.blobs import FileBlobStore
from karri.walrus.checksums import Digests

SIZES = [
    [],
    [1],
    [ALIGNMENT],
    [ALIGNMENT + 1],
    [STAGING],
    [STAGING - 1, 2],
    [3 * STAGING + 17],
    [65_536] * 70 + [5],
]


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("sizes", SIZES)
def test_written_blob_reads_back(tmp_path: Path, sizes: list[int], direct: bool) -> None:
    store = FileBlobStore(tmp_path)
    chunks = [os.urandom(size) for size in sizes]
    writer = store.writer(Digests(), direct=direct)
    for chunk in chunks:
        writer.write(bytearray(chunk))
    blob_id = writer.commit()
    data = b"".join(chunks)
    assert store.path(blob_id).read_bytes() == data
    assert writer.digests.etag == hashlib.md5(data).hexdigest()
    assert writer.size == len(data)


def test_aborted_writer_leaves_nothing(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    writer = store.writer(Digests())
    writer.write(os.urandom(STAGING + 5))
    writer.abort()
    assert list(store.tmp.iterdir()) == []


def test_open_new_refuses_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        open_new(tmp_path / "taken", 0o600)
