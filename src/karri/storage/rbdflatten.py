"""Clones of EBS's RBD backend made independent of their checkpoint (``rbd flatten``),
in the background: CreateVolume from a snapshot answers with a clone at once, and this
copies the parent's blocks into it afterwards. Which clones are wanted is kept in each
image's metadata (``FLATTEN_KEY``), so that a restart resumes them (``RbdStorage.sweep``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from karri.storage.interface import StorageError

if TYPE_CHECKING:
    from karri.storage.rbd import RbdStorage

log = logging.getLogger("karri.ebs")

FLATTEN_KEY = "karri.flatten"  # image metadata: flatten me (survives a restart)


class Flattener:
    """Clones made independent of their checkpoint, one at a time, in a thread of its
    own; which ones is kept in each image's metadata, so a restart resumes them."""

    def __init__(self, storage: RbdStorage) -> None:
        self.storage = storage
        self._wanted: list[str] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.flattened = 0  # how many so far (for tests and the log)

    def add(self, volume_id: str) -> None:
        with self._cond:
            if volume_id not in self._wanted:
                self._wanted.append(volume_id)
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="rbd-flatten", daemon=True)
                self._thread.start()
            self._cond.notify()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the current flatten; whether the thread ended within ``timeout``."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def wait_idle(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._wanted or self._stopping)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._wanted or self._stopping)
                if self._stopping:
                    return
                volume_id = self._wanted[0]
            try:
                self.flatten_now(volume_id)
            except StorageError as error:
                log.warning("ebs: flattening %s failed (retried at restart): %s", volume_id, error)
            with self._cond:
                self._wanted.remove(volume_id)
                self._cond.notify_all()

    def flatten_now(self, name: str) -> None:
        """Copy the parent's blocks into the image ``name`` (blocking); gone: fine."""
        import rbd

        with self.storage._calls(f"flattening {name}"):
            try:
                with self.storage._image(name, by_id=False) as image:
                    if _has_parent(image):
                        image.flatten()
                    with contextlib.suppress(KeyError):
                        image.metadata_remove(FLATTEN_KEY)
            except rbd.ImageNotFound:
                return
        self.flattened += 1
        log.info("ebs: %s flattened", name)


def _has_parent(image: Any) -> bool:
    import rbd

    try:
        image.parent_info()
    except rbd.ImageNotFound:
        return False
    return True
