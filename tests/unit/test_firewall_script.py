"""The nft transactions the firewall sends: one per change, touching only what changed."""

from __future__ import annotations

import asyncio

import pytest

from karri.node.firewall import Firewall, FirewallError, GroupRules, Member, Rule

ALL_OUT = (Rule("-1", cidrs=("0.0.0.0/0",)),)


class Recorder:
    """An NftHost that keeps the scripts and commands it is given."""

    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.commands: list[tuple[str, ...]] = []

    async def nft(self, script: str) -> str:
        self.scripts.append(script)
        return ""

    async def ip(self, *args: str) -> str:
        self.commands.append(args)
        return ""


def loaded() -> tuple[Firewall, Recorder]:
    host = Recorder()
    firewall = Firewall(host, "br0")
    groups = [
        GroupRules("sg-a", egress=ALL_OUT),
        GroupRules("sg-b", ingress=(Rule("tcp", 22, 22, groups=("sg-a",)),), egress=ALL_OUT),
    ]
    members = [Member("kt1", "172.31.0.11", ("sg-a",)), Member("kt2", "172.31.0.12", ("sg-b",))]
    asyncio.run(firewall.load(groups, members))
    return firewall, host


def test_load_replaces_the_table_in_one_transaction_and_enables_br_netfilter() -> None:
    _, host = loaded()
    assert host.commands == [("link", "set", "br0", "type", "bridge", "nf_call_iptables", "1")]
    [script] = host.scripts
    assert script.startswith("add table inet karri_sg\ndelete table inet karri_sg\n")
    assert "ct state established,related accept" in script
    assert "add rule inet karri_sg gi-sg-b ip saddr @gm-sg-a tcp dport 22 accept" in script
    assert "add element inet karri_sg ingress { 172.31.0.12 : jump mi-kt2 }" in script
    assert "add element inet karri_sg gm-sg-a { 172.31.0.11 }" in script


def test_a_rule_change_rewrites_only_that_group_and_direction() -> None:
    firewall, host = loaded()
    web = (Rule("tcp", 80, 80, cidrs=("0.0.0.0/0", "10.1.2.3/8")),)
    asyncio.run(firewall.set_group(GroupRules("sg-a", ingress=web, egress=ALL_OUT)))
    assert host.scripts[-1] == (
        "flush chain inet karri_sg gi-sg-a\n"
        "add rule inet karri_sg gi-sg-a ip saddr { 0.0.0.0/0, 10.0.0.0/8 } tcp dport 80 accept\n"
    )


def test_a_membership_change_moves_set_elements_and_refills_the_member_chains() -> None:
    firewall, host = loaded()
    asyncio.run(firewall.set_member(Member("kt1", "172.31.0.11", ("sg-b",))))
    script = host.scripts[-1]
    assert "delete element inet karri_sg gm-sg-a { 172.31.0.11 }" in script
    assert "add element inet karri_sg gm-sg-b { 172.31.0.11 }" in script
    assert "flush chain inet karri_sg mi-kt1" in script
    assert "kt2" not in script and "delete table" not in script
    asyncio.run(firewall.set_member(Member("kt1", "172.31.0.11", ("sg-b",))))
    assert len(host.scripts) == 2  # nothing changed: nothing sent


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        (Rule("-1", cidrs=("0.0.0.0/0",)), "ip saddr { 0.0.0.0/0 } accept"),
        (Rule("udp", 1000, 2000, cidrs=("1.2.3.4/32",)), "udp dport 1000-2000 accept"),
        (Rule("6", 0, 65535, cidrs=("1.2.3.4",)), "meta l4proto tcp accept"),
        (Rule("icmp", -1, -1, cidrs=("1.2.3.4",)), "meta l4proto icmp accept"),
        (Rule("icmp", 8, -1, cidrs=("1.2.3.4",)), "icmp type 8 accept"),
        (Rule("icmp", 3, 4, cidrs=("1.2.3.4",)), "icmp type 3 icmp code 4 accept"),
        (Rule("47", cidrs=("1.2.3.4",)), "meta l4proto 47 accept"),
        (Rule("icmpv6", cidrs=("1.2.3.4",)), "meta l4proto 58 accept"),
    ],
)
def test_protocols_and_ports_as_aws_spells_them(rule: Rule, match: str) -> None:
    firewall, host = loaded()
    asyncio.run(firewall.set_group(GroupRules("sg-a", ingress=(rule,), egress=ALL_OUT)))
    assert host.scripts[-1].endswith(f"{match}\n")


@pytest.mark.parametrize(
    "group",
    [
        GroupRules("sg-a", ingress=(Rule("tcp", 80, 70, cidrs=("0.0.0.0/0",)),)),
        GroupRules("sg-a", ingress=(Rule("gopher", cidrs=("0.0.0.0/0",)),)),
        GroupRules("sg-a", ingress=(Rule("icmp", 256, -1, cidrs=("0.0.0.0/0",)),)),
        GroupRules("sg-a", ingress=(Rule("-1", cidrs=("not an address",)),)),
        GroupRules("sg-a", ingress=(Rule("-1", groups=("sg-unknown",)),)),
        GroupRules('sg-a"; flush ruleset'),
    ],
)
def test_bad_rules_are_refused_before_anything_is_sent(group: GroupRules) -> None:
    firewall, host = loaded()
    with pytest.raises(FirewallError):
        asyncio.run(firewall.set_group(group))
    assert len(host.scripts) == 1


def test_a_group_in_use_is_not_removed() -> None:
    firewall, host = loaded()
    with pytest.raises(FirewallError, match="kt1"):
        asyncio.run(firewall.remove_group("sg-a"))
    asyncio.run(firewall.remove_member("kt2"))
    asyncio.run(firewall.remove_group("sg-b"))
    assert host.scripts[-1] == (
        "delete chain inet karri_sg gi-sg-b\n"
        "delete chain inet karri_sg ge-sg-b\n"
        "delete set inet karri_sg gm-sg-b\n"
    )
