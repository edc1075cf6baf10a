"""The reconciler in-process: a real database (the project's migrations), real image disks
in a temporary cache, and ``FakeNode`` for the node. No QEMU, no HTTP; seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from karri.cloud.instances import states
from karri.cloud.instances.groups import default_group, stored
from karri.cloud.instances.launch import ImageDisks
from karri.cloud.instances.models import Instance, Reservation
from karri.cloud.instances.reconciler import Reconciler
from karri.cloud.network.address_models import ElasticIp
from karri.cloud.network.addresses import Addresses
from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.network.groups import SecurityGroups
from karri.cloud.network.models import NetworkInterface, Subnet, Vpc
from karri.cloud.tags import Tags
from karri.db.engine import Database
from karri.db.models import Account
from karri.node import ExitReason, Rule, UnknownInstance, VmState
from karri.node.fake import FakeNode
from karri.node.imagecache import ImageCache
from karri.node.publicnat import PublicPool

ACCOUNT, IMAGE, INSTANCE = "123456789012", "emi-00000001", "i-0000abcd"


class Records:
    """What the reconciler needs of the instances service: its driver slot, expiry and
    the release of a terminated instance's interfaces."""

    driver: object = None

    def forget_expired(self) -> int:
        return 0

    def release_interfaces(self, session: object, instance_ids: list[str]) -> None:
        self.released = [*getattr(self, "released", []), *instance_ids]


class Cloud:
    def __init__(self, tmp_path: Path) -> None:
        self.db = Database(f"sqlite:///{tmp_path / 'k.db'}")
        self.cache = ImageCache(tmp_path / "images")
        self.node = FakeNode()
        with self.db.session() as session:
            session.add(Account(id=ACCOUNT, name="a"))
            session.flush()
            session.add(Reservation(id="r-00000001", account_id=ACCOUNT))

        def node(lookup, on_exit, on_recovery) -> FakeNode:
            self.node = FakeNode(on_exit=on_exit, on_recovery=on_recovery)
            return self.node

        disks = ImageDisks(self.cache, lambda image_id: lambda path: path.write_bytes(b"img"))
        groups = SecurityGroups(self.db, Tags(self.db))
        groups.ensure_default(ACCOUNT)
        self.reconciler = Reconciler(
            self.db,
            Records(),  # type: ignore[arg-type]
            disks,
            "karri",
            node,
            groups=groups,
            addresses=Addresses(
                self.db, Tags(self.db), "karri", PublicPool("127.64.0.0/16", "test")
            ),
        )

    def add(self, root: str = "instance-store") -> None:
        with self.db.session() as session:
            session.add(
                Instance(
                    id=INSTANCE,
                    reservation_id="r-00000001",
                    account_id=ACCOUNT,
                    image_id=IMAGE,
                    instance_type="t1.micro",
                    vcpus=1,
                    memory_mib=256,
                    disk_gib=1,
                    zone="z",
                    root_device_type=root,
                    private_ip="172.31.0.10",
                    mac="d0:0d:00:00:ab:cd",
                )
            )
            # its place in the network, as RunInstances records it
            vpc = Vpc(
                id=default_vpc_id(ACCOUNT),
                account_id=ACCOUNT,
                cidr_block="172.31.0.0/16",
                cidr_association_id="vpc-cidr-assoc-1",
            )
            subnet = Subnet(
                id="subnet-1",
                account_id=ACCOUNT,
                vpc_id=vpc.id,
                cidr_block="172.31.0.0/20",
                zone="z",
            )
            session.add(vpc)
            session.flush()
            session.add(subnet)
            session.flush()
            session.add(
                NetworkInterface(
                    id="eni-1",
                    account_id=ACCOUNT,
                    vpc_id=vpc.id,
                    subnet_id=subnet.id,
                    zone="z",
                    mac="d0:0d:00:00:ab:cd",
                    private_ip="172.31.0.10",
                    instance_id=INSTANCE,
                    device_index=0,
                )
            )

    def row(self) -> Instance:
        with self.db.session() as session:
            row = session.get(Instance, INSTANCE)
            assert row is not None
            session.expunge(row)
            return row

    def ask(self, state: str, desired: str) -> None:
        """What an API call records: the next state and the intent; then the wake-up."""
        with self.db.session() as session:
            row = session.get(Instance, INSTANCE)
            assert row is not None
            row.state, row.desired = state, desired
        self.reconciler.wake()

    async def reaches(self, state: str, timeout: float = 10.0) -> Instance:
        deadline = time.monotonic() + timeout
        while (row := await asyncio.to_thread(self.row)).state != state:
            assert time.monotonic() < deadline, f"{row.state}, not {state}"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)  # and nothing else follows
        return await asyncio.to_thread(self.row)


