"""A librados client for karri's Ceph backends (Walrus on RADOS, EBS on RBD).

``connect`` bounds every operation (connecting, monitor and OSD operations carry
librados timeouts unless the Ceph configuration sets its own), so that no caller waits
for an unreachable cluster indefinitely; ``ensure_pool`` creates a missing pool for
karri's use. Callers close what they open in order (images, I/O contexts, then the
cluster's ``shutdown``).
"""

from __future__ import annotations

import errno
import json
from typing import Any

# librados's errors that mean "the cluster is out of reach" rather than "it failed".
UNREACHABLE = {
    errno.ETIMEDOUT, errno.ESHUTDOWN, errno.ECONNREFUSED, errno.EHOSTDOWN,
    errno.EHOSTUNREACH, errno.ENOTCONN, errno.EINTR,
}  # fmt: skip
TIMEOUTS = ("rados_osd_op_timeout", "rados_mon_op_timeout", "client_mount_timeout")


def unreachable(error: BaseException) -> bool:
    """Whether a librados failure means the cluster is out of reach (retry later)."""
    return abs(getattr(error, "errno", None) or 0) in UNREACHABLE


def connect(conf: str | None, user: str, timeout: float) -> Any:
    """A connected ``rados.Rados`` (the caller shuts it down)."""
    import rados

    seconds = str(int(timeout))
    cluster = rados.Rados(conffile=conf, rados_id=user)
    try:
        for option in TIMEOUTS:
            if float(cluster.conf_get(option) or 0) in (0, 300):  # unset (or the default)
                cluster.conf_set(option, seconds)
        cluster.connect(timeout=int(timeout))
    except BaseException:
        cluster.shutdown()
        raise
    return cluster


def ensure_pool(cluster: Any, pool: str, application: str, timeout: float) -> None:
    """Create ``pool`` for ``application`` if it does not exist (another client may make
    it meanwhile)."""
    import rados

    if cluster.pool_exists(pool):
        return
    try:
        cluster.create_pool(pool)
    except rados.ObjectExists:
        return
    cluster.mon_command(
        json.dumps({"prefix": "osd pool application enable", "pool": pool, "app": application}),
        b"",
        timeout=int(timeout),
    )


def pool_status(conf: str | None, user: str, pool: str, timeout: float = 5.0) -> dict[str, Any]:
    """The cluster's health and the pool's use, for `karri status` (``error`` when the
    cluster cannot be reached or the pool does not exist)."""
    try:
        cluster = connect(conf, user, timeout)
    except Exception as error:
        return {"error": f"cannot reach Ceph: {error}"}
    try:
        code, out, status = cluster.mon_command(
            json.dumps({"prefix": "health", "format": "json"}), b"", timeout=int(timeout)
        )
        health = json.loads(out).get("status", "unknown") if code == 0 else status
        if not cluster.pool_exists(pool):
            return {"health": health, "error": f"no pool {pool}"}
        ioctx = cluster.open_ioctx(pool)
        try:
            stats = ioctx.get_stats()
        finally:
            ioctx.close()
        return {"health": health, "used_bytes": stats["num_bytes"], "objects": stats["num_objects"]}
    except Exception as error:
        return {"error": f"Ceph: {error}"}
    finally:
        cluster.shutdown()
