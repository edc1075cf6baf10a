"""`karri up --node-address`: what nodes on other hosts are told the gateway is at (the join
answer, the announcements, its certificate); a wildcard --host names no such address."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from karri.cli.common import settings_for
from karri.config import Settings
from tests.unit.karri_up import served, up

__all__ = ["served"]  # the fixture


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]"])
def test_a_wildcard_host_needs_the_address_nodes_reach(
    tmp_path: Path, served: list[Settings], host: str
) -> None:
    refused = up(tmp_path, "--host", host, "--node-port", "8775")
    assert refused.exit_code != 0 and "--node-address" in refused.output
    assert up(tmp_path, "--host", host).exit_code == 0  # no gateway: nothing to announce
    given = up(tmp_path, "--host", host, "--node-port", "8775", "--node-address", "10.0.0.5")
    assert given.exit_code == 0
    assert served[-1].node_url == "https://10.0.0.5:8775"
    assert served[-1].node_host == "10.0.0.5"


def test_the_gateway_is_at_the_host_unless_told(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, host="127.0.0.1", node_port=8775)
    assert settings.node_url == "https://127.0.0.1:8775"
    settings.write_runtime(1)
    assert settings_for(tmp_path).node_address is None
    told = replace(settings, node_address="cloud.example")
    assert told.node_url == "https://cloud.example:8775"
    told.write_runtime(1)
    assert settings_for(tmp_path).node_url == "https://cloud.example:8775"
