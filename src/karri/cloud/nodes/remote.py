"""RemoteNode: the node contract (``NodeDriver``) as calls to a node agent on another host.

Each method of the contract is made from its declaration (so a change to the contract
needs none here): its arguments go through the codec to ``POST /v1/<method>`` on the
agent (``node/agent.py``) and the answer, or the ``NodeError`` the node raised (as its own
class), comes back. The cloud calls with its client certificate
(``NodeCA.cloud_identity``; ``pki.client_context``) and checks that the agent's
certificate is of the node CA and names the node it means to reach (its name, sent as TLS
SNI, against the certificate's DNS name), whatever address it is at. Every call is
bounded in time: a node that does not answer is ``NodeUnreachable`` (a ``NodeError``),
never a hang.

The contract's synchronous methods (``info``, ``health``, ``capacity``, ...) block their
caller (for up to ``timeout`` seconds per read: httpx's bound; the async ones are bounded
as a whole); the data attributes (``accelerator``, ...) are those
the agent reported at ``start`` and at each ``summary``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import ssl
from collections.abc import Callable
from typing import Any

import httpx

from karri.cloud.instances.node_driver import NodeDriver
from karri.node import NodeUnreachable
from karri.node.codec import (
    CodecError,
    contract_attributes,
    contract_methods,
    decode,
    decode_error,
    encode_arguments,
    parse_json,
    signature_hints,
)

CONNECT_TIMEOUT = 5.0
CALL_TIMEOUT = 60.0
# Methods that may take longer on a real node (a backup copies a whole volume)
LONGER = {"start": 300.0, "close": 300.0, "launch": 300.0, "backup_volume": 6 * 3600.0}
MARGIN = 30.0  # beyond a timeout the call itself carries (shutdown's, detach's)


class RemoteNode:
    """The node ``name`` whose agent is at ``url`` (``https://host:port``)."""

    def __init__(
        self, name: str, url: str, tls: ssl.SSLContext, timeout: float = CALL_TIMEOUT
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = min(CONNECT_TIMEOUT, timeout)
        limits = httpx.Timeout(timeout, connect=self.connect_timeout)
        self._sync = httpx.Client(verify=tls, timeout=limits)
        self._async = httpx.AsyncClient(verify=tls, timeout=limits)
        self.accelerator = "unknown"
        self.accelerator_reason = f"node {name}: not reached yet"
        self.last_fault: str | None = None

    def _request(self, method: str, body: Any, timeout: float) -> httpx.Request:
        return self._sync.build_request(
            "POST",
            f"{self.url}/v1/{method}",
            json=body,
            timeout=httpx.Timeout(timeout, connect=self.connect_timeout),
            extensions={"sni_hostname": self.name},
        )

    def _timeout(self, method: str, arguments: dict[str, Any]) -> float:
        given = arguments.get("timeout")
        if isinstance(given, int | float):
            return float(given) + MARGIN
        return LONGER.get(method, self.timeout)

    def call(self, method: str, declared: Any, arguments: dict[str, Any]) -> Any:
        timeout = self._timeout(method, arguments)
        body = encode_arguments(declared, arguments) if declared else {}
        request = self._request(method, body, timeout)
        try:
            reply = self._sync.send(request)
        except httpx.HTTPError as error:
            raise self._unreachable(method, timeout, error) from None
        return self._answer(method, declared, reply)

    async def acall(self, method: str, declared: Any, arguments: dict[str, Any]) -> Any:
        timeout = self._timeout(method, arguments)
        request = self._request(method, encode_arguments(declared, arguments), timeout)
        try:  # httpx bounds each read; this bounds the whole call
            reply = await asyncio.wait_for(
                self._async.send(request), timeout + self.connect_timeout
            )
        except (httpx.HTTPError, TimeoutError) as error:
            raise self._unreachable(method, timeout, error) from None
        return self._answer(method, declared, reply)

    def _unreachable(self, method: str, timeout: float, error: Exception) -> NodeUnreachable:
        if isinstance(error, httpx.TimeoutException | TimeoutError):
            return NodeUnreachable(f"node {self.name}: no answer to {method} in {timeout:g} s")
        return NodeUnreachable(f"node {self.name}: {method}: {str(error) or type(error).__name__}")

    def _answer(self, method: str, declared: Any, reply: httpx.Response) -> Any:
        refused: Any = None
        try:
            body = parse_json(reply.content)
            if reply.status_code == 409:
                failure = decode_error(body)
            elif reply.status_code == 200 and isinstance(body, dict) and set(body) == {"answer"}:
                return decode(body["answer"], signature_hints(declared)[1] if declared else Any)
            elif isinstance(body, dict):
                refused = body.get("refused")
        except ValueError as error:  # a CodecError too
            message = f"node {self.name}: {method}: not an agent's answer: {error}"
            raise NodeUnreachable(message) from None
        if reply.status_code == 409:
            raise failure
        raise NodeUnreachable(f"node {self.name}: {method}: HTTP {reply.status_code}: {refused}")

    def refresh(self) -> None:
        """The agent's data attributes, now."""
        answer = self.call("attributes", None, {})
        for name, hint in contract_attributes(NodeDriver).items():
            try:
                setattr(self, name, decode(answer[name], hint))
            except (KeyError, TypeError, CodecError):
                raise NodeUnreachable(f"node {self.name}: attributes: no {name}") from None

    async def start(self) -> Any:
        report = await self.acall("start", _DECLARED["start"], {})
        self.refresh()
        return report

    def summary(self) -> dict[str, Any]:
        answer = self.call("summary", _DECLARED["summary"], {})
        self.refresh()
        return answer

    async def close(self, stop_instances: bool = False) -> None:
        try:
            await self.acall("close", _DECLARED["close"], {"stop_instances": stop_instances})
        finally:
            await self.disconnect()

    async def disconnect(self) -> None:
        """Drop the connections to the agent (the node itself runs on)."""
        await self._async.aclose()
        self._sync.close()


_DECLARED = contract_methods(NodeDriver)


def _remote(name: str, declared: Callable[..., Any]) -> Callable[..., Any]:
    """``declared``'s method on a ``RemoteNode``: same signature, called on the agent."""
    signature = inspect.signature(declared)

    def arguments(args: tuple, kwargs: dict) -> tuple[RemoteNode, dict[str, Any]]:
        bound = signature.bind(*args, **kwargs)
        given = dict(bound.arguments)
        return given.pop("self"), given

    if inspect.iscoroutinefunction(declared):

        async def method(*args: Any, **kwargs: Any) -> Any:
            node, given = arguments(args, kwargs)
            return await node.acall(name, declared, given)
    else:

        def method(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            node, given = arguments(args, kwargs)
            return node.call(name, declared, given)

    return functools.wraps(declared)(method)


for _name, _declared in _DECLARED.items():
    if _name not in vars(RemoteNode):
        setattr(RemoteNode, _name, _remote(_name, _declared))
