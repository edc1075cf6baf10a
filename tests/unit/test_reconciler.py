"""The reconciler in-process: a real database (the project's migrations), real image disks
in a temporary cache, and ``FakeNode`` for the node, called in process and again through
the transport (``RemoteNode`` → a node agent on 127.0.0.1). No QEMU; seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from karri.cloud.instances import states
from karri.cloud.instances.fleet import NodeDirectory
from karri.cloud.instances.groups import default_group, stored
from karri.cloud.instances.launch import ImageDisks
from karri.cloud.instances.models import Instance, Reservation
from karri.cloud.instances.reconciler import Reconciler
from karri.cloud.network.address_models import ElasticIp
from karri.cloud.network.addresses import Addresses
from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.network.groups import SecurityGroups
from karri.cloud.network.models import InterfaceAddress, NetworkInterface, Subnet, Vpc
from karri.cloud.nodes.remote import RemoteNode
from karri.cloud.tags import Tags
from karri.db.engine import Database
from karri.db.models import Account
from karri.node import (
    ExitReason,
    ImageRef,
    ImageRoot,
    ProfileMetadata,
    Rule,
    UnknownInstance,
    VmState,
)
from karri.node.fake import FakeNode
from karri.node.publicnat import PublicPool
from tests.unit.test_remote_node import Agent, served

ACCOUNT, IMAGE, INSTANCE = "123456789012", "emi-00000001", "i-0000abcd"


class Records:
    """What the reconciler needs of the instances service: its driver slot, expiry and
    what a stop or termination settles; ``settled`` says, for each, the state the row had
    in that transaction and what the node held of the instance then."""

    driver: object = None

    def __init__(self, node_has: Callable[[str], str]) -> None:
        self.node_has = node_has
        self.settled: list[tuple[str, str, str]] = []

    def forget_expired(self) -> int:
        return 0

    def _settled(self, session: Session, instance_id: str) -> None:
        row = session.get(Instance, instance_id)
        assert row is not None
        self.settled.append((instance_id, row.state, self.node_has(instance_id)))

    def release_terminated(self, session: Session, instance_ids: list[str]) -> None:
        for instance_id in instance_ids:
            self._settled(session, instance_id)

    def settle_stopped(self, session: Session, instance_id: str) -> None:
        self._settled(session, instance_id)


class Cloud:
    """The reconciler and its ``FakeNode`` (``node``): in process, or (``remote``) behind
    a node agent in a thread that the reconciler reaches through ``RemoteNode``, the
    node's reports handed to the reconciler's loop as the gateway would."""

    def __init__(
        self, tmp_path: Path, remote: bool = False, directory: NodeDirectory | None = None
    ) -> None:
        self.db = Database(f"sqlite:///{tmp_path / 'k.db'}")
        self.refs: list[str] = []  # the images whose references launches asked for
        self.node = FakeNode()
        self.loop: asyncio.AbstractEventLoop | None = None  # the reconciler's, once it runs
        self.agent: Agent | None = None
        with self.db.write_session() as session:
            session.add(Account(id=ACCOUNT, name="a"))
            session.flush()
            session.add(Reservation(id="r-00000001", account_id=ACCOUNT))

        def node(lookup, on_exit, on_recovery) -> FakeNode | RemoteNode:
            if not remote:
                self.node = FakeNode(on_exit=on_exit, on_recovery=on_recovery)
                return self.node
            self.node = FakeNode(on_exit=self._relay(on_exit), on_recovery=self._relay(on_recovery))
            self.agent, client = served(self.node, tmp_path)
            return RemoteNode("n1", self.agent.url, client, timeout=10)

        def ref(image_id: str) -> ImageRef:
            self.refs.append(image_id)
            return ImageRef(image_id, 3, "0" * 64, f"http://127.0.0.1:1/{image_id}")

        self.released: list[str] = []  # the instances whose volumes' NBD exports ended

        async def release(instance_id: str) -> None:
            self.released.append(instance_id)

        disks = ImageDisks(ref)
        disks.release = release  # type: ignore[method-assign]
        groups = SecurityGroups(self.db, Tags(self.db))
        groups.ensure_default(ACCOUNT)
        self.records = Records(self._node_has)
        self.reconciler = Reconciler(
            self.db,
            self.records,  # type: ignore[arg-type]
            disks,
            "karri",
            node,
            groups=groups,
            addresses=Addresses(
                self.db, Tags(self.db), "karri", PublicPool("127.64.0.0/16", "test")
            ),
            zone="z",
            directory=directory,
        )

    def _relay(self, hearer: Callable[..., None]) -> Callable[..., None]:
        def heard(*report: Any) -> None:
            assert self.loop is not None
            self.loop.call_soon_threadsafe(hearer, *report)

        return heard

    def _node_has(self, instance_id: str) -> str:
        try:
            return self.node.info(instance_id).state.value
        except UnknownInstance:
            return "nothing"

    def add(self, root: str = "instance-store") -> None:
        with self.db.write_session() as session:
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
                    vpc_id=default_vpc_id(ACCOUNT),
                    subnet_id="subnet-1",
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
        with self.db.write_session() as session:
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


@pytest.fixture(params=["in-process", "remote"])
def cloud(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cloud]:
    made = Cloud(tmp_path, remote=request.param == "remote")
    yield made
    if made.agent is not None:
        made.agent.stop()


def run(cloud: Cloud, scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        cloud.loop = asyncio.get_running_loop()
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
        root = cloud.node._specs[INSTANCE].root
        assert isinstance(root, ImageRoot) and root.image.image_id == IMAGE  # a reference
        assert cloud.refs == [IMAGE]

    run(cloud, scenario)


def test_stop_shuts_the_guest_down(cloud: Cloud) -> None:
    async def scenario() -> None:
        await running(cloud, "ebs")
        cloud.ask(states.STOPPING, states.STOPPED)
        row = await cloud.reaches(states.STOPPED)
        assert (row.desired, row.public_ip, row.state_reason_code) == (states.STOPPED, None, None)
        exit = cloud.node.info(INSTANCE).exit
        assert exit is not None and exit.reason == ExitReason.HOST_SHUTDOWN
        assert cloud.records.settled == [(INSTANCE, states.STOPPED, VmState.EXITED.value)]
        assert cloud.released == [INSTANCE]  # its volumes' exports (none here) ended

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


def test_terminate_destroys_the_guest(cloud: Cloud) -> None:
    async def scenario() -> None:
        await running(cloud)
        vpc = default_vpc_id(ACCOUNT)
        cloud.node.groups.pop(vpc)
        cloud.ask(states.SHUTTING_DOWN, states.TERMINATED)
        row = await cloud.reaches(states.TERMINATED)
        assert cloud.node.groups[vpc]  # the cloud pushed the VPC's groups after it left
        assert INSTANCE not in cloud.reconciler._memberships
        assert row.terminated_at is not None
        assert (row.private_ip, row.mac, row.public_ip) == (None, None, None)
        with pytest.raises(UnknownInstance):
            cloud.node.info(INSTANCE)
        # its volumes came free in the transaction that said terminated, the guest gone
        assert cloud.records.settled == [(INSTANCE, states.TERMINATED, "nothing")]
        assert cloud.released == [INSTANCE]

    run(cloud, scenario)


def test_a_guest_shutdown_stops_an_ebs_backed_instance(cloud: Cloud) -> None:
    async def scenario() -> None:
        await running(cloud, "ebs")
        cloud.node.guest_ended(INSTANCE, ExitReason.GUEST_SHUTDOWN, "powered itself off")
        row = await cloud.reaches(states.STOPPED)
        assert (row.state_reason_code, row.state_reason_message) == states.GUEST_INITIATED
        assert cloud.node.info(INSTANCE).state == VmState.EXITED  # kept: it starts again
        assert cloud.records.settled == [(INSTANCE, states.STOPPED, VmState.EXITED.value)]

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
        with cloud.db.write_session() as session:
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
        with cloud.db.write_session() as session:
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


def test_the_metadata_carries_the_profiles_answer_fresh_at_every_lookup(cloud: Cloud) -> None:
    """The reconciler keeps an instance's metadata, never its credentials: those are the
    profiles' to cache and renew, asked at every metadata request."""
    answers: dict[str, ProfileMetadata | None] = {INSTANCE: None}

    class Profiles:
        def metadata(self, instance_id: str) -> ProfileMetadata | None:
            return answers[instance_id]

    cloud.reconciler.profiles = Profiles()

    async def scenario() -> None:
        await running(cloud)
        assert (await cloud.reconciler.lookup(INSTANCE)).iam is None
        profile = ProfileMetadata("arn:aws:iam::1:instance-profile/p", "AIPA1", datetime.now(UTC))
        answers[INSTANCE] = profile
        assert (await cloud.reconciler.lookup(INSTANCE)).iam == profile

    run(cloud, scenario)


