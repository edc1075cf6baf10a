"""Logging: events to the console, everything (one line per request too) to logs/karri.log."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(log_dir: Path, *, verbose: bool = False) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.INFO)

    to_file = logging.handlers.WatchedFileHandler(log_dir / "karri.log")
    to_file.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(to_file)

    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter(FORMAT))
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    root.addHandler(console)

    # Requests go to the file only unless asked for; uvicorn's own access log is redundant.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
