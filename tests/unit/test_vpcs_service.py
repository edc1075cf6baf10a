"""The network model in-process on a migrated SQLite database: the default VPC made once
and completed idempotently, its layout, account isolation, the primary interfaces of a
launch, and the upgrade of a data dir from before VPCs."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import func, select, text

from karri.cloud.filters import Page
from karri.cloud.instances.models import Instance
from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.network.groups import SecurityGroups
from karri.cloud.network.interfaces import Interfaces
from karri.cloud.network.models import NetworkInterface, Route, Subnet, Vpc
from karri.cloud.network.vpcs import Vpcs
from karri.cloud.regions import Geography
from karri.cloud.tags import Tags
from karri.config import Settings
from karri.db.engine import MIGRATIONS, Database, make_engine
from karri.db.models import Account
from karri.errors import CloudError
from tests.unit.test_instances_service import ACCOUNT, World, world  # noqa: F401

OTHER = "210987654321"


@pytest.fixture
def vpcs(tmp_path: Path) -> Vpcs:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    with db.write_session() as session:
        session.add_all([Account(id=ACCOUNT, name="a"), Account(id=OTHER, name="b")])
    return Vpcs(db, Tags(db), Geography(Settings(data_dir=tmp_path)))


def _count(vpcs: Vpcs, model: type) -> int:
    with vpcs.db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_the_default_vpc_is_made_once(vpcs: Vpcs) -> None:
    assert vpcs.ensure_all_defaults() == 2
    counts = (_count(vpcs, Vpc), _count(vpcs, Subnet), _count(vpcs, Route))
    assert counts == (2, 2, 4)
    assert vpcs.ensure_default(ACCOUNT) is False
    assert vpcs.ensure_all_defaults() == 0
    assert (_count(vpcs, Vpc), _count(vpcs, Subnet), _count(vpcs, Route)) == counts


def test_the_default_vpc_layout(vpcs: Vpcs) -> None:
    vpcs.ensure_default(ACCOUNT)
    (vpc,) = vpcs.describe_vpcs(ACCOUNT).items
    assert vpc.vpc.id == default_vpc_id(ACCOUNT) and vpc.vpc.is_default
    assert vpc.vpc.cidr_block == "172.31.0.0/16"
    (subnet,) = vpcs.describe_subnets(ACCOUNT).items
    assert subnet.subnet.cidr_block == "172.31.0.0/20" and subnet.available_addresses == 4091
    assert subnet.subnet.default_for_az and subnet.subnet.map_public_ip_on_launch
    (table,) = vpcs.describe_route_tables(ACCOUNT).items
    (gateway,) = vpcs.describe_internet_gateways(ACCOUNT).items
    assert [(r.destination_cidr, r.gateway_id, r.origin) for r in table.routes] == [
        ("172.31.0.0/16", "local", "CreateRouteTable"),
        ("0.0.0.0/0", gateway.gateway.id, "CreateRoute"),
    ]
    assert [a.main for a in table.associations] == [True]
    (acl,) = vpcs.describe_network_acls(ACCOUNT).items
    assert [a.subnet_id for a in acl.associations] == [subnet.subnet.id]
    (options,) = vpcs.describe_dhcp_options(ACCOUNT).items
    assert options.options.configurations["domain-name-servers"] == ["AmazonProvidedDNS"]
    assert vpcs.vpc_attribute(ACCOUNT, vpc.vpc.id, "enableDnsHostnames") is True
    assert vpcs.vpc_attribute(ACCOUNT, vpc.vpc.id, "enableNetworkAddressUsageMetrics") is False


def test_accounts_see_only_their_own(vpcs: Vpcs) -> None:
    vpcs.ensure_all_defaults()
    mine = default_vpc_id(ACCOUNT)
    assert [v.vpc.id for v in vpcs.describe_vpcs(OTHER).items] == [default_vpc_id(OTHER)]
    with pytest.raises(CloudError) as error:
        vpcs.describe_vpcs(OTHER, [mine])
    assert error.value.code == "InvalidVpcID.NotFound"
    with pytest.raises(CloudError) as error:
        vpcs.describe_vpcs(OTHER, ["vpc-zz"])
    assert error.value.code == "InvalidVpcID.Malformed"
    with vpcs.db.session() as session, pytest.raises(CloudError) as error:
        subnet = vpcs.launch_subnet(session, ACCOUNT, None, None)
        vpcs.launch_subnet(session, OTHER, subnet.id, None)
    assert error.value.code == "InvalidSubnetID.NotFound"


def test_a_launch_makes_primary_interfaces(world: World) -> None:  # noqa: F811
    ids = world.run(min_count=2, max_count=2)
    with world.db.session() as session:
        rows = list(session.scalars(select(NetworkInterface).order_by(NetworkInterface.private_ip)))
        instances = {i.id: i for i in session.scalars(select(Instance))}
    assert sorted(r.instance_id for r in rows) == sorted(ids)
    assert [r.private_ip for r in rows] == ["172.31.0.4", "172.31.0.5"]
    for row in rows:
        instance = instances[row.instance_id]
        assert (instance.mac, instance.private_ip) == (row.mac, row.private_ip)
        assert instance.vpc_id == row.vpc_id == default_vpc_id(ACCOUNT)
        assert row.device_index == 0 and row.attachment_id.startswith("eni-attach-")
    interfaces = Interfaces(
        world.db, world.instances.tags, world.instances.geography, lambda _s, ids: {}
    )
    page: Page = interfaces.describe(ACCOUNT, max_results=5)
    assert len(page.items) == 2
    world.instances.terminate(ACCOUNT, ids[:1])
    world.set_state(ids[0], "terminated")
    with world.db.write_session() as session:
        world.instances.release_interfaces(session, ids[:1])
    assert len(interfaces.describe(ACCOUNT).items) == 1


def test_an_old_data_dir_joins_the_default_vpc(world: World, tmp_path: Path) -> None:  # noqa: F811
    """A database from before VPCs: an instance row with its address and MAC, migrated,
    then moved into its account's default VPC at start-up, keeping both."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    zone = world.instances.geography.zones[0].name
    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        for head in ("c002", "s002", "w003"):
            command.upgrade(config, head)
        connection.execute(
            text(
                "INSERT INTO accounts (id, name, created_at) VALUES "
                f"('{ACCOUNT}', 'a', '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO reservations (id, account_id, created_at) VALUES "
                f"('r-00000001', '{ACCOUNT}', '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO instances (id, reservation_id, account_id, launch_index, image_id, "
                "instance_type, vcpus, memory_mib, disk_gib, zone, security_groups, "
                "root_device_type, root_device_name, architecture, state, desired, "
                "transition_reason, shutdown_behavior, disable_api_termination, private_ip, mac, "
                "launch_time, boot_count) VALUES ('i-0000abcd', 'r-00000001', "
                f"'{ACCOUNT}', 0, 'emi-00000001', 'm1.small', 1, 256, 1, "
                f"'{zone}', '[]', 'instance-store', '/dev/sda1', "
                "'x86_64', 'running', 'running', '', 'terminate', 0, '172.31.0.11', "
                "'d0:0d:ac:1f:00:0b', '2026-01-01 00:00:00', 1)"
            )
        )
    engine.dispose()
    db = Database(url)  # migrates to every head: the network's tables, instances' columns
    tags = Tags(db)
    vpcs = Vpcs(db, tags, world.instances.geography)
    assert vpcs.ensure_all_defaults() == 1
    from karri.cloud.instances.service import Instances

    instances = Instances(
        world.instances.settings,
        db,
        tags,
        world.instances.vmtypes,
        world.instances.keypairs,
        world.instances.geography,
        images=world.instances.images,
        block_devices=world.instances.block_devices,
        subnets=vpcs,
        groups=SecurityGroups(db, tags),
    )
    assert instances.join_default_vpcs() == 1
    assert instances.join_default_vpcs() == 0
    row = instances.get(ACCOUNT, "i-0000abcd")
    assert row.vpc_id == default_vpc_id(ACCOUNT) and row.private_ip == "172.31.0.11"
    with db.session() as session:
        (interface,) = session.scalars(select(NetworkInterface))
    assert (interface.instance_id, interface.private_ip, interface.mac) == (
        "i-0000abcd",
        "172.31.0.11",
        "d0:0d:ac:1f:00:0b",
    )
    assert interface.subnet_id == row.subnet_id
