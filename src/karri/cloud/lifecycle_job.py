"""The lifecycle job of `karri up`: Walrus's lifecycle rules applied once an hour (S3
does it daily), on one thread of the one process that runs background work (the S3
worker processes never start it). ``karri lifecycle run`` runs a pass on demand, as of
any time: that is how tests drive its clock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

log = logging.getLogger("karri.lifecycle")

INTERVAL = 3600.0  # seconds between passes
FIRST_PASS = 60.0  # after start: let the cloud settle first

ApplyLifecycle = Callable[[datetime], dict[str, int]]


class LifecycleJob:
    def __init__(self, apply: ApplyLifecycle, interval: float = INTERVAL) -> None:
        self._apply = apply
        self._interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lifecycle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        wait = min(FIRST_PASS, self._interval)
        while not self._stopping.wait(wait):
            try:
                self._apply(datetime.now(UTC))
            except Exception:  # a failed pass is logged; the next one tries again
                log.exception("lifecycle pass failed")
            wait = self._interval
