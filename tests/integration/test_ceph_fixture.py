"""The tests' throwaway Ceph cluster (tests/ceph.py) serves RADOS: objects written in a
pool of its own read back, across a stop and start of its daemons."""

from __future__ import annotations

import os

from tests import ceph


def test_pool_reads_back_what_was_written_across_a_restart() -> None:
    cluster = ceph.cluster()
    pool = cluster.new_pool()
    data = os.urandom(5 << 20)
    client = cluster.client()
    try:
        with client.open_ioctx(pool) as ioctx:
            ioctx.write_full("smoke", data)
            assert ioctx.read("smoke", len(data) + 1) == data
    finally:
        client.shutdown()
    cluster.stop()
    cluster.start()
    client = cluster.client()
    try:
        with client.open_ioctx(pool) as ioctx:
            assert ioctx.read("smoke", len(data) + 1) == data
            assert [o.key for o in ioctx.list_objects()] == ["smoke"]
    finally:
        client.shutdown()
