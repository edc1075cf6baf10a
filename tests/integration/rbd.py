"""Helpers the tests of EBS on Ceph RBD share: a cloud whose volumes are RBD images in a
new pool of the test process's cluster (tests/ceph.py), and the images read and written
as a guest would, by ``qemu-io``/``qemu-img`` and the ``rbd`` tool in processes of their
own (librbd never runs in the test process here)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from karri.storage import luks, rbdluks
from karri.storage.rbd import RbdPool
from tests import ceph
from tests.conftest import Karri, start_karri
from tests.qemu_keys import run_keyed


def start_rbd_karri(data_dir: Path, *extra: str) -> tuple[Karri, str]:
    """``karri up --ebs-backend rbd`` on a new pool; (the cloud, the pool)."""
    cluster = ceph.cluster()
    pool = cluster.new_pool()
    args = ("--ebs-backend", "rbd", "--ceph-conf", str(cluster.conf), "--rbd-pool", pool)
    return start_karri(data_dir, *args, *extra), pool


def spec(pool: str, image: str) -> str:
    """QEMU's name of an image (``rbd:`` with the cluster's configuration)."""
    return f"rbd:{pool}/{image}:conf={ceph.cluster().conf}:id=admin"


def qemu_io(pool: str, image: str, command: str) -> str:
    result = subprocess.run(
        ["qemu-io", "-f", "raw", "-c", command, spec(pool, image)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "error" not in result.stdout.lower(), result
    return result.stdout


def keyed_spec(pool: str, image: str) -> str:
    """QEMU's name of an encrypted volume's image as its guest sees it: qcow2 (LUKS, the
    secret object ``k``) over its rbd driver."""
    place = RbdPool(str(ceph.cluster().conf), "admin", pool)
    return "json:" + json.dumps(luks.blockdev(rbdluks.protocol_node(place, image), "k"))


def keyed_io(pool: str, image: str, command: str, key: bytes) -> str:
    """``qemu-io -c command`` on an encrypted volume's image with the key ``key``
    (``read -P`` fails unless every byte matches: CalledProcessError)."""
    return run_keyed(["qemu-io", "-c", command, keyed_spec(pool, image)], key)


def pattern_at(pool: str, image: str, offset: int, length: int, byte: int) -> bool:
    """Whether ``length`` bytes at ``offset`` are all ``byte`` (``qemu-io read -P``)."""
    result = subprocess.run(
        ["qemu-io", "-f", "raw", "-c", f"read -P {byte} {offset} {length}", spec(pool, image)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode == 0 and "Pattern verification failed" not in result.stdout


def rbd(*args: str) -> str:
    result = subprocess.run(
        ["rbd", "-c", str(ceph.cluster().conf), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def images(pool: str) -> list[str]:
    return sorted(json.loads(rbd("ls", "--format", "json", pool)))


def info(pool: str, image: str) -> dict[str, Any]:
    """``rbd info``: its ``size``, and its ``parent`` while it is a clone."""
    return json.loads(rbd("info", "--format", "json", f"{pool}/{image}"))


def snaps(pool: str, image: str) -> list[str]:
    return [s["name"] for s in json.loads(rbd("snap", "ls", "--format", "json", f"{pool}/{image}"))]
