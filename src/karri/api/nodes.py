"""What nodes say to the cloud, in JSON: joining (on the EC2 port, in clear: the token
proves the node, the CA hash in it lets the node check the answer) and, on the node
gateway (TLS, the node's certificate required), heartbeats (answered with the cloud's
live gateways) and ``CloudContract``'s calls (``node/cloudlink.py``: exits, recoveries,
metadata lookups, identity documents signed, Ceph access) through the node codec, each
answered only to a current node (a removed one's serial gets 403) and only about its own
instances (``cloud/nodes/reports.py``, ``cloud/nodes/identity.py``: else 404)."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from cryptography import x509
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from karri.cloud.nodes.ceph import NoCephAccess
from karri.cloud.nodes.identity import IdentitySigning
from karri.cloud.nodes.registry import JoinRefused, Nodes, UnknownNode
from karri.cloud.nodes.reports import NodeReports
from karri.node.cephaccess import CephAccess
from karri.node.cloudlink import CloudContract
from karri.node.codec import CodecError, decode_arguments, encode, parse_json, signature_hints
from karri.pki import common_name_of
from karri.serving import closing_answer

MAX_BODY = 64 * 1024
JOIN_PATH = "/karri/nodes/join"
log = logging.getLogger("karri.nodes")
AGENT_HOST = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")  # a host name or an IPv4/IPv6 address


def refusal(code: str, message: str) -> bytes:
    """The gateway's answer to a request refused by the HTTP layer."""
    body = json.dumps({"error": f"{code}: {message}"}).encode()
    return closing_answer(400, "Bad Request", {"content-type": "application/json"}, body)


def _refused(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    """The request's JSON object (ValueError when it is not one, or too large)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ValueError("the request is too large")
    value = parse_json(body)  # a CodecError is a ValueError
    if not isinstance(value, dict):
        raise ValueError("a JSON object is expected")
    return value


def join_route(nodes: Nodes, gateway_url: str | None) -> Route:
    """``POST /karri/nodes/join`` ``{"token", "name", "zone", "csr"}``: the node's
    certificate, the node CA, and where the gateway is."""

    async def join(request: Request) -> JSONResponse:
        if gateway_url is None:
            return _refused(403, "this cloud takes no nodes (karri up --node-port)")
        try:
            given = await _json(request)
            token, name, csr = (str(given[k]) for k in ("token", "name", "csr"))
            zone = given.get("zone")
        except (ValueError, KeyError, TypeError):
            return _refused(400, "expected a JSON object with token, name, zone and csr")
        try:
            cert = await run_in_threadpool(  # the database and the CA: off the event loop
                nodes.join, token, name, None if zone is None else str(zone), csr.encode()
            )
        except JoinRefused as error:
            return _refused(403, str(error))
        body = {"certificate": cert.decode(), "ca": nodes.ca.pem.decode(), "gateway": gateway_url}
        return JSONResponse(body)

    return Route(JOIN_PATH, join, methods=["POST"])


def peer(request: Request) -> tuple[str, str] | None:
    """The calling node's name and certificate serial, from its TLS certificate."""
    chain = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_chain")
    if not chain:
        return None
    cert = x509.load_pem_x509_certificate(chain[0].encode())
    return common_name_of(cert.subject), format(cert.serial_number, "x")


def agent_url(request: Request, agent: Any) -> str | None:
    """Where the node's agent answers: ``{"port": P, "host": H}`` from its heartbeat; a
    node listening on every address (no host) is reached at the address it calls from."""
    if agent is None:
        return None
    if not isinstance(agent, dict):
        raise ValueError("agent: an object")
    port, host = int(agent["port"]), agent.get("host")
    if not 0 < port < 65536:
        raise ValueError("agent: a port")
    if host is None:
        host = request.client.host if request.client else None
    if not isinstance(host, str) or not AGENT_HOST.match(host):
        raise ValueError("agent: a host")
    return f"https://{f'[{host}]' if ':' in host else host}:{port}"


def gateway_app(
    nodes: Nodes,
    reports: NodeReports,
    ceph: Callable[[], CephAccess | None] = lambda: None,
    gateways: Callable[[], list[str]] = list,
    identity: IdentitySigning | None = None,
) -> Starlette:
    """The node gateway: TLS requires a certificate of the node CA; the registry decides
    whether it still names a node. ``ceph``: how nodes reach the Ceph cluster of the
    cloud's volumes (blocking; None: volumes are not on Ceph). ``gateways``: the live
    gateways' URLs, told in each heartbeat's answer (blocking). ``identity``: signs the
    identity documents of a node's instances (None: refused, 404)."""

    async def heartbeat(request: Request) -> JSONResponse:
        caller = peer(request)
        if caller is None:
            return _refused(401, "a node certificate is required")
        try:
            given = await _json(request)
            vcpus, memory = int(given["vcpus"]), int(given["memory_mib"])
            interval = float(given["interval"])
            if vcpus < 0 or memory < 0 or not 0.1 <= interval <= 3600:
                raise ValueError("out of range")
            agent = agent_url(request, given.get("agent"))
        except (ValueError, KeyError, TypeError):
            return _refused(400, "expected vcpus, memory_mib, interval (and agent)")
        try:
            await run_in_threadpool(
                nodes.heartbeat,
                *caller,
                vcpus=vcpus,
                memory_mib=memory,
                interval=interval,
                agent_url=agent,
            )
        except UnknownNode:
            return _refused(403, NOT_A_NODE)
        return JSONResponse({"ok": True, "gateways": await run_in_threadpool(gateways)})

    async def report(request: Request, method: str) -> JSONResponse:
        caller = peer(request)
        if caller is None:
            return _refused(401, "a node certificate is required")
        if not await run_in_threadpool(nodes.known, *caller):
            return _refused(403, NOT_A_NODE)
        declared = getattr(CloudContract, method)
        try:
            given = decode_arguments(declared, await _json(request))
        except (ValueError, CodecError) as error:
            return _refused(400, str(error))
        node = caller[0]
        if method == "ceph":
            try:
                answer, taken = await run_in_threadpool(ceph), True
            except NoCephAccess as error:
                log.warning("Ceph access for node %s: %s", node, error)
                return _refused(503, f"the cloud cannot hand out its Ceph access: {error}")
        elif method == "metadata":
            answer = await reports.lookup(node, given["instance_id"])
            taken = answer is not None
        elif method == "sign_identity":
            answer = None if identity is None else await identity.sign(node, given["instance_id"])
            taken = answer is not None
        elif method == "exit":
            answer, taken = None, await reports.exit(node, given["report"])
        else:
            answer = None
            taken = await reports.recovery(node, given["instance_id"], given["event"])
        if not taken:
            return _refused(404, "no such instance on this node")
        return JSONResponse({"answer": encode(answer, signature_hints(declared)[1])})

    return Starlette(
        routes=[
            Route("/v1/heartbeat", heartbeat, methods=["POST"]),
            *(
                Route(f"/v1/{method}", functools.partial(report, method=method), methods=["POST"])
                for method in ("metadata", "sign_identity", "exit", "recovery", "ceph")
            ),
        ]
    )


NOT_A_NODE = "this certificate names no node of this cloud"
