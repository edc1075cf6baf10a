"""What the tests of `karri storage migrate` share: running it, and running it until a
progress line to SIGKILL it there."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.conftest import KARRI


def migrate(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [KARRI, "storage", "migrate", "--data-dir", str(data_dir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def killed_at(data_dir: Path, kill_after: str, *args: str) -> int:
    """Run a migration and SIGKILL it once it prints a line starting with ``kill_after``;
    its return code (-SIGKILL, or 0 if it finished first: a process about to exit may)."""
    command = [KARRI, "storage", "migrate", "--data-dir", str(data_dir), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(kill_after):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=600)
    assert process.returncode in (-signal.SIGKILL, 0)
    return process.returncode