@pytest.fixture
def cloud(tmp_path: Path) -> Cloud:
    return Cloud(tmp_path)


def run(cloud: Cloud, scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await cloud.reconciler.start()
        try:
            await asyncio.wait_for(scenario(), 30)
        finally:
            await cloud.reconciler.close()

    asyncio.run(main())


async def running(cloud: Cloud, root: str = "instance-store") -> Instance:
    await asyncio.to_thread(cloud.add, root)
    cloud.reconciler.wake()
    return await cloud.reaches(states.RUNNING)


def test_launch_makes_a_pending_instance_running(cloud: Cloud) -> None:
    async def scenario() -> None:
        row = await running(cloud)
        assert row.public_ip and row.public_ip.startswith("127.64.")  # the cloud chose it
        assert row.boot_count == 1
        info = cloud.node.info(INSTANCE)
        assert (info.state, info.private_ip, info.mac) == (
            VmState.RUNNING,
            "172.31.0.10",
            "d0:0d:00:00:ab:cd",
        )
        assert (cloud.cache.root / IMAGE / "users" / INSTANCE).exists()

    run(cloud, scenario)


def test_stop_shuts_the_guest_down(cloud: Cloud) -> None:
    async def scenario() -> None:
        await running(cloud, "ebs")
        cloud.ask(states.STOPPING, states.STOPPED)
        row = await cloud.reaches(states.STOPPED)
        assert (row.desired, row.public_ip, row.state_reason_code) == (states.STOPPED, None, None)
        exit = cloud.node.info(INSTANCE).exit
        assert exit is not None and exit.reason == ExitReason.HOST_SHUTDOWN

    run(cloud, scenario)


def test_a_late_report_of_its_own_stop_leaves_the_restarted_instance_running(cloud: Cloud) -> None:
    """The node reports an exit after its bookkeeping (under load, seconds later): by then
    CreateImage may have started the instance again; that old report must not stop it."""

    async def scenario() -> None:
        await running(cloud, "ebs")
        cloud.ask(states.STOPPING, states.STOPPED)
        await cloud.reaches(states.STOPPED)
        stale = cloud.node.info(INSTANCE).exit
        assert stale is not None
        cloud.ask(states.PENDING, states.RUNNING)
        await cloud.reaches(states.RUNNING)
        cloud.reconciler.on_exit(stale)
        await asyncio.sleep(0.3)
        row = await asyncio.to_thread(cloud.row)
        assert (row.state, row.boot_count) == (states.RUNNING, 2)

    run(cloud, scenario)


def test_terminate_destroys_the_guest_and_frees_the_image(cloud: Cloud) -> None:
    async def scenario() -> None:
        await running(cloud)
        cloud.ask(states.SHUTTING_DOWN, states.TERMINATED)
        row = await cloud.reaches(states.TERMINATED)
        assert row.terminated_at is not None
        assert (row.private_ip, row.mac, row.public_ip) == (None, None, None)
        with pytest.raises(UnknownInstance):
            cloud.node.info(INSTANCE)
        assert not (cloud.cache.root / IMAGE / "users" / INSTANCE).exists()

    run(cloud, scenario)


def test_a_guest_shutdown_stops_an_ebs_backed_instance(cloud: Cloud) -> None:
    async def scenario() -> None:
        await running(cloud, "ebs")
        cloud.node.guest_ended(INSTANCE, ExitReason.GUEST_SHUTDOWN, "powered itself off")
        row = await cloud.reaches(states.STOPPED)
        assert (row.state_reason_code, row.state_reason_message) == states.GUEST_INITIATED
        assert cloud.node.info(INSTANCE).state == VmState.EXITED  # kept: it starts again

    run(cloud, scenario)


def test_a_crash_terminates_an_instance_store_instance(cloud: Cloud) -> None:
    async def scenario() -> None:
        await running(cloud)
        cloud.node.guest_ended(INSTANCE, ExitReason.CRASHED, "QEMU was killed by signal 9")
        row = await cloud.reaches(states.TERMINATED)
        assert row.state_reason_code == states.SERVER_ERROR
        assert row.state_reason_message == (f"{states.SERVER_ERROR}: QEMU was killed by signal 9")
        with pytest.raises(UnknownInstance):
            cloud.node.info(INSTANCE)

    run(cloud, scenario)


def test_a_recovery_by_the_node_is_the_state_reason(cloud: Cloud) -> None:
    description = "[Completed] relaunched under TCG after a KVM fault: internal error"

    async def scenario() -> None:
        await running(cloud)
        cloud.node.relaunched(INSTANCE, description)
        deadline = time.monotonic() + 10
        while (row := await asyncio.to_thread(cloud.row)).state_reason_code is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert row.state == states.RUNNING
        assert row.state_reason_message == f"{states.SERVER_ERROR}: {description}"

    run(cloud, scenario)


def test_the_node_has_the_vpcs_groups_before_it_starts_and_before_a_launch(
    cloud: Cloud,
) -> None:
    """The account's default VPC has its default group (its members reach each other, all
    egress); the spec names that VPC, the zone's default subnet and the group."""
    vpc = default_vpc_id(ACCOUNT)
    group = default_group(ACCOUNT).group_id

    async def scenario() -> None:
        assert [g.group_id for g in cloud.node.groups[vpc]] == [group]
        (rules,) = cloud.node.groups[vpc]
        assert rules.ingress == (Rule("-1", groups=(group,)),)
        assert rules.egress == (Rule("-1", cidrs=("0.0.0.0/0",)),)
        await asyncio.to_thread(cloud.add)
        with cloud.db.session() as session:
            row = session.get(Instance, INSTANCE)
            assert row is not None
            row.security_groups = stored([default_group(ACCOUNT)])
        cloud.reconciler.wake()
        await cloud.reaches(states.RUNNING)
        spec = cloud.node._specs[INSTANCE]
        assert (spec.vpc_id, spec.subnet, spec.security_groups) == (
            vpc,
            "172.31.0.0/20",
            (group,),
        )
        assert (await cloud.reconciler.lookup(INSTANCE)).instance_id == INSTANCE

    run(cloud, scenario)


def test_a_stopped_instance_keeps_its_elastic_ip_and_gets_it_at_start(cloud: Cloud) -> None:
    async def scenario() -> None:
        auto = (await running(cloud, "ebs")).public_ip
        eip = "127.64.200.1"
        with cloud.db.session() as session:
            session.add(
                ElasticIp(
                    id="eipalloc-00000001",
                    account_id=ACCOUNT,
                    public_ip=eip,
                    network_border_group="karri",
                    association_id="eipassoc-00000001",
                    instance_id=INSTANCE,
                    network_interface_id="eni-1",
                    private_ip="172.31.0.10",
                )
            )
        cloud.ask(states.STOPPING, states.STOPPED)
        assert (await cloud.reaches(states.STOPPED)).public_ip == eip  # kept while stopped
        cloud.ask(states.PENDING, states.RUNNING)
        row = await cloud.reaches(states.RUNNING)
        assert row.public_ip == eip != auto
        assert cloud.node.info(INSTANCE).public_ip == eip  # what the node was told
        cloud.ask(states.SHUTTING_DOWN, states.TERMINATED)
        assert (await cloud.reaches(states.TERMINATED)).public_ip is None
        with cloud.db.session() as session:
            address = session.get(ElasticIp, "eipalloc-00000001")
            assert address is not None and address.association_id is None  # still the account's

    run(cloud, scenario)
