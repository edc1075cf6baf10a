"""What every `karri storage migrate` shares: a stopped cloud's data moved to another
backend without losing any: copy, verify, switch, then delete.

A ``BackendMove`` copies everything to the new backend and verifies each copy; only then
does the data dir's ``settings.json`` name the new backend (one atomic rename: the commit
point), and only after that is the old copy removed. A state file in the data dir
remembers the migration until it is done. Killed at any point, the cloud starts on
whichever backend ``settings.json`` names, which holds everything: before the switch the
old one is untouched, after it the new one is complete. Running the same migration again
finishes it (copies again, or only deletes when the switch had happened). Subclasses say
what is moved (Walrus's blobs, EBS's volumes) and how.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from karri.config import save_settings

REPORT_EVERY = 1.0  # seconds between progress lines (the first and last always print)

Report = Callable[[str], None]


class MigrationError(Exception):
    """A migration that cannot go on (the message says why); nothing was switched."""


class Ticker:
    """Whether the ``done``-th of ``total`` steps is worth a progress line: the first,
    the last, and one a ``REPORT_EVERY`` in between."""

    def __init__(self) -> None:
        self._last = 0.0

    def due(self, done: int, total: int) -> bool:
        now = time.monotonic()
        if done in (1, total) or now - self._last >= REPORT_EVERY:
            self._last = now
            return True
        return False


@dataclass
class Progress:
    """How far a migration is (things, say blobs or volumes, and bytes)."""

    objects: int
    total_bytes: int
    unit: str = "blobs"
    done_objects: int = 0
    done_bytes: int = 0

    def line(self, verb: str) -> str:
        return (
            f"{verb} {self.done_objects}/{self.objects} {self.unit}, "
            f"{self.done_bytes}/{self.total_bytes} bytes"
        )


@dataclass(frozen=True)
class Backends:
    """How ``settings.json`` names where one kind of data lives: files in the data dir,
    or a pool of a Ceph cluster."""

    setting: str  # "walrus_backend": "files" or ``ceph``
    ceph: str  # "rados"
    pool_setting: str  # "rados_pool"
    default_pool: str  # "karri-objects"
    label: str  # "RADOS"
    settings: tuple[str, ...]  # every setting of this kind (config.WALRUS_SETTINGS)

    def key(self, backend: dict) -> tuple:
        if backend.get(self.setting, "files") == "files":
            return ("files",)
        return (
            self.ceph,
            backend.get("ceph_conf"),
            backend.get(self.pool_setting, self.default_pool),
        )

    def same(self, a: dict, b: dict) -> bool:
        """Whether two settings name the same place."""
        return self.key(a) == self.key(b)

    def name(self, backend: dict) -> str:
        if backend.get(self.setting) == self.ceph:
            return f"{self.label} pool {backend.get(self.pool_setting, self.default_pool)}"
        return "files"

    def switched(self, target: dict[str, str]) -> dict[str, object]:
        """What ``settings.json`` says once ``target`` holds the data (going to files, the
        Ceph connection stays: the other kind of data may use it)."""
        if target.get(self.setting) == self.ceph:
            return {k: target.get(k) for k in self.settings}
        return {self.setting: "files", self.pool_setting: None}

    def only_ours(self, target: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in target.items() if k in self.settings and v}


class BackendMove:
    """One migration of ``data_dir``'s data to ``target`` (settings as ``settings.json``
    keeps them). The caller holds the data dir's lock (``karri up`` holds it too)."""

    state_file = ""  # in the data dir: the migration under way
    what = ""  # what moves, for messages: "objects", "volumes"
    backends: Backends

    def __init__(self, data_dir: Path, target: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.target = self.backends.only_ours(target)
        self.state_path = data_dir / self.state_file

    # -- what a kind of data says --------------------------------------------------------

    def current(self) -> dict[str, str]:
        """The backend ``settings.json`` names now."""
        raise NotImplementedError

    def begin(self, source: dict[str, str], switched: bool) -> Progress:
        """What is to move (raise ``MigrationError`` to refuse: nothing is changed yet;
        ``switched``: only the old copy's removal is left)."""
        raise NotImplementedError

    def copy(self, source: dict[str, str], progress: Progress, report: Report) -> None:
        """Copy everything to the target, verifying each copy."""
        raise NotImplementedError

    def delete(self, source: dict[str, str], report: Report) -> None:
        """Remove the old copy (the target is the backend now)."""
        raise NotImplementedError

    def end(self) -> None:
        """Let go of what ``begin``, ``copy`` and ``delete`` opened."""

    # -- the run ---------------------------------------------------------------------------

    def _state(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    def _save_state(self, source: dict[str, str]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"from": source, "to": self.target}, indent=2))
        tmp.replace(self.state_path)

    def run(self, report: Report) -> Progress:
        """Copy, verify, switch, delete; or finish an interrupted run of the same."""
        same, name = self.backends.same, self.backends.name
        current = self.current()
        state = self._state()
        if state is not None and not same(state.get("to", {}), self.target):
            abandoned = state.get("to", {})
            if same(current, abandoned):  # switched: only its deleting is left, do it first
                raise MigrationError(
                    f"an unfinished migration to {name(abandoned)} is under way: "
                    "run it again to finish it first"
                )
            # Not switched: the old backend is whole. The copies in the abandoned one are
            # left (nothing names them; they are never read).
            report(f"an unfinished migration to {name(abandoned)} is abandoned")
            state = None
        switched = same(current, self.target)
        if switched and state is None:
            raise MigrationError(f"the {self.what} are kept in {name(current)} already")
        source = state["from"] if switched and state else current
        try:
            progress = self.begin(source, switched)
            if not switched:
                self._save_state(source)
                self.copy(source, progress, report)
                # the commit point: one rename
                save_settings(self.data_dir, **self.backends.switched(self.target))
                fsync_dir(self.data_dir)
                report(f"switched to {name(self.target)}")
            self.delete(source, report)
        finally:
            self.end()
        self.state_path.unlink(missing_ok=True)
        return progress


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
