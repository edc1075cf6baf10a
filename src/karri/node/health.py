"""What the node has seen of each guest, and the status checks that follow from it.

Nothing here is what the node asked for: a guest is ``initializing`` until it shows life
on its network (a DHCP request in dnsmasq's log, an answer to an ARP request, a request to
the metadata service), ``ok`` while it keeps answering ARP, and ``impaired`` after a
panic (pvpanic), when it stops answering, or when it never showed life within a bound.
The system check (QEMU and the accelerator) is the node's, from the process and QMP.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from karri.node.spec import Check

UNANSWERED_LIMIT = 4
"""ARP requests a guest that showed life may leave unanswered in a row before it is
impaired (with the node's 2 s interval: 6-8 s)."""

_DHCP = re.compile(rb"DHCP(?:DISCOVER|REQUEST)\([^)]*\)\s+(?:[\d.]+\s+)?([0-9a-f:]{17})")


@dataclass
class Evidence:
    """One guest since its last (re)start (launch, relaunch, reset)."""

    since: float
    """Unix time of that (re)start."""
    console_at_start: int
    alive_at: float | None = None
    how: str = ""
    answered: bool = False
    unanswered: int = 0
    last_answer_at: float | None = None
    panicked_at: float | None = None


class HealthBook:
    """The evidence of every live guest of the node, by instance id."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._evidence: dict[str, Evidence] = {}

    def restarted(self, instance_id: str, console_size: int = 0) -> None:
        self._evidence[instance_id] = Evidence(self._clock(), console_size)

    def forget(self, instance_id: str) -> None:
        self._evidence.pop(instance_id, None)

    def get(self, instance_id: str) -> Evidence | None:
        return self._evidence.get(instance_id)

    def sign_of_life(self, instance_id: str, how: str) -> None:
        evidence = self._evidence.get(instance_id)
        if evidence is not None and evidence.alive_at is None:
            evidence.alive_at, evidence.how = self._clock(), how
            evidence.unanswered = 0  # requests sent while it booted do not count

    def probed(self, instance_id: str) -> None:
        evidence = self._evidence.get(instance_id)
        if evidence is not None:
            evidence.unanswered += 1

    def answered(self, instance_id: str) -> None:
        evidence = self._evidence.get(instance_id)
        if evidence is not None:
            self.sign_of_life(instance_id, "answered ARP")
            evidence.answered, evidence.unanswered = True, 0
            evidence.last_answer_at = self._clock()

    def panicked(self, instance_id: str) -> None:
        evidence = self._evidence.get(instance_id)
        if evidence is not None and evidence.panicked_at is None:
            evidence.panicked_at = self._clock()

    def instance_check(self, instance_id: str, life_bound: float) -> Check:
        """The guest's own status check (AWS's instance status ``reachability``)."""
        e = self._evidence.get(instance_id)
        if e is None:
            return Check("initializing", "not started yet")
        if e.panicked_at is not None:
            return Check("impaired", "the guest kernel panicked", e.panicked_at)
        if e.alive_at is not None and e.unanswered >= UNANSWERED_LIMIT:
            verb = "stopped answering" if e.answered else "does not answer"
            return Check(
                "impaired",
                f"the guest {verb} ARP ({e.unanswered} requests unanswered)",
                e.last_answer_at or e.alive_at,
            )
        if e.alive_at is None:
            if self._clock() - e.since > life_bound:
                return Check(
                    "impaired",
                    f"no sign of life on the network {life_bound:g}s after its start",
                    e.since + life_bound,
                )
            return Check("initializing", "no sign of life on the network yet")
        return Check("ok", e.how)


class DhcpLog:
    """The MACs that sent a DHCP request since the last read of dnsmasq's log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = _size(path)

    def requests(self) -> set[str]:
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, 2)
                if size < self._offset:  # a new log (dnsmasq restarted and truncated it)
                    self._offset = 0
                f.seek(self._offset)
                data = f.read(size - self._offset)
        except OSError:
            return set()
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        self._offset += end
        return {m.group(1).decode() for m in _DHCP.finditer(data[:end])}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
