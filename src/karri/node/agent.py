"""The node agent: the node contract served to the cloud over the network (issue 19).

Each method of the contract is ``POST /v1/<method>`` with its arguments as a JSON object
(``codec``); the answer is ``{"answer": ...}``, a ``NodeError`` is 409 with the error by
its class name (``codec.encode_error``), a request the codec refuses is 400. ``POST
/v1/attributes`` answers the contract's data attributes (``accelerator``, ...). TLS (the
node's own certificate, ``karri node``) requires a certificate of the node CA, and the
agent answers only the one whose subject is the cloud's (``pki.CLOUD_SUBJECT``): another
node's certificate, of the same CA, gets 403.

The contract (the protocol naming the methods) is passed in: it is the cloud's
(``NodeDriver``), declared above this package.

``start`` starts the node once, whoever asks first (``karri node`` starts it before it
serves, so that a restarted agent's node runs before a cloud that kept its connection
calls it): the first ``start`` the cloud sends answers that start's report, every later
one (a cloud that restarted, or reconnected) an empty report, as the node was started
already (the cloud asks ``info`` about the instances it expected and was not told of).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from karri.node.codec import (
    CodecError,
    contract_attributes,
    contract_methods,
    decode_arguments,
    encode,
    encode_error,
    parse_json,
    signature_hints,
)
from karri.node.errors import NodeError
from karri.node.spec import AdoptReport
from karri.pki import CLOUD_SUBJECT, subject_of
from karri.serving import closing_answer

log = logging.getLogger("karri.node.agent")

MAX_BODY = 8 * 1024 * 1024  # a VPC's every security group, say
ATTRIBUTES = "attributes"


def refusal(code: str, message: str) -> bytes:
    """The agent's answer to a request refused by the HTTP layer."""
    body = json.dumps({"refused": f"{code}: {message}"}).encode()
    return closing_answer(400, "Bad Request", {"content-type": "application/json"}, body)


def from_cloud(request: Request) -> bool:
    """Whether the caller's certificate (verified by TLS against the node CA) is the
    cloud's."""
    chain = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_chain")
    return bool(chain) and subject_of(chain[0]) == CLOUD_SUBJECT


def _refused(status: int, message: str) -> JSONResponse:
    return JSONResponse({"refused": message}, status_code=status)


async def _body(request: Request) -> Any:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ValueError("the request is too large")
    return parse_json(bytes(body) or b"{}")


class Starts:
    """The node's one start, and its report told once."""

    def __init__(self, node: Any, report: AdoptReport | None = None) -> None:
        self.node = node
        self.report = report  # None: not started yet
        self.told = False
        self.lock = asyncio.Lock()

    async def start(self) -> AdoptReport:
        async with self.lock:
            if self.report is None:
                self.report = await self.node.start()
            if self.told:
                return AdoptReport()
            self.told = True
            return self.report


def agent_app(node: Any, contract: type, started: AdoptReport | None = None) -> Starlette:
    """Serve ``node`` (a ``Node`` or ``FakeNode``) by ``contract``'s methods
    (``started``: the report of the node's start, if it was started already)."""
    methods = contract_methods(contract)
    attributes = contract_attributes(contract)
    starts = Starts(node, started)

    async def call(request: Request) -> JSONResponse:
        if not from_cloud(request):
            return _refused(403, "only the cloud's certificate is answered")
        name = request.path_params["method"]
        if name == ATTRIBUTES:
            return JSONResponse(
                {"answer": {n: encode(getattr(node, n), h) for n, h in attributes.items()}}
            )
        declared = methods.get(name)
        if declared is None:
            return _refused(404, f"the node contract has no method {name!r}")
        try:
            arguments = decode_arguments(declared, await _body(request))
        except (ValueError, CodecError) as error:  # CodecError is a ValueError
            return _refused(400, str(error))
        try:
            answer = starts.start() if name == "start" else getattr(node, name)(**arguments)
            if inspect.isawaitable(answer):
                answer = await answer
            return JSONResponse({"answer": encode(answer, signature_hints(declared)[1])})
        except NodeError as error:
            return JSONResponse(encode_error(error), status_code=409)
        except Exception as error:  # a fault of the node's, not the caller's
            log.exception("%s failed", name)
            return _refused(500, f"the node failed: {type(error).__name__}")

    return Starlette(routes=[Route("/v1/{method}", call, methods=["POST"])])
