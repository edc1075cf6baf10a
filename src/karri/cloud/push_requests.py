"""What the services ask for when a network change is committed: a VPC's state, or an
instance's addresses, told to the nodes (many-hosts step 7).

``PushRequests`` is the one seam. On the leader its implementation is the reconciler
(``Reconciler.groups_changed`` and the rest: in force on the nodes when the call
returns). On a front end without a running reconciler (a standby on PostgreSQL) it is
``NotifiedPushes``: each request is a short text (``encode``) sent to the leader
(``db/push_notify.py``: PostgreSQL's ``NOTIFY``), whose listener decodes it and hands it
to ``PushDispatcher``, which makes the same call on its reconciler. On SQLite there is
one front end: ``NO_PUSHES`` until its reconciler runs (whose start tells everything).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

log = logging.getLogger("karri.pushes")

# the requests about a VPC (the id: a VPC's), and those about instances
VPC_KINDS = ("groups", "routes", "acls", "dhcp", "nat_gateways")
INSTANCE_KINDS = ("interfaces", "addresses")
MAX_IDS = 200  # ids per request: an instance's id is 19 characters
DISPATCH_THREADS = 4  # each waits for its push (up to a minute on a node that hangs)


class PushRequests(Protocol):
    """Called from API worker threads, after the commit of the change."""

    def groups_changed(self, vpc_id: str) -> None: ...
    def routes_changed(self, vpc_id: str) -> None: ...
    def acls_changed(self, vpc_id: str) -> None: ...
    def dhcp_changed(self, vpc_id: str) -> None: ...
    def nat_gateways_changed(self, vpc_id: str) -> None: ...
    def interfaces_changed(self, instance_id: str) -> None: ...
    def addresses_changed(self, instance_ids: Sequence[str]) -> None: ...


Request = tuple[str, tuple[str, ...]]  # (kind, the VPC's id or the instances' ids)


def encode(kind: str, ids: Sequence[str]) -> str:
    """``kind id[ id...]``: ids never hold spaces."""
    return " ".join((kind, *ids))


def decode(payload: str) -> Request | None:
    """The request a payload holds (None: not one, from another version, say)."""
    kind, *ids = payload.split() or [""]
    one = kind in VPC_KINDS or kind == "interfaces"
    if (one and len(ids) == 1) or (kind == "addresses" and ids):
        return kind, tuple(ids)
    return None


def apply(target: PushRequests, request: Request) -> None:
    """The call the request stands for, made on ``target``."""
    kind, ids = request
    if kind == "addresses":
        target.addresses_changed(ids)
    else:
        getattr(target, f"{kind}_changed")(ids[0])


class NoPushes:
    """Nothing to tell (SQLite, before the reconciler runs: its start tells it all)."""

    def groups_changed(self, vpc_id: str) -> None:
        pass

    routes_changed = acls_changed = dhcp_changed = nat_gateways_changed = groups_changed
    interfaces_changed = groups_changed

    def addresses_changed(self, instance_ids: Sequence[str]) -> None:
        pass


NO_PUSHES = NoPushes()


class NotifiedPushes:
    """Each request sent as a text by ``send`` (to the leader). A failure to send is
    logged, not raised: the change is committed, and the leader's resync tells it."""

    def __init__(self, send: Callable[[str], None]) -> None:
        self.send = send

    def _request(self, kind: str, ids: Sequence[str]) -> None:
        try:
            for start in range(0, len(ids), MAX_IDS):  # NOTIFY's payload: under 8000 bytes
                self.send(encode(kind, ids[start : start + MAX_IDS]))
        except Exception as error:
            log.warning("cannot ask the leader to push %s %s: %s", kind, " ".join(ids), error)

    def groups_changed(self, vpc_id: str) -> None:
        self._request("groups", [vpc_id])

    def routes_changed(self, vpc_id: str) -> None:
        self._request("routes", [vpc_id])

    def acls_changed(self, vpc_id: str) -> None:
        self._request("acls", [vpc_id])

    def dhcp_changed(self, vpc_id: str) -> None:
        self._request("dhcp", [vpc_id])

    def nat_gateways_changed(self, vpc_id: str) -> None:
        self._request("nat_gateways", [vpc_id])

    def interfaces_changed(self, instance_id: str) -> None:
        self._request("interfaces", [instance_id])

    def addresses_changed(self, instance_ids: Sequence[str]) -> None:
        self._request("addresses", instance_ids)


class PushDispatcher:
    """The leader's side: each request heard made on ``target`` on a worker thread (its
    calls block until the nodes have the change). A request already waiting for a thread
    is not queued twice: the push it waits for has not begun, so it reads this change
    too (the reconciler's own ``coalesce`` shares the pushes under way)."""

    def __init__(self, target: PushRequests, threads: int = DISPATCH_THREADS) -> None:
        self.target = target
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="karri-push")
        self._waiting: set[Request] = set()
        self._lock = threading.Lock()

    def heard(self, payload: str) -> None:
        request = decode(payload)
        if request is None:
            log.warning("not a push request: %r", payload[:200])
            return
        with self._lock:
            if request in self._waiting:
                return
            self._waiting.add(request)
        self._pool.submit(self._run, request)

    def _run(self, request: Request) -> None:
        with self._lock:
            self._waiting.discard(request)
        try:
            apply(self.target, request)
        except Exception:  # the next resync tells it
            log.exception("pushing %s %s", request[0], " ".join(request[1]))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
