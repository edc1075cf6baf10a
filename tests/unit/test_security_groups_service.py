"""The security groups service in-process, on a migrated SQLite database: AWS's checks,
the default group, what the node is given, and the change notifications."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from karri.cloud.instances.groups import default_group, stored
from karri.cloud.instances.models import Instance, Reservation
from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.network.group_rules import Peer, Permission
from karri.cloud.network.groups import SecurityGroups
from karri.cloud.tags import Tags
from karri.db.engine import Database
from karri.db.models import Account
from karri.errors import CloudError
from karri.node.firewall import GroupRules, Rule

A, B = "111111111111", "222222222222"


@pytest.fixture
def world(tmp_path: Path) -> tuple[SecurityGroups, Database, list[str]]:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    with db.write_session() as session:
        session.add_all([Account(id=A, name="a"), Account(id=B, name="b")])
    changes: list[str] = []
    groups = SecurityGroups(db, Tags(db), on_change=changes.append)
    groups.ensure_defaults([A, B])
    return groups, db, changes


def code_of(call: Any) -> str:
    with pytest.raises(CloudError) as raised:
        call()
    return raised.value.code


def tcp(port: int, *peers: Peer) -> Permission:
    return Permission("tcp", port, port, peers)


def test_default_group_has_aws_rules_and_is_idempotent(world) -> None:
    groups, _db, changes = world
    groups.ensure_default(A)
    (view,) = groups.describe(A).items
    assert view.group_id == default_group(A).group_id
    assert (view.name, view.vpc_id) == ("default", default_vpc_id(A))
    (ingress,) = view.ingress
    assert (ingress.spec.protocol, ingress.spec.peer_group_id) == ("-1", view.group_id)
    (egress,) = view.egress
    assert egress.spec.cidr_ipv4 == "0.0.0.0/0"
    assert changes == [default_vpc_id(A), default_vpc_id(B)]  # the second ensure: nothing


def test_create_checks_names_and_vpc(world) -> None:
    groups, _db, _changes = world
    assert code_of(lambda: groups.create(A, "default", "d")) == "InvalidParameterValue"
    assert code_of(lambda: groups.create(A, "sg-web", "d")) == "InvalidParameterValue"
    assert code_of(lambda: groups.create(A, "x" * 256, "d")) == "InvalidParameterValue"
    assert code_of(lambda: groups.create(A, "caf\u00e9", "d")) == "InvalidParameterValue"
    assert code_of(lambda: groups.create(A, "web", "")) == "MissingParameter"
    assert code_of(lambda: groups.create(A, "web", "d", "vpc-12345678")) == "InvalidVpcID.NotFound"
    assert code_of(lambda: groups.create(A, "web", "d", default_vpc_id(B))) == (
        "InvalidVpcID.NotFound"
    )
    view = groups.create(A, "web", "Web servers (tcp/80)", tags={"k": "v"})
    assert [r.spec.cidr_ipv4 for r in view.egress] == ["0.0.0.0/0"] and not view.ingress
    assert code_of(lambda: groups.create(A, "web", "again")) == "InvalidGroup.Duplicate"
    groups.create(B, "web", "of B")  # names are per VPC


def test_authorize_revoke_and_duplicates(world) -> None:
    groups, _db, changes = world
    web = groups.create(A, "web", "w").group_id
    changes.clear()
    added = groups.authorize(
        A, web, None, False, [tcp(80, Peer(cidr_ipv4="10.1.2.3/8"), Peer(cidr_ipv6="::/0"))]
    )
    assert [r.spec.cidr_ipv4 for r in added] == ["10.0.0.0/8", None]
    assert changes == [default_vpc_id(A)]
    dup = [tcp(80, Peer(cidr_ipv4="10.0.0.0/8"))]
    assert code_of(lambda: groups.authorize(A, web, None, False, dup)) == (
        "InvalidPermission.Duplicate"
    )
    for bad, code in [
        (Permission("tcp", 80, 70, (Peer(cidr_ipv4="1.2.3.4/32"),)), "InvalidParameterValue"),
        (Permission("tcp", None, None, (Peer(cidr_ipv4="1.2.3.4/32"),)), "InvalidParameterValue"),
        (Permission("bogus", 1, 1, (Peer(cidr_ipv4="1.2.3.4/32"),)), "InvalidParameterValue"),
        (tcp(22, Peer(cidr_ipv4="300.0.0.0/8")), "InvalidParameterValue"),
        (tcp(22), "InvalidPermission.Malformed"),
        (tcp(22, Peer(cidr_ipv4="1.2.3.4/32", group_id=web)), "InvalidPermission.Malformed"),
        (tcp(22, Peer(group_id="sg-0000dead")), "InvalidGroup.NotFound"),
        (tcp(22, Peer(group_id=default_group(B).group_id)), "InvalidGroup.NotFound"),
        (tcp(22, Peer(group_id=web, user_id=B)), "InvalidGroup.NotFound"),
        (tcp(22, Peer(group_id="nonsense")), "InvalidGroupId.Malformed"),
    ]:
        assert code_of(lambda bad=bad: groups.authorize(A, web, None, False, [bad])) == code
    result = groups.revoke(A, web, None, False, [dup[0], tcp(443, Peer(cidr_ipv4="0.0.0.0/0"))])
    assert [r.spec.cidr_ipv4 for r in result.revoked] == ["10.0.0.0/8"]
    assert len(result.unknown) == 1  # the default VPC answers misses, it does not fail
    assert code_of(lambda: groups.revoke(A, web, None, False, [], ["sgr-0000dead"])) == (
        "InvalidSecurityGroupRuleId.NotFound"
    )
    assert code_of(lambda: groups.revoke(B, web, None, False, dup)) == "InvalidGroup.NotFound"


def test_rule_limit(world) -> None:
    groups, _db, _changes = world
    web = groups.create(A, "web", "w").group_id
    groups.authorize(A, web, None, False, [tcp(p, Peer(cidr_ipv4="1.0.0.0/8")) for p in range(60)])
    extra = [tcp(999, Peer(cidr_ipv4="1.0.0.0/8"))]
    assert code_of(lambda: groups.authorize(A, web, None, False, extra)) == (
        "RulesPerSecurityGroupLimitExceeded"
    )
    groups.authorize(A, web, None, True, extra)  # egress counts on its own


def test_delete_refuses_default_referenced_and_used(world, tmp_path: Path) -> None:
    groups, db, _changes = world
    web = groups.create(A, "web", "w").group_id
    db_group = groups.create(A, "db", "d").group_id
    assert code_of(lambda: groups.delete(A, default_group(A).group_id, None)) == "CannotDelete"
    groups.authorize(A, db_group, None, False, [tcp(5432, Peer(group_id=web))])
    assert code_of(lambda: groups.delete(A, web, None)) == "DependencyViolation"
    groups.revoke(A, db_group, None, False, [tcp(5432, Peer(group_id=web))])
    with db.write_session() as session:
        session.add(Reservation(id="r-00000001", account_id=A))
        session.flush()
        session.add(_instance("i-00000001", groups.resolve(A, None, ["web"], [])))
    assert code_of(lambda: groups.delete(A, web, None)) == "DependencyViolation"
    assert groups.vpc_members(default_vpc_id(A)) == {"i-00000001": (web,)}
    assert code_of(lambda: groups.delete(B, db_group, None)) == "InvalidGroup.NotFound"
    assert groups.delete(A, None, "db") == db_group
    assert code_of(lambda: groups.delete(A, None, "db")) == "InvalidGroup.NotFound"


def _instance(instance_id: str, group_list) -> Instance:
    return Instance(
        id=instance_id,
        reservation_id="r-00000001",
        account_id=A,
        image_id="emi-00000001",
        instance_type="m1.small",
        vcpus=1,
        memory_mib=256,
        disk_gib=1,
        zone="z",
        security_groups=stored(group_list),
        state="running",
    )


def test_resolve_for_instances(world) -> None:
    groups, _db, _changes = world
    ids = [groups.create(A, f"g{n}", "g").group_id for n in range(6)]
    assert [g.name for g in groups.resolve(A, None, (), ())] == ["default"]
    assert [g.group_id for g in groups.resolve(A, None, ["g0"], ids[1:2])] == ids[:2]
    assert code_of(lambda: groups.resolve(A, None, (), ids)) == (
        "SecurityGroupsPerInterfaceLimitExceeded"
    )
    assert code_of(lambda: groups.resolve(B, None, (), ids[:1])) == "InvalidGroup.NotFound"
    assert code_of(lambda: groups.resolve(A, None, ["nope"], ())) == "InvalidGroup.NotFound"
    assert code_of(lambda: groups.resolve(A, None, (), ["sg-x"])) == "InvalidGroupId.Malformed"


def test_vpc_rules_are_what_the_firewall_takes(world) -> None:
    groups, _db, _changes = world
    web = groups.create(A, "web", "w").group_id
    default = default_group(A).group_id
    groups.authorize(
        A,
        web,
        None,
        False,
        [
            tcp(80, Peer(cidr_ipv4="0.0.0.0/0"), Peer(cidr_ipv6="::/0"), Peer(group_id=default)),
            Permission("icmpv6", -1, -1, (Peer(cidr_ipv6="::/0"),)),  # IPv6 only: not rendered
            Permission("icmp", 8, -1, (Peer(cidr_ipv4="10.0.0.0/8"),)),
        ],
    )
    rules = {g.group_id: g for g in groups.vpc_rules(default_vpc_id(A))}
    assert rules[web] == GroupRules(
        web,
        ingress=(
            Rule("tcp", 80, 80, ("0.0.0.0/0",), (default,)),
            Rule("icmp", 8, -1, ("10.0.0.0/8",)),
        ),
        egress=(Rule("-1", -1, -1, ("0.0.0.0/0",)),),
    )
    assert rules[default].ingress == (Rule("-1", -1, -1, (), (default,)),)
    assert groups.vpc_rules(default_vpc_id(B))[0].group_id == default_group(B).group_id


def test_modify_rules_and_descriptions(world) -> None:
    groups, _db, _changes = world
    web = groups.create(A, "web", "w").group_id
    (rule,) = groups.authorize(A, web, None, False, [tcp(22, Peer(cidr_ipv4="1.2.3.4/32"))])
    groups.modify_rules(
        A, web, [(rule.rule_id, tcp(2222, Peer(cidr_ipv4="5.6.7.8/32", description="ssh")))]
    )
    (changed,) = groups.describe_rules(A, [rule.rule_id]).items
    assert (changed.spec.from_port, changed.spec.cidr_ipv4, changed.spec.description) == (
        2222,
        "5.6.7.8/32",
        "ssh",
    )
    groups.update_descriptions(A, web, None, False, [], {rule.rule_id: "admin"})
    groups.update_descriptions(
        A, web, None, False, [tcp(2222, Peer(cidr_ipv4="5.6.7.8/32", description="x"))], {}
    )
    assert groups.describe_rules(A, [rule.rule_id]).items[0].spec.description == "x"
    missing = [tcp(1, Peer(cidr_ipv4="5.6.7.8/32", description="x"))]
    assert code_of(lambda: groups.update_descriptions(A, web, None, False, missing, {})) == (
        "InvalidPermission.NotFound"
    )
    assert code_of(lambda: groups.describe_rules(B, [rule.rule_id])) == (
        "InvalidSecurityGroupRuleId.NotFound"
    )


def test_describe_by_id_names_its_peers(world) -> None:
    groups, _db, _changes = world
    web, app = groups.create(A, "web", "w").group_id, groups.create(A, "app", "a").group_id
    groups.authorize(A, web, None, False, [tcp(80, Peer(group_id=app))])
    (view,) = groups.describe(A, [web]).items
    assert view.ingress[0].spec.peer_group_id == app and view.peer_names[app] == "app"
    filters = [{"Name": "ip-permission.group-name", "Values": ["app"]}]
    assert [v.group_id for v in groups.describe(A, filters=filters).items] == [web]
