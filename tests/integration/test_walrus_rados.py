"""Walrus's RADOS blob store against the tests' throwaway Ceph cluster (tests/ceph.py):
striping, copies, removal, the sweep of orphans, and a cluster that goes away."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

import pytest

from karri.walrus.checksums import Digests
from karri.walrus.errors import S3Error
from karri.walrus.radosblobs import STRIPE, CephTarget, RadosBlobStore, stripe_name
from tests import ceph


@pytest.fixture
def store() -> Iterator[RadosBlobStore]:
    cluster = ceph.cluster()
    blobs = RadosBlobStore(CephTarget(str(cluster.conf), pool=cluster.new_pool(), timeout=3))
    yield blobs
    blobs.close()


def stripes(store: RadosBlobStore) -> list[str]:
    return sorted(item.key for item in store.call(lambda ioctx: list(ioctx.list_objects())))


def write(store: RadosBlobStore, *chunks: bytes) -> str:
    writer = store.writer(Digests())
    for chunk in chunks:
        writer.write(chunk)
    assert writer.digests.etag == hashlib.md5(b"".join(chunks)).hexdigest()
    return writer.commit()


@pytest.mark.parametrize(
    "sizes", [[], [1], [STRIPE], [STRIPE + 1], [STRIPE - 1, 2, STRIPE * 2], [65536] * 70]
)
def test_blobs_read_back_across_stripes(store: RadosBlobStore, sizes: list[int]) -> None:
    chunks = [os.urandom(size) for size in sizes]
    data = b"".join(chunks)
    blob_id = write(store, *chunks)
    assert len(stripes(store)) == max(1, -(-len(data) // STRIPE))
    blob = store.open(blob_id)
    assert blob.fileno() is None
    assert blob.pread(len(data) + 10, 0) == data
    if data:
        middle = len(data) // 2
        assert blob.pread(STRIPE + 3, middle) == data[middle : middle + STRIPE + 3]


def test_copies_and_joins_are_new_blobs(store: RadosBlobStore) -> None:
    first, second = os.urandom(STRIPE + 100), os.urandom(1000)
    a, b = write(store, first), write(store, second)
    copy = store.link(a, len(first))
    assert copy != a and store.open(copy).pread(2 * STRIPE, 0) == first
    joined = store.concatenate([(a, 50, STRIPE), (b, 0, 1000)], Digests(), hash_data=True)
    assert joined.digests.etag == hashlib.md5(first[50 : STRIPE + 50] + second).hexdigest()
    assert store.open(joined.commit()).pread(3 * STRIPE, 0) == first[50 : STRIPE + 50] + second
    store.unlink([a, None])
    with pytest.raises(FileNotFoundError):
        store.open(a)
    with pytest.raises(FileNotFoundError):
        store.link(a, len(first))
    assert store.open(a, verify=False).pread(10, 0) == b""  # gone: reads short


def test_aborted_writer_leaves_nothing(store: RadosBlobStore) -> None:
    writer = store.writer(Digests())
    writer.write(os.urandom(3 * STRIPE + 5))
    writer.abort()
    assert stripes(store) == []


def test_sweep_removes_unreferenced_blobs_once_nobody_writes_them(
    store: RadosBlobStore,
) -> None:
    kept, _orphan = write(store, b"kept" * 100), write(store, os.urandom(STRIPE + 1))
    assert store.sweep(lambda ids: ids & {kept}) == (0, 0)  # young: may be a write going on
    young = RadosBlobStore(CephTarget(store.target.conf, pool=store.target.pool, grace=0))
    try:
        assert young.sweep(lambda ids: ids & {kept}) == (0, 1)
    finally:
        young.close()
    assert stripes(store) == [stripe_name(kept, 0)]


def test_an_unreachable_cluster_fails_fast_and_the_store_recovers(
    store: RadosBlobStore,
) -> None:
    blob_id = write(store, b"before")
    cluster = ceph.cluster()
    cluster.stop()
    try:
        with pytest.raises(S3Error) as failure:
            write(store, os.urandom(STRIPE))
        assert failure.value.code == "ServiceUnavailable" and failure.value.status == 503
        with pytest.raises(S3Error):
            store.open(blob_id).pread(10, 0)
        # A store that was never connected cannot connect either.
        fresh = RadosBlobStore(CephTarget(store.target.conf, pool=store.target.pool, timeout=2))
        with pytest.raises(S3Error) as failure:
            fresh.writer(Digests())
        assert failure.value.code == "ServiceUnavailable"
    finally:
        cluster.start()
    assert store.open(blob_id).pread(10, 0) == b"before"
    assert store.open(write(store, b"after")).pread(10, 0) == b"after"
    time.sleep(2)  # the pause after a failed connection
    assert fresh.open(blob_id).pread(10, 0) == b"before"
    fresh.close()


def test_walrus_sweeps_a_rados_store_while_serving(store: RadosBlobStore, tmp_path) -> None:
    from karri.db.engine import Database
    from karri.walrus import Walrus, acls

    target = CephTarget(store.target.conf, pool=store.target.pool, grace=0)
    blobs = RadosBlobStore(target)
    walrus = Walrus(Database(f"sqlite:///{tmp_path / 'k.db'}"), tmp_path, blobs)
    try:
        walrus.ensure_bucket("swept", "111122223333")
        walrus.put_object("swept", "k", os.urandom(STRIPE + 5), acl=acls.private("111122223333"))
        orphan = write(store, b"left by a crash")
        assert walrus.sweep_while_serving() == {"orphans": 1}
        assert orphan not in {name.partition(".")[0] for name in stripes(store)}
        assert len(walrus.get_object("swept", "k")) == STRIPE + 5
    finally:
        blobs.close()
    files = Walrus(Database(f"sqlite:///{tmp_path / 'f.db'}"), tmp_path / "files")
    assert files.sweep_while_serving() == {}  # files are swept before serving only
