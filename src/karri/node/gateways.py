"""The cloud's gateways as a joined node knows them: the one it talks to and the others.

Every front end with a node port serves a gateway (``cloud/nodes/gateways.py`` keeps the
live ones); each heartbeat's answer lists them, and ``Gateways.learn`` keeps the list in
``node.json`` beside the gateway that answers. A call (``Gateways.call``, heartbeats
and ``CloudLink``'s reports alike) goes to the gateway that answered last and, when it
cannot be reached (refused, timed out, TLS failed), to the next one, which it then
sticks with. An answer, even a refusal, is the cloud's word: it is not asked again
elsewhere. Every gateway is checked by the cloud CA and the gateway's own name
(``pki.GATEWAY_NAME``), so a URL in the list reaches nothing but the cloud.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import httpx

log = logging.getLogger("karri.node")

MAX_GATEWAYS = 32  # more in an answer is nonsense
MAX_URL = 255
CONNECT_TIMEOUT = 3.0  # a gateway that takes no connection within it: the next one
Answer = TypeVar("Answer")
UNREACHABLE = (httpx.TransportError, OSError)  # what makes a node try the next gateway


def valid_gateway(url: object) -> bool:
    return isinstance(url, str) and url.startswith("https://") and len(url) <= MAX_URL


def gateway_timeout(seconds: float) -> httpx.Timeout:
    """``seconds`` for an answer, at most ``CONNECT_TIMEOUT`` for the connection."""
    return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT))


class Gateways:
    """The gateway in use first, then the others (thread-safe: heartbeats run in a
    thread, reports on the agent's loop); ``save`` is told each change."""

    def __init__(
        self,
        current: str,
        others: Iterable[str] = (),
        save: Callable[[str, tuple[str, ...]], None] | None = None,
    ) -> None:
        self._current = current.rstrip("/")
        self._known = self._listed(others)
        self._save = save
        self._lock = threading.Lock()
        self._saving = threading.Lock()  # one save at a time, of the latest state

    @property
    def current(self) -> str:
        return self._current

    @property
    def known(self) -> tuple[str, ...]:
        """Every gateway known, the one in use first."""
        with self._lock:
            return self._order()

    def _order(self) -> tuple[str, ...]:
        """The one in use, then those after it in the list, then those before it."""
        known = self._known
        if self._current in known:
            at = known.index(self._current)
            return (self._current, *known[at + 1 :], *known[:at])
        return (self._current, *known)

    @staticmethod
    def _listed(urls: Iterable[str]) -> tuple[str, ...]:
        listed = dict.fromkeys(u.rstrip("/") for u in urls if valid_gateway(u))
        return tuple(listed)[:MAX_GATEWAYS]

    def learn(self, urls: object) -> None:
        """The live gateways as a gateway listed them (ignored unless a list of URLs)."""
        if not isinstance(urls, list) or not urls or len(urls) > MAX_GATEWAYS:
            return
        listed = self._listed(urls)
        with self._lock:
            if not listed or listed == self._known:
                return
            self._known = listed
        self._saved()

    def _answered(self, url: str) -> None:
        with self._lock:
            if url == self._current:
                return
            log.warning("the gateway %s answers now, in place of %s", url, self._current)
            self._current = url
        self._saved()

    def _saved(self) -> None:
        if self._save is None:
            return
        with self._saving:
            with self._lock:
                current, known = self._current, self._known
            try:
                self._save(current, known)
            except OSError as error:
                log.warning("cannot keep the gateways in node.json: %s", error)

    def call(self, request: Callable[[str], Answer]) -> Answer:
        """``request(gateway)``'s answer from the first gateway that can be reached
        (blocking); the last one's error when none can."""
        failure: BaseException | None = None
        for url in self.known:
            try:
                answer = request(url)
            except UNREACHABLE as error:
                failure = self._unreachable(url, error)
                continue
            self._answered(url)
            return answer
        assert failure is not None
        raise failure

    async def acall(self, request: Callable[[str], Awaitable[Answer]]) -> Answer:
        """``call`` for a coroutine."""
        failure: BaseException | None = None
        for url in self.known:
            try:
                answer = await request(url)
            except UNREACHABLE as error:
                failure = self._unreachable(url, error)
                continue
            self._answered(url)
            return answer
        assert failure is not None
        raise failure

    @staticmethod
    def _unreachable(url: str, error: BaseException) -> BaseException:
        log.info("the gateway %s cannot be reached: %r", url, error)
        return error
