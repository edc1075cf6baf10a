"""Background work on images: a few daemon threads fed by a queue.

API calls record intent (an image ``pending``, an import task ``active``) and return at
once; the workers do the long part. Work that a stop interrupted is queued again on the
next start, from the database, and starts over (writes are temporary until committed).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger("karri.images")

Job = Callable[[], None]


class Pipeline:
    def __init__(self, workers: int = 2) -> None:
        self._queue: queue.Queue[tuple[str, Job]] = queue.Queue()
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._queued: set[str] = set()

    def submit(self, name: str, job: Job) -> None:
        """Queue ``job`` unless a job of that name is queued or running already."""
        with self._lock:
            if name in self._queued:
                return
            self._queued.add(name)
            if not self._threads:
                for index in range(self._workers):
                    thread = threading.Thread(
                        target=self._run, name=f"karri-images-{index}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
        self._queue.put((name, job))

    def busy(self, name: str) -> bool:
        with self._lock:
            return name in self._queued

    def _run(self) -> None:
        while True:
            name, job = self._queue.get()
            try:
                job()
            except Exception:
                log.exception("image job %s failed", name)
            finally:
                with self._lock:
                    self._queued.discard(name)
