"""What a node keeps of each VPC it was told (node/toldstate.py): every kind round-trips
through its file; an unreadable file keeps nothing; a VPC is forgotten."""

from __future__ import annotations

from pathlib import Path

import pytest

from karri.node.acls import AclEntry, SubnetAcl
from karri.node.firewall import GroupRules, Rule
from karri.node.overlay import Overlay, SubnetLink
from karri.node.subnetroutes import VpcRoutes
from karri.node.toldstate import KINDS, ToldState

VPC = "vpc-0123456789abcdef0"
STATE = {
    "groups": (GroupRules("sg-1", (Rule("tcp", 22, 22, ("0.0.0.0/0",)),), (Rule("-1"),)),),
    "internet": (("10.0.1.0/24",), "198.51.100.9"),
    "acls": (SubnetAcl("10.0.1.0/24", (AclEntry(100, False, 6, False, "10.0.2.0/24", 80, 80),)),),
    "dhcp": (("domain-name", ("example.internal",)),),
    "resolver": None,
    "routes": VpcRoutes(forwarders=("10.0.1.5",)),
    "overlay": Overlay("10.250.0.2", (SubnetLink("10.0.1.0/24", 0xABCDEF),)),
}


def test_every_kind_round_trips(tmp_path: Path) -> None:
    assert set(STATE) == set(KINDS)
    told = ToldState(tmp_path / "told")
    assert told.load(VPC) == {} and told.vpcs() == set()
    told.save(VPC, STATE)
    assert ToldState(tmp_path / "told").load(VPC) == STATE  # as a restarted node reads it
    told.save(VPC, {"groups": (), "internet": (None, None)})  # replaced, not merged
    assert told.load(VPC) == {"groups": (), "internet": (None, None)}
    assert told.vpcs() == {VPC}
    told.forget(VPC)
    assert told.load(VPC) == {} and told.vpcs() == set()


def test_an_unreadable_file_keeps_nothing(tmp_path: Path) -> None:
    told = ToldState(tmp_path)
    (tmp_path / f"{VPC}.json").write_text('{"groups": [{"group_id": 7}]}')
    assert told.load(VPC) == {}
    (tmp_path / f"{VPC}.json").write_text("not json")
    assert told.load(VPC) == {}


def test_a_malformed_vpc_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ToldState(tmp_path).save("../etc", {})
