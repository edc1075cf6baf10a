"""The node's side of the cloud's node gateway, past heartbeats: its guests' ends
(``on_exit``), its own relaunches (``on_recovery``), its metadata service's questions
(``lookup``, ``sign_identity``) and how it reaches the cloud's Ceph cluster
(``ceph_access``), over mutual TLS with the node's certificate, through the node codec.

``CloudContract`` declares the calls (``POST /v1/<method>`` on the gateway, answered
``{"answer": ...}``); the gateway (``api/nodes.py``) decodes them by the same declaration.
Each call goes to the gateway in use, or the next one when it cannot be reached
(``node/gateways.py``). A report is tried a few times and then given up (logged): the
cloud finds the state again when the node is next reconciled. A lookup that fails is no
metadata (None).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, Protocol

import httpx

from karri.node.cephaccess import CephAccess
from karri.node.codec import (
    CodecError,
    decode,
    encode_arguments,
    parse_json,
    signature_hints,
)
from karri.node.gateways import Gateways, gateway_timeout
from karri.node.identity import SignedIdentity
from karri.node.metadata import InstanceMetadata
from karri.node.signedviews import Unavailable
from karri.node.spec import InstanceExit, NodeEvent
from karri.pki import GATEWAY_NAME

log = logging.getLogger("karri.node")

TIMEOUT = 10.0
TRIES = 4  # a report: 0, 1, 2, 4 s apart


class GatewayRefusal(LookupError):
    """The gateway's answer was no (its HTTP status and error)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status


class CloudContract(Protocol):
    """What a node asks of and tells the cloud (the gateway serves it)."""

    async def metadata(self, instance_id: str) -> InstanceMetadata | None: ...
    async def sign_identity(self, instance_id: str) -> SignedIdentity | None:
        """The instance's identity document as the cloud builds it from its records, and
        its signed views (None: not an instance of this node's)."""
        ...

    async def exit(self, report: InstanceExit) -> None: ...
    async def recovery(self, instance_id: str, event: NodeEvent) -> None: ...
    async def ceph(self) -> CephAccess | None:
        """How the node reaches the Ceph cluster of the cloud's volumes (None: they are
        not on Ceph)."""
        ...


class CloudLink:
    """The cloud's ``gateways`` (or the one at ``https://host:port``), reached with ``tls``."""

    def __init__(
        self, gateways: Gateways | str, tls: ssl.SSLContext, timeout: float = TIMEOUT
    ) -> None:
        self.gateways = Gateways(gateways) if isinstance(gateways, str) else gateways
        self.client = httpx.AsyncClient(verify=tls, timeout=gateway_timeout(timeout))
        self._reports: set[asyncio.Task] = set()

    async def _call(self, method: str, **arguments: Any) -> Any:
        """The answer; ``LookupError`` when the cloud refuses, ``OSError``/``httpx``
        errors when it cannot be reached, ``ValueError`` when it answers nonsense."""
        declared = getattr(CloudContract, method)
        body = encode_arguments(declared, arguments)

        async def post(gateway: str) -> httpx.Response:
            return await self.client.post(
                f"{gateway}/v1/{method}",
                json=body,
                extensions={"sni_hostname": GATEWAY_NAME},  # the gateway's name, not a node's
            )

        reply = await self.gateways.acall(post)
        if reply.status_code != 200:
            raise GatewayRefusal(reply.status_code, reply.text[:200])
        body = parse_json(reply.content)
        if not isinstance(body, dict) or set(body) != {"answer"}:
            raise CodecError("not a gateway's answer")
        return decode(body["answer"], signature_hints(declared)[1])

    async def lookup(self, instance_id: str) -> InstanceMetadata | None:
        try:
            return await self._call("metadata", instance_id=instance_id)
        except LookupError:
            return None  # not an instance of this node's (or not any more)
        except (httpx.HTTPError, OSError, ValueError) as error:
            log.warning("metadata of %s: the cloud did not answer: %s", instance_id, error)
            return None

    async def sign_identity(self, instance_id: str) -> SignedIdentity | None:
        """What the cloud signed for the instance (None: it refused); ``Unavailable`` when
        it cannot be reached or answers nonsense."""
        try:
            return await self._call("sign_identity", instance_id=instance_id)
        except GatewayRefusal as refused:
            if refused.status in (403, 404):  # not this node's instance, or not a node
                return None
            raise Unavailable(str(refused)) from refused
        except (httpx.HTTPError, OSError, ValueError) as error:
            raise Unavailable(f"the cloud did not answer: {error}") from error

    async def ceph_access(self) -> CephAccess | None:
        """The cloud's answer to ``ceph``; its refusal (``LookupError``) or the network's
        error when there is none."""
        return await self._call("ceph")

    def on_exit(self, report: InstanceExit) -> None:
        self._send("exit", report=report)

    def on_recovery(self, instance_id: str, event: NodeEvent) -> None:
        self._send("recovery", instance_id=instance_id, event=event)

    def _send(self, method: str, **arguments: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(method, arguments))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _deliver(self, method: str, arguments: dict[str, Any]) -> None:
        for attempt in range(TRIES):
            if attempt:
                await asyncio.sleep(2 ** (attempt - 1))
            try:
                await self._call(method, **arguments)
                return
            except LookupError as refused:
                log.warning("the cloud refused %s %s: %s", method, arguments, refused)
                return
            except (httpx.HTTPError, OSError, ValueError) as error:
                failure = error
        log.warning("%s %s not delivered: %s", method, arguments, failure)

    async def close(self) -> None:
        """Deliver what is being delivered, then close."""
        if self._reports:
            await asyncio.wait(list(self._reports), timeout=TIMEOUT)
        await self.client.aclose()
