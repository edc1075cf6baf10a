"""Logging: events to the console, everything (one line per request too) to logs/karri.log
(logs/s3-N.log for the extra S3 processes)."""

from __future__ import annotations

import logging
import logging.handlers
import threading
import time
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FLUSH_SECONDS = 0.5


class Formatter(logging.Formatter):
    """The standard format, with the time text made once per second instead of per record."""

    _second: int | None = None
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            converted = self.converter(record.created)
            self._second = second
            self._text = time.strftime(datefmt or self.default_time_format, converted)
        if datefmt:
            return self._text
        return self.default_msec_format % (self._text, record.msecs)


class LogFile(logging.handlers.WatchedFileHandler):
    """logs/karri.log, written in batches rather than with system calls per record.

    A request's line reaches the file within FLUSH_SECONDS (warnings and errors at once);
    whether logrotate moved the file is checked as often. Per-record writes and stats cost
    the event loop the GIL, which the handler threads then hold for milliseconds.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", errors="backslashreplace")
        self._flushed = time.monotonic()
        threading.Thread(target=self._flush_regularly, name="log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self._write_out()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:
            self._write_out()

    def _write_out(self) -> None:
        if self.stream:
            self.stream.flush()
            self.reopenIfNeeded()
        self._flushed = time.monotonic()

    def _flush_regularly(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            if time.monotonic() - self._flushed >= FLUSH_SECONDS:
                self.flush()


def configure(log_dir: Path, *, verbose: bool = False, file_name: str = "karri.log") -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.INFO)

    to_file = LogFile(log_dir / file_name)
    to_file.setFormatter(Formatter(FORMAT))
    root.addHandler(to_file)

    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter(FORMAT))
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    root.addHandler(console)

    # Requests go to the file only unless asked for; uvicorn's own access log is redundant.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
