"""`karri down`: stop the karri of a data dir and end what its node left on the host."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from karri.lock import DataDirLock, Holder, live_holder
from karri.node.cleanup import Leftovers, clean
from karri.node.commands import terminate


@dataclass(frozen=True)
class DownReport:
    stopped: Holder | None  # the `karri up` that was stopped
    killed: bool  # it had to be killed (it did not stop within the timeout)
    node: Leftovers  # what the node had left (ended, unless guests were kept)
    kept_guests: bool

    def lines(self) -> list[str]:
        lines = []
        if self.stopped:
            how = "killed" if self.killed else "stopped"
            lines.append(f"{how} karri up (pid {self.stopped.pid})")
        if self.kept_guests:
            lines.append(f"kept (guests still run; --guests ends them): {self.node.describe()}")
        elif self.node:
            lines.append(f"ended: {self.node.describe()}")
        return lines or ["nothing of karri was running"]


def down(data_dir: Path, *, guests: bool, timeout: float = 120.0) -> DownReport:
    """Stop a live `karri up` on ``data_dir`` (SIGTERM, SIGKILL after ``timeout``), then
    end its node's leftovers: dnsmasq and the namespace once no guest runs, the guests
    too with ``guests``."""
    holder = live_holder(data_dir) if data_dir.exists() else None
    killed = holder is not None and not terminate([(holder.pid, holder.start_ticks)], timeout)
    with DataDirLock(data_dir) if data_dir.exists() else contextlib.nullcontext():
        node = clean(data_dir, guests=guests)  # no karri up can start meanwhile
        (data_dir / "runtime.json").unlink(missing_ok=True)
    kept = bool(node.guests or node.others) and not guests
    return DownReport(holder, killed, node, kept)
