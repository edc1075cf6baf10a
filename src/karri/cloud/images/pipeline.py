"""Background work on images, on the background-work engine (``karri.cloud.converge``).

API calls record intent (an image ``pending``, an import task ``active``) and return at
once; the engine's threads do the long part, one job per image or task. Work that a stop
interrupted is found in the database at the next start (``Images.resume``, the images'
scan) and starts over (writes are temporary until committed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from karri.cloud.converge import Converger, Job

log = logging.getLogger("karri.images")


class Pipeline:
    def __init__(self, workers: int = 2) -> None:
        self._jobs = Converger(log, "karri-images", threads=workers)

    def submit(self, name: str, job: Callable[[], None]) -> None:
        """Queue ``job`` unless a job of that name is queued or running already."""

        def work(_cancel: threading.Event) -> None:
            job()

        self._jobs.submit(Job(name, work))

    def busy(self, name: str) -> bool:
        return self._jobs.busy(name)
