"""The network ACL table of a VPC's namespace (node/acls.py) as a script;
tests/node/test_network_acls.py loads it and sends traffic through it."""

from __future__ import annotations

import pytest

from karri.node.acls import AclEntry, SubnetAcl, acls_script, entry_rule


def test_entries_become_rules_in_rule_number_order() -> None:
    acl = SubnetAcl(
        "10.0.1.0/24",
        (
            AclEntry(200, False, -1, True),
            AclEntry(100, False, 6, False, "10.0.2.0/24", 80, 80),
            AclEntry(100, True, 17, True, port_from=1024, port_to=65535),
        ),
    )
    lines = acls_script([acl]).splitlines()
    assert lines[:2] == ["add table ip karri_acl", "delete table ip karri_acl"]
    inbound = [line for line in lines if line.startswith("add rule ip karri_acl i-0a00010024")]
    assert [line.split("i-0a00010024 ")[1] for line in inbound] == [
        "ip saddr 10.0.2.0/24 meta l4proto 6 th dport 80 drop",
        "return",
        "drop",
    ]
    assert (
        "add rule ip karri_acl forward ip daddr 10.0.1.0/24 ip saddr != 10.0.1.0/24 "
        "jump i-0a00010024" in lines
    )
    assert "add rule ip karri_acl o-0a00010024 meta l4proto 17 th dport 1024-65535 return" in lines


def test_icmp_type_and_code() -> None:
    assert entry_rule(AclEntry(1, False, 1, False, icmp_type=8, icmp_code=-1)) == (
        "meta l4proto 1 icmp type 8 drop"
    )
    assert entry_rule(AclEntry(1, True, 1, True, "10.0.0.0/8", icmp_type=3, icmp_code=4)) == (
        "ip daddr 10.0.0.0/8 meta l4proto 1 icmp type 3 icmp code 4 return"
    )
    assert entry_rule(AclEntry(1, True, 1, True, icmp_type=-1, icmp_code=-1)) == (
        "meta l4proto 1 return"
    )


def test_none_filters_nothing() -> None:
    assert "jump" not in acls_script(None)


def test_a_cidr_must_be_a_network() -> None:
    with pytest.raises(ValueError):
        acls_script([SubnetAcl("10.0.0.0/24 drop; flush ruleset")])
    with pytest.raises(ValueError):
        entry_rule(AclEntry(1, True, -1, True, "10.0.0.0/8 ; flush ruleset"))
