"""How a node on another host reaches the cloud's Ceph cluster: the access read from the
cloud's own configuration as librados resolves it (``cloud/nodes/ceph.py``), written as
the node's own client files (``node/cephaccess.py``) that librados reads back, and the
node opening RBD volumes with them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from karri.cloud.nodes.ceph import NoCephAccess, ceph_access
from karri.node import FileTarget, Node, NodeSettings, RbdTarget
from karri.node.cephaccess import CephAccess, kept, write

FSID = "2f0e6a1c-0000-4000-8000-000000000001"
MONS = "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]"


def cloud_conf(tmp_path: Path, keyring: str) -> Path:
    (tmp_path / "ring").write_text(keyring)
    conf = tmp_path / "ceph.conf"
    text = f"[global]\nfsid = {FSID}\nmon host = {MONS}\n[client]\nkeyring = {tmp_path}/ring\n"
    conf.write_text(text)
    return conf


def test_the_access_comes_from_the_clouds_configuration(tmp_path: Path) -> None:
    ring = (
        '[client.admin]\n\tkey = QUJDRA==\n\tcaps mon = "allow *"\n[client.karri]\nkey = S0FSUkk=\n'
    )
    conf = cloud_conf(tmp_path, ring)
    assert ceph_access(str(conf), "admin") == CephAccess(FSID, MONS, "admin", "QUJDRA==")
    assert ceph_access(str(conf), "karri").key == "S0FSUkk="
    with pytest.raises(NoCephAccess, match=r"client\.nobody"):
        ceph_access(str(conf), "nobody")
    no_mons = tmp_path / "bare.conf"
    no_mons.write_text("[global]\n")
    with pytest.raises(NoCephAccess, match="monitors"):
        ceph_access(str(no_mons), "admin")


def test_written_files_are_a_client_configuration(tmp_path: Path) -> None:
    access = CephAccess(FSID, MONS, "karri", "S0FSUkk=")
    conf = write(tmp_path / "ceph", access)
    assert kept(tmp_path / "ceph") == conf
    for path in (conf, tmp_path / "ceph" / "keyring"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ceph_access(str(conf), "karri") == access  # librados reads them back as written


def test_nothing_that_would_rewrite_the_files_is_taken() -> None:
    for bad in (
        {"mon_host": "1.2.3.4\nkeyring = /etc/shadow"},
        {"user": "admin]\n[global"},
        {"key": "a b"},
        {"fsid": ""},
    ):
        fields = {"fsid": FSID, "mon_host": MONS, "user": "karri", "key": "S0FSUkk="} | bad
        with pytest.raises(ValueError):
            CephAccess(**fields)


def test_the_node_opens_rbd_volumes_with_its_own_access(tmp_path: Path) -> None:
    mine = tmp_path / "node" / "ceph" / "ceph.conf"
    node = Node(tmp_path / "node", NodeSettings(ceph_conf=mine))
    elsewhere = RbdTarget("pool", "vol-1", "karri", Path("/etc/cloud-host/ceph.conf"))
    assert node._local_target("vol-1", elsewhere) == RbdTarget("pool", "vol-1", "karri", mine)
    plain = FileTarget(tmp_path / "vol-2.raw")
    assert node._local_target("vol-2", plain) == plain
    untold = Node(tmp_path / "other", NodeSettings())
    assert untold._local_target("vol-1", elsewhere) == elsewhere
