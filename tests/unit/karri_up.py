"""`karri up` through its command line, with ``serve`` replaced: the settings it would
serve with."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import karri.up
from karri.cli.main import main
from karri.config import Settings


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The settings of each `karri up` the test runs (``up``), in order."""
    started: list[Settings] = []
    monkeypatch.setattr(karri.up, "serve", lambda settings, verbose: started.append(settings))
    return started


def up(data_dir: Path, *flags: str) -> Result:
    return CliRunner().invoke(main, ["up", "--data-dir", str(data_dir), *flags])
