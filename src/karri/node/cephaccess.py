"""The Ceph cluster as a node on another host reaches it (EBS on RBD).

A cloud whose volumes are RBD images hands each joined node the cluster's monitors and
its Ceph user's key through the gateway (mutual TLS: ``CloudContract.ceph``); the node
writes them as a client configuration of its own (``ceph/ceph.conf`` and
``ceph/keyring`` in its data dir, 0600) and opens every ``RbdTarget`` with it, whatever
path the cloud's own configuration has on the cloud's host. Fetched at each start; a
node that cannot ask keeps what it wrote before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from karri.pki import write_file

DIRECTORY = "ceph"
CONF, KEYRING = "ceph.conf", "keyring"
# One line each in an INI file: nothing that could open a section or a second setting
_FIELDS = {
    "fsid": re.compile(r"^[0-9a-fA-F-]{1,64}$"),
    "mon_host": re.compile(r"^[0-9A-Za-z.:,\[\]/ _-]{1,1024}$"),
    "user": re.compile(r"^[A-Za-z0-9._-]{1,64}$"),
    "key": re.compile(r"^[A-Za-z0-9+/=]{1,256}$"),
}


@dataclass(frozen=True)
class CephAccess:
    """What a Ceph client needs: the cluster, its monitors, the user and its secret key."""

    fsid: str
    mon_host: str
    user: str
    key: str

    def __post_init__(self) -> None:
        for field, pattern in _FIELDS.items():
            if not pattern.match(getattr(self, field)):
                raise ValueError(f"Ceph access: not a valid {field}")


def write(directory: Path, access: CephAccess) -> Path:
    """The client configuration for ``access`` in ``directory`` (replaced); its path."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    keyring = directory / KEYRING
    write_file(keyring, f"[client.{access.user}]\n\tkey = {access.key}\n".encode(), 0o600)
    conf = directory / CONF
    text = (
        f"[global]\nfsid = {access.fsid}\nmon host = {access.mon_host}\n"
        f"[client]\nkeyring = {keyring}\n"
    )
    write_file(conf, text.encode(), 0o600)
    return conf


def kept(directory: Path) -> Path | None:
    """The configuration written at an earlier start, if any."""
    conf = directory / CONF
    return conf if conf.is_file() and (directory / KEYRING).is_file() else None
