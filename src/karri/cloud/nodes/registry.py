"""The nodes of the cloud: one-time join tokens, joining, heartbeats, and each node's state
as Eucalyptus named them (ENABLED, DISABLED, BROKEN; NOTREADY until a first heartbeat).

A token is ``<id>.<secret>.<CA hash>``: the id finds it, the secret (kept as a SHA-256)
proves it, and the hash of the node CA lets the joining node check the cloud it reaches.
It is used once and lasts an hour. A node is known afterwards by its certificate's serial
only: removing a node forgets the serial, and its certificate gets nothing any more.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from karri.cloud.nodes.ca import BadRequest, NodeCA
from karri.cloud.nodes.models import JoinToken, NodeRow
from karri.db.engine import Database
from karri.pki import GATEWAY_NAME, parse_join_token

TOKEN_TTL = timedelta(hours=1)
MISSED_BEATS = 3  # heartbeats missed in a row before a node is BROKEN
NODE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

Clock = Callable[[], datetime]


class JoinRefused(Exception):
    """The join cannot be granted: the message says why (never which part of a token)."""


class UnknownNode(Exception):
    """A certificate the cloud does not (or no longer) know."""


@dataclass(frozen=True)
class NodeView:
    name: str
    zone: str
    state: str  # ENABLED, DISABLED, BROKEN, NOTREADY
    vcpus: int
    memory_mib: int
    joined_at: datetime
    last_seen: datetime | None
    agent_url: str | None = None  # where its agent answers the cloud (its heartbeats say)


def state_of(row: NodeRow, now: datetime) -> str:
    """The node's state at ``now``: BROKEN once ``MISSED_BEATS`` heartbeats were missed,
    disabled or not (what was observed wins over what the admin asked: the instances of a
    dead node are impaired, and it can be evacuated, whatever it was set to)."""
    missed = row.last_seen is not None and (
        now - row.last_seen > timedelta(seconds=MISSED_BEATS * row.interval)
    )
    if missed:
        return "BROKEN"
    if not row.enabled:
        return "DISABLED"
    return "NOTREADY" if row.last_seen is None else "ENABLED"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class Nodes:
    def __init__(
        self, db: Database, ca: NodeCA, zones: Collection[str], clock: Clock = _now
    ) -> None:
        self.db = db
        self.ca = ca
        self.zones = tuple(zones)
        self.clock = clock

    def new_token(self, ttl: timedelta = TOKEN_TTL) -> str:
        token_id, secret = secrets.token_hex(3), secrets.token_hex(16)
        with self.db.write_session() as session:
            while session.get(JoinToken, token_id) is not None:
                token_id = secrets.token_hex(3)
            session.add(
                JoinToken(id=token_id, secret_sha256=_digest(secret), expires_at=self.clock() + ttl)
            )
        return f"{token_id}.{secret}.{self.ca.fingerprint}"

    def join(self, token: str, name: str, zone: str | None, csr_pem: bytes) -> bytes:
        """The node's certificate (PEM), once: the token is spent by this join."""
        if not NODE_NAME.match(name):
            raise JoinRefused("a node name is 1 to 63 lowercase letters, digits or hyphens")
        if name == GATEWAY_NAME:  # its certificate would pass for the cloud's gateway
            raise JoinRefused(f"{name} is the cloud's own name")
        zone = zone or self.zones[0]
        if zone not in self.zones:
            raise JoinRefused(f"no such zone: {zone}")
        try:
            token_id, secret, ca_hash = parse_join_token(token)
        except ValueError:
            raise JoinRefused("the token is not valid") from None
        if not hmac.compare_digest(ca_hash, self.ca.fingerprint):
            raise JoinRefused("the token is not valid (it names another CA)")
        with self.db.write_session() as session:
            row = session.get(JoinToken, token_id)
            valid = (
                row is not None
                and hmac.compare_digest(row.secret_sha256, _digest(secret))
                and row.used_by is None
                and row.expires_at > self.clock()
            )
            if not valid:
                raise JoinRefused("the token is not valid (unknown, used or expired)")
            if session.get(NodeRow, name) is not None:
                raise JoinRefused(f"a node named {name} has joined already: remove it first")
            try:
                cert, serial = self.ca.issue(csr_pem, name)
            except BadRequest as error:
                raise JoinRefused(str(error)) from None
            assert row is not None
            row.used_by = name
            session.add(NodeRow(name=name, zone=zone, serial=serial, joined_at=self.clock()))
        return cert

    def heartbeat(
        self,
        name: str,
        serial: str,
        *,
        vcpus: int,
        memory_mib: int,
        interval: float,
        agent_url: str | None = None,
    ) -> None:
        """What the node observed of its host, now (``interval``: when the next comes;
        ``agent_url``: where its agent answers, if it said)."""
        with self.db.write_session() as session:
            row = self._known(session, name, serial)
            row.last_seen = self.clock()
            row.vcpus, row.memory_mib = vcpus, memory_mib
            row.interval = interval
            if agent_url is not None and row.agent_url != agent_url:
                row.agent_url = agent_url

    def known(self, name: str, serial: str) -> bool:
        """Whether the certificate (its subject's name and serial) is a current node's."""
        with self.db.session() as session:
            row = session.get(NodeRow, name)
            return row is not None and hmac.compare_digest(row.serial, serial)

    def _known(self, session, name: str, serial: str) -> NodeRow:
        row = session.get(NodeRow, name)
        if row is None or not hmac.compare_digest(row.serial, serial):
            raise UnknownNode(name)
        return row

    def list(self) -> list[NodeView]:
        with self.db.session() as session:
            rows = session.scalars(select(NodeRow).order_by(NodeRow.name))
            return [self._view(row) for row in rows]

    def _view(self, row: NodeRow) -> NodeView:
        return NodeView(
            row.name,
            row.zone,
            state_of(row, self.clock()),
            row.vcpus,
            row.memory_mib,
            row.joined_at,
            row.last_seen,
            row.agent_url,
        )

    def set_enabled(self, name: str, enabled: bool) -> None:
        with self.db.write_session() as session:
            row = session.get(NodeRow, name)
            if row is None:
                raise UnknownNode(name)
            row.enabled = enabled

    def remove(self, name: str) -> None:
        """Forget the node: its certificate gets nothing from now on."""
        with self.db.write_session() as session:
            row = session.get(NodeRow, name)
            if row is None:
                raise UnknownNode(name)
            session.delete(row)