def test_an_address_held_by_another_owner_on_the_host_is_not_reported(cloud: Cloud) -> None:
    """Another karri on the host holds the address the cloud chose: the node maps no other
    address on its own; the cloud picks another automatic address (and never that one
    again), and an elastic IP it cannot map leaves the instance with none; the row says
    what the node maps."""
    first = next(PublicPool("127.64.0.0/16", "test").candidates())
    cloud.node.held_elsewhere.add(first)

    async def scenario() -> None:
        row = await running(cloud, "ebs")
        assert row.public_ip not in (None, first)
        assert cloud.node.info(INSTANCE).public_ip == row.public_ip
        eip = "127.64.200.1"
        cloud.node.held_elsewhere.add(eip)
        with cloud.db.write_session() as session:
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
            session.get(Instance, INSTANCE).public_ip = eip  # as AssociateAddress records it
        await cloud.reconciler._push_public([INSTANCE])
        assert (await asyncio.to_thread(cloud.row)).public_ip is None
        assert cloud.node.info(INSTANCE).public_ip is None
        cloud.ask(states.STOPPING, states.STOPPED)
        await cloud.reaches(states.STOPPED)
        cloud.ask(states.PENDING, states.RUNNING)
        assert (await cloud.reaches(states.RUNNING)).public_ip is None
        assert cloud.node.info(INSTANCE).public_ip is None

    run(cloud, scenario)


