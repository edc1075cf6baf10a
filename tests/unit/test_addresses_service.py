"""Elastic IPs in-process on SQLite: allocation from the pool (never an address in use),
the limit, association and reassociation with the automatic address given back and
taken again, release, describe with filters, account isolation, and what the reconciler
asks (the address at launch, the one kept at stop, the one forgotten at terminate)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from karri.cloud.instances import states
from karri.cloud.instances.models import Instance
from karri.cloud.network.addresses import MAX_PER_ACCOUNT, Addresses
from karri.cloud.network.groups import SecurityGroups
from karri.cloud.network.models import Vpc
from karri.cloud.network.vpc_changes import VpcChanges
from karri.cloud.network.vpcs import Vpcs
from karri.cloud.regions import Geography
from karri.cloud.tags import Tags
from karri.config import Settings
from karri.db.models import Account
from karri.errors import CloudError
from karri.node.publicnat import PublicPool
from tests.unit.test_instances_service import ACCOUNT, World, world  # noqa: F401

OTHER = "210987654321"


class Eips:
    def __init__(self, world: World) -> None:  # noqa: F811
        self.world = world
        self.changes: list[list[str]] = []
        with world.db.write_session() as session:
            session.add(Account(id=OTHER, name="b"))
        self.service = Addresses(
            world.db,
            Tags(world.db),
            "karri",
            PublicPool("127.64.0.0/29", "seed", tries=8),
            on_change=lambda ids: self.changes.append(list(ids)),
        )

    def running(self) -> str:
        (instance_id,) = self.world.run()
        self.service.assign(instance_id)
        self.world.set_state(instance_id, states.RUNNING)
        return instance_id

    def public_ip(self, instance_id: str) -> str | None:
        with self.world.db.session() as session:
            row = session.get(Instance, instance_id)
            assert row is not None
            return row.public_ip


@pytest.fixture
def eips(world: World) -> Eips:  # noqa: F811
    return Eips(world)


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(CloudError) as caught:
        call()
    return caught.value.code


def test_allocate_takes_free_addresses_up_to_the_limit(eips: Eips) -> None:
    instance = eips.running()
    auto = eips.public_ip(instance)
    assert auto and auto.startswith("127.64.0.")
    made = [eips.service.allocate(ACCOUNT, "vpc", {"n": str(n)}) for n in range(MAX_PER_ACCOUNT)]
    ips = {v.address.public_ip for v in made}
    assert len(ips) == MAX_PER_ACCOUNT and auto not in ips
    assert all(v.address.domain == "vpc" and v.address.id.startswith("eipalloc-") for v in made)
    assert code_of(lambda: eips.service.allocate(ACCOUNT, None, {})) == "AddressLimitExceeded"
    # the /29 has 6 hosts: one automatic address and five elastic IPs fill it
    assert code_of(lambda: eips.service.allocate(OTHER, None, {})) == (
        "InsufficientAddressCapacity"
    )
    assert code_of(lambda: eips.service.allocate(ACCOUNT, "x", {})) == "InvalidParameterValue"


def test_associate_moves_the_address_and_gives_automatic_ones_back(eips: Eips) -> None:
    a, b = eips.running(), eips.running()
    auto_a, auto_b = eips.public_ip(a), eips.public_ip(b)
    eip = eips.service.allocate(ACCOUNT, "standard", {}).address
    association = eips.service.associate(ACCOUNT, eip.id, None, a, None, None, False)
    assert association.startswith("eipassoc-")
    assert eips.public_ip(a) == eip.public_ip and eips.changes[-1] == [a]
    code = code_of(lambda: eips.service.associate(ACCOUNT, eip.id, None, b, None, None, False))
    assert code == "Resource.AlreadyAssociated"
    eips.service.associate(ACCOUNT, eip.id, None, b, None, None, True)
    assert eips.changes[-1] == [a, b]  # the one losing it first
    assert eips.public_ip(b) == eip.public_ip
    new_a = eips.public_ip(a)
    assert new_a and new_a not in (eip.public_ip, auto_b)  # a gets a new automatic one
    (view,) = eips.service.describe(ACCOUNT, [eip.id])
    assert view.address.instance_id == b and view.address.association_id
    assert code_of(lambda: eips.service.release(ACCOUNT, eip.id, None)) == (
        "InvalidIPAddress.InUse"
    )
    eips.service.disassociate(ACCOUNT, view.address.association_id, None)
    assert eips.public_ip(b) not in (None, eip.public_ip)
    assert auto_a  # given back, may be reused later
    eips.service.release(ACCOUNT, eip.id, None)
    assert eips.service.describe(ACCOUNT) == []


def test_associate_by_interface_and_private_ip(eips: Eips) -> None:
    a = eips.running()
    (reservation,) = eips.world.instances.describe(ACCOUNT, [a])[0]
    interface = reservation.instances[0].interface
    assert interface is not None
    eip = eips.service.allocate(ACCOUNT, None, {}).address
    wrong = code_of(
        lambda: eips.service.associate(ACCOUNT, eip.id, None, None, interface.id, "10.9.9.9", False)
    )
    assert wrong == "InvalidParameterValue"
    both = code_of(
        lambda: eips.service.associate(ACCOUNT, eip.id, None, a, interface.id, None, False)
    )
    assert both == "InvalidParameterCombination"
    eips.service.associate(ACCOUNT, eip.id, None, None, interface.id, interface.private_ip, False)
    (view,) = eips.service.describe(ACCOUNT, filters=[{"Name": "instance-id", "Values": [a]}])
    assert view.address.network_interface_id == interface.id
    assert view.address.private_ip == interface.private_ip
    assert eips.service.describe(ACCOUNT, filters=[{"Name": "domain", "Values": ["x"]}]) == []


def test_errors_and_isolation(eips: Eips) -> None:
    a = eips.running()
    eip = eips.service.allocate(ACCOUNT, None, {}).address
    s = eips.service
    assert code_of(lambda: s.describe(OTHER, [eip.id])) == "InvalidAllocationID.NotFound"
    assert code_of(lambda: s.describe(OTHER, None, [eip.public_ip])) == "InvalidAddress.NotFound"
    assert code_of(lambda: s.describe(ACCOUNT, ["eipalloc-x"])) == "InvalidAllocationID.Malformed"
    assert code_of(lambda: s.associate(OTHER, eip.id, None, a, None, None, True)) == (
        "InvalidAllocationID.NotFound"
    )
    theirs = s.allocate(OTHER, None, {}).address
    assert code_of(lambda: s.associate(OTHER, theirs.id, None, a, None, None, True)) == (
        "InvalidInstanceID.NotFound"
    )
    assert code_of(lambda: s.release(OTHER, eip.id, None)) == "InvalidAllocationID.NotFound"
    assert code_of(lambda: s.release(OTHER, None, eip.public_ip)) == "AuthFailure"
    assert code_of(lambda: s.disassociate(ACCOUNT, "eipassoc-12345678", None)) == (
        "InvalidAssociationID.NotFound"
    )
    assert code_of(lambda: s.associate(ACCOUNT, eip.id, None, None, None, None, True)) == (
        "MissingParameter"
    )
    assert s.attributes(ACCOUNT, None, "domain-name") == []
    assert [v.address.id for v in s.attributes(ACCOUNT, [eip.id], "domain-name")] == [eip.id]
    assert code_of(lambda: s.attributes(ACCOUNT, [eip.id], "nope")) == "InvalidParameterValue"


def test_what_the_reconciler_asks(eips: Eips) -> None:
    a = eips.running()
    eip = eips.service.allocate(ACCOUNT, None, {}).address
    eips.service.associate(ACCOUNT, eip.id, None, a, None, None, False)
    with eips.world.db.session() as session:
        assert eips.service.kept(session, a) == eip.public_ip  # a stopped instance keeps it
    assert eips.service.assign(a) == eip.public_ip  # and has it at start
    with eips.world.db.write_session() as session:
        eips.service.forget_instance(session, a)  # terminated
    (view,) = eips.service.describe(ACCOUNT)
    assert view.address.association_id is None and view.address.instance_id is None


def test_disassociate_is_idempotent(eips: Eips) -> None:
    """The association a DisassociateAddress ended may be disassociated again; one that a
    new association replaced, or that never existed, is not found."""
    a = eips.running()
    s = eips.service
    eip = s.allocate(ACCOUNT, None, {}).address
    first = s.associate(ACCOUNT, eip.id, None, a, None, None, False)
    s.disassociate(ACCOUNT, first, None)
    changes = len(eips.changes)
    s.disassociate(ACCOUNT, first, None)  # again: no error, nothing changes
    s.disassociate(ACCOUNT, None, eip.public_ip)
    assert len(eips.changes) == changes
    assert code_of(lambda: s.disassociate(OTHER, first, None)) == "InvalidAssociationID.NotFound"
    second = s.associate(ACCOUNT, eip.id, None, a, None, None, False)
    assert code_of(lambda: s.disassociate(ACCOUNT, first, None)) == (
        "InvalidAssociationID.NotFound"
    )
    assert eips.public_ip(a) == eip.public_ip  # the retry did not end the new association
    s.disassociate(ACCOUNT, second, None)
    s.disassociate(ACCOUNT, second, None)


def test_the_masquerade_address_is_the_vpcs_own(eips: Eips, tmp_path: Path) -> None:
    """With a real uplink each VPC with instances gets a pool address no elastic IP and no
    instance has, recorded (stable), never handed out after; gone with the VPC."""
    assert eips.service.masquerade("vpc-nonexistent") is None
    with eips.world.db.session() as session:
        vpc_id = session.scalars(select(Vpc.id)).one()
    assert eips.service.masquerade(vpc_id) is None  # the loopback pool: none
    eips.service.masquerade_enabled = True
    assert eips.service.masquerade(vpc_id) is None  # no instances in it yet
    instance = eips.running()
    elastic = eips.service.allocate(ACCOUNT, "vpc", {}).address.public_ip
    masquerade = eips.service.masquerade(vpc_id)
    assert masquerade and masquerade.startswith("127.64.0.")
    assert masquerade not in (eips.public_ip(instance), elastic)
    assert eips.service.masquerade(vpc_id) == masquerade  # recorded: the same again
    # the /29's 6 hosts: an automatic address, the masquerade, four elastic IPs
    more = {eips.service.allocate(ACCOUNT, "vpc", {}).address.public_ip for _ in range(2)}
    more.add(eips.service.allocate(OTHER, "vpc", {}).address.public_ip)
    assert masquerade not in more | {elastic} and len(more) == 3
    assert code_of(lambda: eips.service.allocate(OTHER, None, {})) == (
        "InsufficientAddressCapacity"
    )
    # DeleteVpc gives it back (the VPC had it while instances ran in it)
    db, tags = eips.world.db, Tags(eips.world.db)
    geography = Geography(Settings(data_dir=tmp_path))
    vpcs = Vpcs(db, tags, geography)
    changes = VpcChanges(db, tags, geography, vpcs, SecurityGroups(db, tags, vpcs=vpcs))
    own = changes.create_vpc(ACCOUNT, "10.7.0.0/16").vpc.id
    with db.write_session() as session:
        default = session.get(Vpc, vpc_id)
        assert default is not None
        default.masquerade_ip = None
        session.flush()
        own_vpc = session.get(Vpc, own)
        assert own_vpc is not None
        own_vpc.masquerade_ip = masquerade
    assert code_of(lambda: eips.service.allocate(OTHER, None, {})) == (
        "InsufficientAddressCapacity"
    )
    changes.delete_vpc(ACCOUNT, own)
    assert eips.service.allocate(OTHER, None, {}).address.public_ip == masquerade
