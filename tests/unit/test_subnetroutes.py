"""subnetroutes.py's plan, without a kernel: the tables and rules wanted from what the
cloud said and which targets have a port here, and the ``ip -batch`` lines from what is
in force to that (routes written before stale ones go, rules last)."""

from __future__ import annotations

from ipaddress import IPv4Network

from karri.node.subnetroutes import (
    RULE_BASE,
    TABLE_BASE,
    InterfaceRoute,
    SubnetRoutes,
    VpcRoutes,
    kernel_tables,
    plan,
)

A, B = IPv4Network("10.0.0.0/24"), IPv4Network("10.0.1.0/24")
BRIDGES = {A: "brA", B: "brB"}
DEFAULT = IPv4Network("0.0.0.0/0")


def told(*routes: InterfaceRoute) -> VpcRoutes:
    return VpcRoutes((SubnetRoutes(str(B), routes),))


def test_a_subnet_table_holds_the_local_routes_and_its_own() -> None:
    wanted = kernel_tables(BRIDGES, told(InterfaceRoute("0.0.0.0/0", "10.0.0.4")), ["10.0.0.4"])
    assert wanted == {
        "brB": (
            TABLE_BASE,
            {
                A: "dev brA scope link src 10.0.0.1",
                B: "dev brB scope link src 10.0.1.1",
                DEFAULT: "via 10.0.0.4 dev brA onlink",
            },
        )
    }
    # a target without a port here, or none at all: a blackhole
    assert (
        kernel_tables(BRIDGES, told(InterfaceRoute("0.0.0.0/0", "10.0.0.4")), [])["brB"][1][DEFAULT]
        == ""
    )
    assert (
        kernel_tables(BRIDGES, told(InterfaceRoute("0.0.0.0/0", None)), ["10.0.0.4"])["brB"][1][
            DEFAULT
        ]
        == ""
    )
    # a route to a subnet's own prefix replaces its local route in that table
    more = kernel_tables(BRIDGES, told(InterfaceRoute(str(A), "10.0.1.9")), ["10.0.1.9"])
    assert more["brB"][1][A] == "via 10.0.1.9 dev brB onlink"
    # a subnet with no bridge here, or no routes, gets nothing
    assert kernel_tables({A: "brA"}, told(InterfaceRoute("0.0.0.0/0", "10.0.0.4")), []) == {}
    assert kernel_tables(BRIDGES, told(), []) == {}


def test_the_lines_write_before_they_remove() -> None:
    wanted = kernel_tables(BRIDGES, told(InterfaceRoute("0.0.0.0/0", None)), [])
    stale = (TABLE_BASE, IPv4Network("10.9.0.0/16"))
    lines = plan(wanted, [stale], [(RULE_BASE + 5, "brA", TABLE_BASE + 5)])
    assert lines == [
        f"route replace blackhole 0.0.0.0/0 table {TABLE_BASE}",
        f"route replace 10.0.0.0/24 dev brA scope link src 10.0.0.1 table {TABLE_BASE}",
        f"route replace 10.0.1.0/24 dev brB scope link src 10.0.1.1 table {TABLE_BASE}",
        f"route del 10.9.0.0/16 table {TABLE_BASE}",
        f"rule add pref {RULE_BASE} iif brB lookup {TABLE_BASE}",
        f"rule del pref {RULE_BASE + 5} iif brA lookup {TABLE_BASE + 5}",
    ]
    in_force = [(TABLE_BASE, n) for n in (DEFAULT, A, B)]
    again = plan(wanted, in_force, [(RULE_BASE, "brB", TABLE_BASE)])
    assert not [line for line in again if not line.startswith("route replace")]
    assert plan({}, in_force, [(RULE_BASE, "brB", TABLE_BASE)])[-1].startswith("rule del")
