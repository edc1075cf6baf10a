"""A node on another host joining the cloud, and telling it, from then on, that it lives.

``join`` sends the cloud a certificate request with a one-time token and keeps what comes
back in the node's data dir: its key (never sent), its certificate, the node CA and where
the cloud's gateways are (``node.json``). The answer travels in clear, so the node checks
that the CA it got is the one the token names. ``Heartbeats`` then reaches a gateway
over mutual TLS (checked by the gateway's own name, ``pki.GATEWAY_NAME``, which no node
holds) every ``interval`` with what the node observed of its host, and learns from its
answer which gateways live (``node/gateways.py``: the next is tried when one cannot be
reached).
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import httpx

from karri.node.gateways import Gateways, gateway_timeout
from karri.pki import (
    GATEWAY_NAME,
    client_context,
    csr_for,
    fingerprint,
    key_pem,
    new_key,
    parse_join_token,
    write_file,
)

log = logging.getLogger("karri.node")

MEMBERSHIP = "node.json"
KEY, CERT, CA = "node.key", "node.pem", "node-ca.pem"
NBD_TLS = "nbd-tls"
TIMEOUT = 10.0


class JoinError(Exception):
    """The node could not join (the message says why)."""


@dataclass(frozen=True)
class Membership:
    """What a joined node knows of its cloud (``node.json`` in its data dir)."""

    name: str
    zone: str | None
    gateway: str  # https://host:port: the one that answered last
    gateways: tuple[str, ...] = ()  # every live one, as the last heartbeat's answer listed

    @classmethod
    def load(cls, data_dir: Path) -> Membership | None:
        """The membership kept in ``data_dir`` (a file from before ``gateways``: none)."""
        try:
            given = json.loads((data_dir / MEMBERSHIP).read_text())
            return cls(**given | {"gateways": tuple(given.get("gateways", ()))})
        except (OSError, ValueError, TypeError):
            return None

    def save(self, data_dir: Path) -> None:
        write_file(data_dir / MEMBERSHIP, json.dumps(asdict(self)).encode(), 0o644)

    def reached(self, data_dir: Path) -> Gateways:
        """Its gateways, each change kept in ``data_dir``'s ``node.json``."""

        def save(current: str, known: tuple[str, ...]) -> None:
            replace(self, gateway=current, gateways=known).save(data_dir)

        return Gateways(self.gateway, self.gateways, save)


def join(data_dir: Path, cloud_url: str, token: str, name: str, zone: str | None) -> Membership:
    try:
        _id, _secret, ca_hash = parse_join_token(token)
    except ValueError as error:
        raise JoinError(str(error)) from None
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = new_key()
    body = json.dumps(
        {"token": token, "name": name, "zone": zone, "csr": csr_for(key, name).decode()}
    ).encode()
    request = urllib.request.Request(
        cloud_url.rstrip("/") + "/karri/nodes/join",
        data=body,
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
            answer = json.loads(reply.read(1 << 20))
    except urllib.error.HTTPError as error:
        raise JoinError(f"the cloud refused: {_reason(error)}") from None
    except (OSError, ValueError) as error:
        raise JoinError(f"cannot reach the cloud at {cloud_url}: {error}") from None
    try:
        ca, cert, gateway = (str(answer[k]).encode() for k in ("ca", "certificate", "gateway"))
    except (KeyError, TypeError):
        raise JoinError("the cloud's answer is not a join answer") from None
    if fingerprint(ca) != ca_hash:
        raise JoinError("the cloud's CA is not the one the token names: not joining")
    write_file(data_dir / KEY, key_pem(key), 0o600)
    write_file(data_dir / CERT, cert, 0o644)
    write_file(data_dir / CA, ca, 0o644)
    nbd_tls_files(data_dir)
    membership = Membership(name, zone, gateway.decode())
    membership.save(data_dir)
    return membership


def nbd_tls_files(data_dir: Path) -> Path:
    """The joined node's key, certificate and the node CA in QEMU's ``tls-creds-x509``
    layout (``NodeSettings.nbd_tls``: volumes exported to this node over NBD)."""
    directory = data_dir / NBD_TLS
    directory.mkdir(mode=0o700, exist_ok=True)
    for source, name, mode in (
        (CA, "ca-cert.pem", 0o644),
        (CERT, "client-cert.pem", 0o644),
        (KEY, "client-key.pem", 0o600),
    ):
        write_file(directory / name, (data_dir / source).read_bytes(), mode)
    return directory


def _reason(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read(1 << 16))["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return f"HTTP {error.code}"


def tls(data_dir: Path) -> ssl.SSLContext:
    """The node's mutual TLS toward its cloud (and only its cloud's CA trusted)."""
    return client_context(data_dir / CA, data_dir / CERT, data_dir / KEY)


def host_memory_mib() -> int:
    """MemTotal of /proc/meminfo, in MiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


class Heartbeats:
    """Tells the gateway every ``interval`` seconds what this host has, until ``stop``."""

    def __init__(
        self,
        data_dir: Path,
        gateways: Gateways,
        interval: float = 10.0,
        agent: tuple[str | None, int] | None = None,
    ) -> None:
        """``agent``: where the node's agent listens (host None: every address, so the
        cloud reaches it at the address the heartbeats come from), told in each beat."""
        self.gateways = gateways
        self.interval = interval
        self.agent = agent
        self.context = tls(data_dir)
        self._stop = threading.Event()

    def beat(self) -> None:
        """One heartbeat (raises ``httpx.HTTPError`` when it does not get through)."""
        body: dict[str, object] = {
            "vcpus": os.cpu_count() or 1,
            "memory_mib": host_memory_mib(),
            "interval": self.interval,
        }
        if self.agent is not None:
            body["agent"] = {"host": self.agent[0], "port": self.agent[1]}
        with httpx.Client(verify=self.context, timeout=gateway_timeout(TIMEOUT)) as client:

            def send(gateway: str) -> httpx.Response:
                return client.post(
                    gateway + "/v1/heartbeat",
                    json=body,
                    extensions={"sni_hostname": GATEWAY_NAME},  # the gateway's, not a node's
                )

            reply = self.gateways.call(send)
            reply.raise_for_status()
        try:
            answer = reply.json()
        except ValueError:
            return
        if isinstance(answer, dict):
            self.gateways.learn(answer.get("gateways"))

    def run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.beat()
                if failing:
                    log.info("heartbeats reach the cloud again")
                failing = False
            except httpx.HTTPError as error:
                if not failing:
                    log.warning("heartbeat to %s failed: %s", self.gateways.current, error)
                failing = True
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
