"""What a joined node gets to reach the Ceph cluster of the cloud's EBS volumes: the
monitors and the key of the cloud's Ceph user, read from the cloud's own configuration
(librados resolves it as every Ceph client does: ``key``, ``keyfile``, then the
``keyring`` files in order). Handed over the gateway only (mutual TLS); a node writes it
as its own client configuration (``node/cephaccess.py``)."""

from __future__ import annotations

import configparser
import logging
from pathlib import Path

from karri.node.cephaccess import CephAccess

log = logging.getLogger("karri.nodes")


class NoCephAccess(Exception):
    """The cloud's Ceph configuration names no monitors or no key for its user."""


def ceph_access(conf: str | None, user: str) -> CephAccess:
    """The access for ``user`` from the configuration file ``conf`` (None: librados's
    default); NoCephAccess when it cannot be made."""
    import rados

    try:
        cluster = rados.Rados(conffile=conf, rados_id=user)
    except rados.Error as error:
        raise NoCephAccess(f"{conf}: {error}") from None
    try:
        fsid, mon_host = cluster.conf_get("fsid"), cluster.conf_get("mon_host")
        key, keyfile, keyrings = (cluster.conf_get(k) for k in ("key", "keyfile", "keyring"))
    finally:
        cluster.shutdown()
    if not mon_host:
        raise NoCephAccess(f"no monitors in {conf or 'the default Ceph configuration'}")
    if not key and keyfile:
        key = _read(Path(keyfile)).strip()
    for keyring in [] if key else [p for p in keyrings.split(",") if p.strip()]:
        key = _key_in(Path(keyring.strip()), f"client.{user}")
        if key:
            break
    if not key:
        raise NoCephAccess(f"no key for client.{user}")
    try:
        return CephAccess(fsid, mon_host, user, key)
    except ValueError as error:
        raise NoCephAccess(str(error)) from None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""


def _key_in(keyring: Path, entity: str) -> str:
    """The key of ``entity`` in the keyring file (empty: none there)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(_read(keyring))
    except configparser.Error as error:
        log.warning("%s: not a keyring: %s", keyring, error)
        return ""
    return parser.get(entity, "key", fallback="").strip()
