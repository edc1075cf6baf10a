"""walrus/migrate.py's pieces on two file blob stores: a blob copied under its own id,
verified, and a short original refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from karri.walrus.blobs import FileBlobStore
from karri.walrus.checksums import Digests
from karri.walrus.migrate import MigrationError, copy_blob, same


def _blob(store: FileBlobStore, data: bytes) -> str:
    writer = store.writer(Digests())
    writer.write(data)
    return writer.commit()


def test_a_blob_is_copied_under_its_own_id(tmp_path: Path) -> None:
    old, new = FileBlobStore(tmp_path / "old"), FileBlobStore(tmp_path / "new")
    data = bytes(range(256)) * 40000
    blob_id = _blob(old, data)
    copy_blob(old, new, blob_id, len(data))
    assert new.path(blob_id).read_bytes() == data
    empty = _blob(old, b"")
    copy_blob(old, new, empty, 0)
    assert new.path(empty).read_bytes() == b""


def test_a_blob_shorter_than_its_rows_say_is_not_copied(tmp_path: Path) -> None:
    old, new = FileBlobStore(tmp_path / "old"), FileBlobStore(tmp_path / "new")
    blob_id = _blob(old, b"short")
    with pytest.raises(MigrationError, match="5 bytes where its rows say 9"):
        copy_blob(old, new, blob_id, 9)
    assert not new.path(blob_id).exists() and not list(new.tmp.iterdir())


def test_stores_are_the_same_by_backend_conf_and_pool() -> None:
    files = {"walrus_backend": "files"}
    assert same(files, {"walrus_backend": "files", "ceph_conf": "/etc/ceph/ceph.conf"})
    rados = {"walrus_backend": "rados", "ceph_conf": "c", "rados_pool": "p"}
    assert same(rados, rados | {"ceph_user": "other"})
    assert not same(rados, rados | {"rados_pool": "q"})
    assert not same(rados, files)
