"""The signed views of the identity document as the metadata service serves them.

A ``Signing`` source answers an instance's ``SignedIdentity``: the cloud's own node signs
the document in process (``local``), a joined node asks the cloud (``CloudLink
.sign_identity``), which signs the document it builds from its own records and nothing the
node wrote. A view is served only when what was signed is byte for byte the document the
node serves (``document`` and ``signature`` must verify together): a difference (the
instance's facts changed between the two reads) is not served, and asked again next time.

Answers are kept per instance, keyed by the document: it changes only with the instance's
identity facts (a start after a stop gives it a new ``pendingTime``). One question per
instance and document is in flight at a time; a request waits for it at most ``wait``
seconds, so a cloud that does not answer costs a guest that long, then ``Unavailable``
(the question goes on, bounded by the link's own timeout, and its answer is kept).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from karri.node.identity import IdentitySigner, SignedIdentity

log = logging.getLogger("karri.node")

WAIT = 5.0
KEEP = 1024  # instances whose views are kept

Signing = Callable[[str, bytes], Awaitable[SignedIdentity | None]]
"""(instance id, the document the node serves) -> what was signed; None: the cloud refused
(not an instance of this node's); raises ``Unavailable`` when it cannot be asked."""


class Unavailable(Exception):
    """The views cannot be had now (the cloud is unreachable, slow, or signed another
    document): the metadata service answers 503."""


class Refused(Exception):
    """No views for this instance (the cloud refused): 404."""


def local(signer: IdentitySigner) -> Signing:
    """Signing in process, with the key itself (the cloud's own node)."""

    async def sign(_instance_id: str, document: bytes) -> SignedIdentity:
        return signer.sign(document)

    return sign


class SignedViews:
    def __init__(self, signing: Signing, wait: float = WAIT, keep: int = KEEP) -> None:
        self._signing = signing
        self._wait = wait
        self._keep = keep
        self._kept: OrderedDict[str, SignedIdentity] = OrderedDict()
        self._asking: dict[tuple[str, bytes], asyncio.Task[SignedIdentity | None]] = {}

    async def view(self, instance_id: str, document: bytes, name: str) -> bytes:
        """The view ``name`` of ``document``, which the node serves for the instance."""
        kept = self._kept.get(instance_id)
        if kept is None or kept.document != document:
            kept = await self._ask(instance_id, document)
        return kept.views[name]

    async def _ask(self, instance_id: str, document: bytes) -> SignedIdentity:
        key = (instance_id, document)
        task = self._asking.get(key)
        if task is None:
            task = self._asking[key] = asyncio.create_task(self._fetch(instance_id, document))
            task.add_done_callback(lambda done: self._done(key, done))
        try:
            signed = await asyncio.wait_for(asyncio.shield(task), self._wait)
        except TimeoutError:
            raise Unavailable("the cloud did not sign in time") from None
        if signed is None:
            raise Refused(instance_id)
        return signed

    def _done(self, key: tuple[str, bytes], task: asyncio.Task) -> None:
        self._asking.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: its waiters may all have given up

    async def _fetch(self, instance_id: str, document: bytes) -> SignedIdentity | None:
        signed = await self._signing(instance_id, document)
        if signed is None:
            self._kept.pop(instance_id, None)
            return None
        if signed.document != document:
            log.warning("%s: the cloud signed another identity document than served", instance_id)
            raise Unavailable("the cloud signed another document")
        self._kept[instance_id] = signed
        self._kept.move_to_end(instance_id)
        while len(self._kept) > self._keep:
            self._kept.popitem(last=False)
        return signed
