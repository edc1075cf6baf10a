"""Background work on images, on the background-work engine (``karri.cloud.converge``).

API calls record intent (an image ``pending``, an import task ``active``) and return at
once; the engine's threads do the long part, one job per image or task. Work that a stop
interrupted is found in the database at the next start (``Images.resume``, the images'
scan) and starts over (writes are temporary until committed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator

from karri.cloud.converge import Converger, Job, ThreadWork

log = logging.getLogger("karri.images")


Waiting = Callable[[], Iterable[tuple[str, Callable[[], None]]]]
"""The work the database holds (name, job): what the pipeline's scan finds."""


class Pipeline:
    """Runs only once started (the front end that leads the background work,
    ``cloud/leadership.py``): before, ``submit`` leaves the work to the database, where
    ``waiting`` (scanned every few seconds once started) finds it."""

    def __init__(self, workers: int = 2, waiting: Waiting | None = None) -> None:
        self._waiting = waiting
        self._started = False
        self._jobs = Converger(
            log, "karri-images", threads=workers, scan=self._scan if waiting else None
        )

    def start(self) -> None:
        self._started = True
        self._jobs.start()

    def submit(self, name: str, job: Callable[[], None]) -> None:
        """Queue ``job`` unless a job of that name is queued or running already (or the
        pipeline is not started: the leader's scan finds the work)."""
        if self._started:
            self._jobs.submit(_job(name, job))

    def busy(self, name: str) -> bool:
        return self._jobs.busy(name)

    def _scan(self) -> Iterator[Job[ThreadWork]]:
        assert self._waiting is not None
        for name, job in self._waiting():
            yield _job(name, job)


def _job(name: str, job: Callable[[], None]) -> Job[ThreadWork]:
    def work(_cancel: threading.Event) -> None:
        job()

    return Job(name, work)