@pytest.mark.parametrize("root", ["instance-store", "ebs"])
def test_a_guest_ended_by_the_network_upgrade_is_launched_again_once(
    cloud: Cloud, root: str
) -> None:
    """A data dir from before VPCs: the node ends the guests of the old namespace and
    keeps their disks; the cloud launches each again in its VPC, saying why."""

    async def scenario() -> None:
        await running(cloud, root)
        cloud.node.guest_ended(INSTANCE, ExitReason.NETWORK_UPGRADE, "network upgraded")
        deadline = time.monotonic() + 10
        while (row := await asyncio.to_thread(cloud.row)).boot_count < 2:
            assert time.monotonic() < deadline, row.state
            await asyncio.sleep(0.02)
        assert row.state == states.RUNNING
        assert row.state_reason_code == states.SERVER_ERROR
        assert row.state_reason_message == (
            f"{states.SERVER_ERROR}: restarted once: network upgraded"
        )
        assert cloud.node.info(INSTANCE).state == VmState.RUNNING
        assert cloud.refs == [IMAGE, IMAGE]  # a reference again for the relaunch

    run(cloud, scenario)


def test_an_extra_interface_is_plugged_regrouped_and_unplugged(cloud: Cloud) -> None:
    """Attaching (``attaching``) becomes ``attached`` once the node has the card; a
    change of its groups reaches the card; detaching ends with it gone from the node."""
    group = default_group(ACCOUNT).group_id

    def attach(session: Session) -> None:
        session.add(
            NetworkInterface(
                id="eni-2",
                account_id=ACCOUNT,
                vpc_id=default_vpc_id(ACCOUNT),
                subnet_id="subnet-1",
                zone="z",
                mac="0e:00:00:00:00:02",
                private_ip="172.31.0.11",
                instance_id=INSTANCE,
                attachment_id="eni-attach-2",
                device_index=1,
                attachment_status="attaching",
                security_groups=stored([default_group(ACCOUNT)]),
            )
        )

    def status() -> str | None:
        with cloud.db.session() as session:
            row = session.get(NetworkInterface, "eni-2")
            return row.attachment_status if row else None

    def change(session: Session, **values: object) -> None:
        row = session.get(NetworkInterface, "eni-2")
        for name, value in values.items():
            setattr(row, name, value)

    async def until(check: Callable[[], bool]) -> None:
        while not await asyncio.to_thread(check):
            await asyncio.sleep(0.02)

    async def scenario() -> None:
        await running(cloud)
        await asyncio.to_thread(lambda: _in(cloud, attach))
        cloud.reconciler.wake()
        await until(lambda: status() == "attached")
        (card,) = cloud.node.cards(INSTANCE)
        assert (card.interface_id, card.mac, card.private_ip) == (
            "eni-2",
            "0e:00:00:00:00:02",
            "172.31.0.11",
        )
        assert (card.subnet, card.device_index, card.security_groups) == (
            "172.31.0.0/20",
            1,
            (group,),
        )

        def secondary(session: Session) -> None:
            for owner, ip in (("eni-1", "172.31.0.20"), ("eni-2", "172.31.0.21")):
                session.add(
                    InterfaceAddress(
                        network_interface_id=owner, private_ip=ip, vpc_id=default_vpc_id(ACCOUNT)
                    )
                )

        await asyncio.to_thread(lambda: _in(cloud, secondary))
        await asyncio.to_thread(cloud.reconciler.interfaces_changed, INSTANCE)
        assert cloud.node.spec(INSTANCE).secondary_ips == ("172.31.0.20",)  # in force on return
        assert cloud.node.cards(INSTANCE)[0].secondary_ips == ("172.31.0.21",)
        await asyncio.to_thread(lambda: _in(cloud, lambda s: change(s, security_groups=[])))
        await asyncio.to_thread(cloud.reconciler.groups_changed, default_vpc_id(ACCOUNT))
        assert cloud.node.cards(INSTANCE)[0].security_groups == ()  # in force on return
        await asyncio.to_thread(
            lambda: _in(cloud, lambda s: change(s, attachment_status="detaching"))
        )
        cloud.reconciler.wake()
        await until(lambda: status() is None)
        assert cloud.node.cards(INSTANCE) == ()

    run(cloud, scenario)


def _in(cloud: Cloud, work: Callable[[Session], None]) -> None:
    with cloud.db.write_session() as session:
        work(session)
