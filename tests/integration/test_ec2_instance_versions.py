"""The database's triggers bump ``instances.version`` whenever a row DescribeInstances
renders is written (migration ``c004_instance_render_versions``): one test per input table,
on the rows themselves, on SQLite and (``KARRI_TEST_DB=postgresql``) on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import karri.tables  # noqa: F401  (registers every table)
from karri.cloud.instances.models import Instance, Reservation
from karri.cloud.instances.profile_models import ProfileAssociation
from karri.cloud.network.address_models import ElasticIp
from karri.cloud.network.models import InterfaceAddress, NetworkInterface, Subnet, Vpc
from karri.cloud.volumes.models import Volume, VolumeAttachment
from karri.db.engine import Database
from karri.db.models import Account, Tag
from tests import postgres

ACCOUNT = "123456789012"
INSTANCE, OTHER = "i-00000001", "i-00000002"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    url = (
        postgres.cluster().new_database()
        if postgres.wanted()
        else f"sqlite:///{tmp_path / 'karri.db'}"
    )
    database = Database(url)
    with database.write_connection() as c:
        c.execute(sa.insert(Account.__table__).values(id=ACCOUNT, name="a"))
        c.execute(sa.insert(Reservation.__table__).values(id="r-1", account_id=ACCOUNT))
        c.execute(
            sa.insert(Vpc.__table__).values(
                id="vpc-1", account_id=ACCOUNT, cidr_block="10.0.0.0/16", cidr_association_id="x"
            )
        )
        c.execute(
            sa.insert(Subnet.__table__).values(
                id="subnet-1",
                account_id=ACCOUNT,
                vpc_id="vpc-1",
                cidr_block="10.0.0.0/24",
                zone="z",
            )
        )
        for instance_id, index in ((INSTANCE, 0), (OTHER, 1)):
            c.execute(
                sa.insert(Instance.__table__).values(
                    id=instance_id,
                    reservation_id="r-1",
                    account_id=ACCOUNT,
                    launch_index=index,
                    image_id="emi-1",
                    instance_type="m1.small",
                    vcpus=1,
                    memory_mib=256,
                    disk_gib=1,
                    zone="z",
                    vpc_id="vpc-1",
                    subnet_id="subnet-1",
                )
            )
    yield database
    database.dispose()


def versions(db: Database) -> dict[str, int]:
    with db.engine.connect() as c:
        return dict(c.execute(sa.select(Instance.id, Instance.version)).all())


def write(db: Database, *statements: Any) -> dict[str, int]:
    """Run the statements in one write transaction; the versions after, less before."""
    before = versions(db)
    with db.write_connection() as c:
        for statement in statements:
            c.execute(statement)
    after = versions(db)
    return {i: after[i] - before[i] for i in after if after[i] != before[i]}


def assert_each_write_bumps(db: Database, table: sa.Table, row: dict, change: dict) -> None:
    """An INSERT, an UPDATE and a DELETE of ``row`` each bump INSTANCE (only)."""
    keys = [c for c in table.primary_key.columns]
    where = [c == row[c.key] for c in keys]
    assert write(db, sa.insert(table).values(**row)).keys() == {INSTANCE}
    assert write(db, sa.update(table).where(*where).values(**change)).keys() == {INSTANCE}
    assert write(db, sa.delete(table).where(*where)).keys() == {INSTANCE}


def test_an_update_of_the_instance_bumps_it_once(db: Database) -> None:
    table = Instance.__table__
    changed = write(db, sa.update(table).where(table.c.id == INSTANCE).values(state="stopped"))
    assert changed == {INSTANCE: 1}
    # a statement that sets the version itself (the other tables' triggers) is obeyed
    write(db, sa.update(table).where(table.c.id == INSTANCE).values(version=7))
    assert versions(db)[INSTANCE] == 7


def test_tags(db: Database) -> None:
    row = {"resource_id": INSTANCE, "account_id": ACCOUNT, "key": "Name", "value": "a"}
    assert_each_write_bumps(db, Tag.__table__, row, {"value": "b"})
    other = {"resource_id": "vol-1", "account_id": ACCOUNT, "key": "Name", "value": "a"}
    assert write(db, sa.insert(Tag.__table__).values(**other)) == {}


def interface(interface_id: str, instance_id: str | None, ip: str) -> dict[str, Any]:
    return {
        "id": interface_id,
        "account_id": ACCOUNT,
        "vpc_id": "vpc-1",
        "subnet_id": "subnet-1",
        "zone": "z",
        "mac": f"02:00:00:00:00:{interface_id[-2:]}",
        "private_ip": ip,
        "instance_id": instance_id,
        "device_index": 1 if instance_id else None,
    }


def test_network_interfaces(db: Database) -> None:
    row = interface("eni-01", INSTANCE, "10.0.0.5")
    assert_each_write_bumps(db, NetworkInterface.__table__, row, {"description": "d"})


def test_an_interface_moved_between_instances_bumps_both(db: Database) -> None:
    table = NetworkInterface.__table__
    write(db, sa.insert(table).values(**interface("eni-02", INSTANCE, "10.0.0.6")))
    moved = write(db, sa.update(table).where(table.c.id == "eni-02").values(instance_id=OTHER))
    assert moved.keys() == {INSTANCE, OTHER}


def test_network_interface_addresses(db: Database) -> None:
    table = NetworkInterface.__table__
    write(db, sa.insert(table).values(**interface("eni-03", INSTANCE, "10.0.0.7")))
    row = {"network_interface_id": "eni-03", "private_ip": "10.0.0.8", "vpc_id": "vpc-1"}
    addresses = InterfaceAddress.__table__
    assert write(db, sa.insert(addresses).values(**row)).keys() == {INSTANCE}
    where = addresses.c.private_ip == "10.0.0.8"
    assert write(db, sa.delete(addresses).where(where)).keys() == {INSTANCE}
    # a free interface's addresses concern no instance
    write(db, sa.insert(table).values(**interface("eni-04", None, "10.0.0.9")))
    row = {"network_interface_id": "eni-04", "private_ip": "10.0.0.10", "vpc_id": "vpc-1"}
    assert write(db, sa.insert(addresses).values(**row)) == {}


def test_elastic_ips(db: Database) -> None:
    row = {
        "id": "eipalloc-1",
        "account_id": ACCOUNT,
        "public_ip": "192.0.2.1",
        "network_border_group": "g",
        "instance_id": INSTANCE,
    }
    assert_each_write_bumps(db, ElasticIp.__table__, row, {"association_id": "eipassoc-1"})


def test_volume_attachments(db: Database) -> None:
    volume = {"id": "vol-1", "account_id": ACCOUNT, "size_gib": 1, "zone": "z"}
    write(db, sa.insert(Volume.__table__).values(**volume))
    row = {"volume_id": "vol-1", "instance_id": INSTANCE, "device": "/dev/sdf"}
    assert_each_write_bumps(db, VolumeAttachment.__table__, row, {"state": "attached"})


def test_instance_profile_associations(db: Database) -> None:
    row = {
        "id": "iip-assoc-1",
        "account_id": ACCOUNT,
        "instance_id": INSTANCE,
        "profile_id": "AIPA1",
        "profile_name": "p",
        "profile_arn": "arn:aws:iam::123456789012:instance-profile/p",
    }
    change = {"state": "disassociated"}
    assert_each_write_bumps(db, ProfileAssociation.__table__, row, change)


def test_reservations(db: Database) -> None:
    table = Reservation.__table__
    changed = write(db, sa.update(table).where(table.c.id == "r-1").values(client_token="t"))
    assert changed.keys() == {INSTANCE, OTHER}


def test_vpc_dns_hostnames(db: Database) -> None:
    table = Vpc.__table__
    where = table.c.id == "vpc-1"
    assert write(db, sa.update(table).where(where).values(enable_dns_hostnames=True)).keys() == {
        INSTANCE,
        OTHER,
    }
    assert write(db, sa.update(table).where(where).values(enable_dns_hostnames=True)) == {}
    assert write(db, sa.update(table).where(where).values(enable_dns_support=False)) == {}
