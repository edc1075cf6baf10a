"""The table that keeps subnets without a route to an internet gateway off the uplink
(node/routing.py); tests/integration/test_vpc_guests.py proves it with a real guest."""

from __future__ import annotations

import pytest

from karri.node.routing import routes_script


def test_only_the_routed_subnets_cross_the_uplink() -> None:
    script = routes_script(["10.0.1.0/24", "10.0.0.0/24"])
    assert script.startswith("add table ip karri_routes\ndelete table ip karri_routes\n")
    assert "elements = { 10.0.0.0/24, 10.0.1.0/24 };" in script
    assert 'iifname { "uplink", "pub" } ip daddr != @internet drop' in script
    assert 'oifname { "uplink", "pub" } ip saddr != @internet drop' in script


def test_none_lets_all_through_and_empty_none() -> None:
    assert "elements = { 0.0.0.0/0 };" in routes_script(None)
    assert "elements" not in routes_script([])


def test_a_subnet_must_be_a_network() -> None:
    with pytest.raises(ValueError):
        routes_script(["10.0.0.0/24 }; flush ruleset; #"])
