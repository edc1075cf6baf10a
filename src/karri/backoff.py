"""Trying again later, and later each time, what keeps failing (background jobs that
would otherwise run again at once and flood the log)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Backoff:
    """When to try again what keeps failing: ``first`` seconds after the first failure,
    twice as long after each further one, at most ``most``; a success forgets it."""

    def __init__(
        self, first: float, most: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.first, self.most, self.clock = first, most, clock
        self._failing: dict[str, tuple[int, float]] = {}  # key -> (failures, not before)

    def record(self, key: str, *, failed: bool) -> float | None:
        """Note how the work ended; after a failure, returns the seconds it now waits."""
        if not failed:
            self._failing.pop(key, None)
            return None
        failures = self._failing.get(key, (0, 0.0))[0] + 1
        delay = min(self.most, self.first * 2 ** (failures - 1))
        self._failing[key] = (failures, self.clock() + delay)
        return delay

    def waiting(self, key: str) -> bool:
        return self.clock() < self._failing.get(key, (0, 0.0))[1]
