"""The instances service in-process: a real database made by the project's migrations, and
fakes of what the service is given (the image catalog, EBS's block devices, the reconciler
as its driver). No QEMU, no HTTP."""

from __future__ import annotations

import base64
import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from karri.cloud.images.views import LaunchImage
from karri.cloud.instances import states
from karri.cloud.instances.models import Instance
from karri.cloud.instances.placement import NodeName, NodeSlot
from karri.cloud.instances.requests import AttributeChange, AttributeRequest, RunRequest
from karri.cloud.instances.service import Instances
from karri.cloud.keypairs import KeyPairs
from karri.cloud.network.groups import SecurityGroups
from karri.cloud.network.vpcs import Vpcs
from karri.cloud.regions import Geography
from karri.cloud.tags import Tags
from karri.cloud.vmtypes import VmTypes
from karri.cloud.volumes.mappings import BlockDeviceMapping
from karri.cloud.volumes.models import VolumeAttachment
from karri.config import Settings
from karri.db.engine import Database
from karri.db.models import Account
from karri.errors import CloudError
from karri.node import Check, InstanceHealth

ACCOUNT = "123456789012"
STORE_IMAGE = LaunchImage(
    "emi-00000001", "eki-00000001", None, "instance-store", "/dev/sda1", "x86_64"
)
ROOMY = (16, 16384)  # vCPUs, MiB
EBS_IMAGE = LaunchImage("emi-00000002", None, None, "ebs", "/dev/sda1", "x86_64")


class FakeImages:
    """The image catalog: two images any account may launch."""

    def __init__(self) -> None:
        self.images = {i.image_id: i for i in (STORE_IMAGE, EBS_IMAGE)}

    def for_launch(
        self, account_id: str, image_id: str, kernel_id: str | None, ramdisk_id: str | None
    ) -> LaunchImage:
        if image_id not in self.images:
            raise CloudError("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")
        image = self.images[image_id]
        return dataclasses.replace(
            image, kernel_id=kernel_id or image.kernel_id, ramdisk_id=ramdisk_id or image.ramdisk_id
        )

    def check_launchable(self, account_id: str, image_id: str, kind: str) -> None:
        if not image_id.startswith({"kernel": "eki-", "ramdisk": "eri-"}[kind]):
            raise CloudError("InvalidParameterValue", f"{image_id} is not a {kind} image")


class FakeBlockDevices:
    """EBS: records the launches it was told of (in RunInstances' own transaction)."""

    def __init__(self) -> None:
        self.launches: list[tuple[list[str], bool, dict[str, str]]] = []
        self.during_launch: Callable[[], None] | None = None  # in RunInstances' transaction

    def create_for_launch(
        self,
        session: Session,
        account_id: str,
        instances: Sequence[Instance],
        image_mappings: Sequence[BlockDeviceMapping],
        request_mappings: Sequence[BlockDeviceMapping] | None,
        *,
        ebs_root: bool,
        tags: Mapping[str, str] | None = None,
    ) -> list[BlockDeviceMapping]:
        self.launches.append(([i.id for i in instances], ebs_root, dict(tags or {})))
        if self.during_launch is not None:
            self.during_launch()
        return []

    def instance_mappings(self, instance_ids: Sequence[str]) -> dict[str, list[VolumeAttachment]]:
        return {
            i: [VolumeAttachment(volume_id="vol-1", instance_id=i, device="/dev/sda1")]
            for i in instance_ids
        }

    def set_delete_on_termination(
        self, account_id: str, instance_id: str, device: str, value: bool
    ) -> None:
        raise AssertionError("not used here")

    def release_terminated(self, session: Session, instance_ids: Sequence[str]) -> None:
        self.released = [*getattr(self, "released", []), *instance_ids]

    def settle_stopped(self, session: Session, instance_id: str) -> None:
        raise AssertionError("the reconciler's")


class FakeDriver:
    """The reconciler: a node (of 2 vCPUs and 1 GiB), and what it observed of instances."""

    def __init__(self) -> None:
        self.room = (2, 1024)
        self.joined: list[NodeSlot] = []  # nodes on other hosts
        self.broken: set[str] = set()  # nodes whose heartbeats were missed
        self.woken = 0
        self.rebooted: list[str] = []
        self.healths: dict[str, InstanceHealth] = {}

    def wake(self) -> None:
        self.woken += 1

    def reboot(self, instance_id: str, node: NodeName) -> None:
        self.rebooted.append(instance_id)

    def console_output(self, instance_id: str, node: NodeName) -> bytes:
        return f"console of {instance_id}".encode()

    def slots(self) -> list[NodeSlot]:
        return [NodeSlot(None, "eucalyptus-1a", *self.room), *self.joined]

    def health(self, instance_id: str, node: NodeName) -> InstanceHealth | str:
        return self.healths.get(instance_id, "the node has not reported on it yet")

    def node_broken(self, node: NodeName) -> bool:
        return node in self.broken


@dataclasses.dataclass
class World:
    db: Database
    instances: Instances
    driver: FakeDriver
    block_devices: FakeBlockDevices
    stopped: list[str]

    def run(self, **fields: Any) -> list[str]:
        view = self.instances.run(ACCOUNT, launch(**fields))
        return [i.instance.id for i in view.instances]

    def count(self) -> int:
        with self.db.session() as session:
            return session.scalar(select(func.count()).select_from(Instance)) or 0

    def set_state(self, instance_id: str, state: str) -> None:
        """What the reconciler does once the node has acted."""
        with self.db.write_session() as session:
            row = session.get(Instance, instance_id)
            assert row is not None
            row.state = row.desired = state

    def state(self, instance_id: str) -> str:
        return self.instances.get(ACCOUNT, instance_id).state


@pytest.fixture
def world(tmp_path: Path) -> World:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    with db.write_session() as session:
        session.add(Account(id=ACCOUNT, name="a"))
    settings = Settings(data_dir=tmp_path)
    tags = Tags(db)
    geography = Geography(settings)
    vpcs = Vpcs(db, tags, geography)
    vpcs.ensure_default(ACCOUNT)
    vmtypes = VmTypes(db)
    vmtypes.ensure_defaults()
    driver, block_devices, stopped = FakeDriver(), FakeBlockDevices(), []
    groups = SecurityGroups(db, tags)
    groups.ensure_default(ACCOUNT)
    instances = Instances(
        settings,
        db,
        tags,
        vmtypes,
        KeyPairs(db, tags),
        geography,
        images=FakeImages(),
        block_devices=block_devices,
        subnets=vpcs,
        groups=groups,
        user_stopped=stopped.extend,
        driver=driver,
    )
    return World(db, instances, driver, block_devices, stopped)


def launch(**fields: Any) -> RunRequest:
    """A RunInstances of one instance of the instance-store image, but for ``fields``."""
    return RunRequest(
        **{"image_id": STORE_IMAGE.image_id, "min_count": 1, "max_count": 1, **fields}
    )


def code_of(call: Any) -> str:
    with pytest.raises(CloudError) as raised:
        call()
    return raised.value.code


# -- RunInstances ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"min_count": None}, "MissingParameter"),
        ({"max_count": None}, "MissingParameter"),
        ({"min_count": 0}, "InvalidParameterValue"),
        ({"min_count": 2, "max_count": 1}, "InvalidParameterValue"),
        ({"image_id": None}, "MissingParameter"),
        ({"image_id": "emi-0000dead"}, "InvalidAMIID.NotFound"),
        ({"instance_type": "m9.huge"}, "InvalidParameterValue"),
        ({"key_name": "nobody"}, "InvalidKeyPair.NotFound"),
        ({"user_data": "not base64!"}, "InvalidParameterValue"),
        ({"user_data": base64.b64encode(b"x" * (16 * 1024 + 1)).decode()}, "InvalidParameterValue"),
        ({"shutdown_behavior": "hibernate"}, "InvalidParameterValue"),
        ({"zone": "elsewhere-1a"}, "InvalidParameterValue"),
        ({"security_groups": ("web",)}, "InvalidGroup.NotFound"),
        ({"private_ip": "172.31.0.9", "max_count": 2}, "InvalidParameterCombination"),
        ({"client_token": "x" * 65}, "InvalidParameterValue"),
    ],
)
def test_run_refuses_a_bad_request_and_records_nothing(
    world: World, fields: dict[str, Any], code: str
) -> None:
    assert code_of(lambda: world.run(**fields)) == code
    assert world.count() == 0
    assert world.block_devices.launches == []


def test_run_records_the_instances_and_wakes_the_driver(world: World) -> None:
    world.driver.room = ROOMY
    ids = world.run(
        max_count=2,
        instance_type="t1.micro",
        user_data=base64.b64encode(b"#!/bin/sh").decode(),
        instance_tags={"Name": "web"},
        volume_tags={"disk": "yes"},
    )
    assert len(ids) == 2
    first = world.instances.get(ACCOUNT, ids[0])
    assert (first.state, first.desired, first.instance_type) == ("pending", "running", "t1.micro")
    assert (first.kernel_id, first.shutdown_behavior, first.user_data) == (
        "eki-00000001",
        "terminate",
        b"#!/bin/sh",
    )
    assert world.block_devices.launches == [(ids, False, {"disk": "yes"})]
    assert world.driver.woken == 1
    ebs = world.instances.get(ACCOUNT, world.run(image_id=EBS_IMAGE.image_id)[0])
    assert (ebs.root_device_type, ebs.shutdown_behavior) == ("ebs", "stop")
    assert world.block_devices.launches[-1][1] is True


def test_run_is_all_or_nothing_at_min_count(world: World) -> None:
    # m1.small is 1 vCPU and 256 MiB: the node's 2 vCPUs hold two of them
    assert len(world.run(min_count=1, max_count=5)) == 2
    with pytest.raises(CloudError) as refused:
        world.run()
    assert (refused.value.code, refused.value.status) == ("InsufficientInstanceCapacity", 500)
    assert world.count() == 2


def test_run_launches_none_when_min_count_does_not_fit(world: World) -> None:
    assert code_of(lambda: world.run(min_count=3, max_count=3)) == "InsufficientInstanceCapacity"
    assert world.count() == 0
    assert world.run(min_count=2, max_count=2)  # what fits still launches


def test_instances_spread_over_the_zones_nodes_and_start_where_there_is_room(
    world: World,
) -> None:
    world.driver.joined = [
        NodeSlot("n1", "eucalyptus-1a", 1, 1024),
        NodeSlot("b1", "eucalyptus-1b", 8, 8192),  # another zone's: never this launch's
    ]
    ids = world.run(min_count=3, max_count=3, image_id=EBS_IMAGE.image_id)  # one reservation
    assert [world.instances.get(ACCOUNT, i).node for i in ids] == [None, "n1", None]
    assert code_of(lambda: world.run()) == "InsufficientInstanceCapacity"
    world.set_state(ids[1], states.STOPPED)  # n1 has room again
    world.set_state(ids[2], states.STOPPED)  # and the cloud's own node
    world.instances.start(ACCOUNT, [ids[1], ids[2]])  # round robin goes on after the last
    assert [world.instances.get(ACCOUNT, i).node for i in ids[1:]] == ["n1", None]


def test_terminated_instances_free_their_capacity(world: World) -> None:
    ids = world.run(min_count=2, max_count=2)
    for instance_id in ids:
        world.set_state(instance_id, states.TERMINATED)
    assert len(world.run(min_count=2, max_count=2)) == 2


def test_a_retry_during_a_slow_run_answers_its_reservation(world: World) -> None:
    """botocore retries a RunInstances that outlived its read timeout with the same
    ClientToken while the first call still runs: the retry waits for it and answers the
    same reservation; nothing is created twice."""
    inside, release = threading.Event(), threading.Event()

    def slow() -> None:
        inside.set()
        assert release.wait(30)

    world.block_devices.during_launch = slow
    answers: dict[str, Any] = {}

    def call(name: str) -> None:
        answers[name] = world.instances.run(ACCOUNT, launch(client_token="slow", max_count=2))

    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert inside.wait(30)
    world.block_devices.during_launch = None
    retry = threading.Thread(target=call, args=("retry",))
    retry.start()
    retry.join(0.5)
    assert retry.is_alive()  # waits for the first call's transaction
    release.set()
    first.join(30)
    retry.join(30)
    assert answers["retry"].reservation.id == answers["first"].reservation.id
    ids = [i.instance.id for i in answers["first"].instances]
    assert [i.instance.id for i in answers["retry"].instances] == ids
    assert world.count() == 2 and len(world.block_devices.launches) == 1


def test_client_token_makes_run_idempotent(world: World) -> None:
    first = world.instances.run(ACCOUNT, launch(client_token="t"))
    again = world.instances.run(ACCOUNT, launch(client_token="t"))
    assert again.reservation.id == first.reservation.id
    assert [i.instance.id for i in again.instances] == [i.instance.id for i in first.instances]
    assert world.count() == 1
    assert (
        code_of(lambda: world.run(client_token="t", max_count=2)) == "IdempotentParameterMismatch"
    )
    assert world.count() == 1


# -- DescribeInstances ----------------------------------------------------------------------


def test_describe_filters_and_pages(world: World) -> None:
    small = world.run(min_count=1, max_count=1)
    micro = world.run(instance_type="t1.micro", max_count=1, instance_tags={"role": "db"})
    views, _token = world.instances.describe(
        ACCOUNT, filters=[{"Name": "instance-type", "Values": ["t1.micro"]}]
    )
    assert [i.instance.id for r in views for i in r.instances] == micro
    views, _token = world.instances.describe(
        ACCOUNT, filters=[{"Name": "tag:role", "Values": ["db"]}]
    )
    assert [i.tags for r in views for i in r.instances] == [{"role": "db"}]
    views, _token = world.instances.describe(ACCOUNT, small)
    assert [i.instance.id for r in views for i in r.instances] == small
    assert code_of(lambda: world.instances.describe(ACCOUNT, ["i-0000dead"])) == (
        "InvalidInstanceID.NotFound"
    )
    assert code_of(lambda: world.instances.describe(ACCOUNT, ["x-1"])) == (
        "InvalidInstanceID.Malformed"
    )
    assert world.instances.describe("210987654321")[0] == []  # another account sees none


def test_describe_pages_in_id_order(world: World) -> None:
    world.driver.room = ROOMY
    ids = sorted(world.run(min_count=7, max_count=7))
    first, token = world.instances.describe(ACCOUNT, max_results=5)
    assert token is not None
    rest, last = world.instances.describe(ACCOUNT, max_results=5, next_token=token)
    seen = [i.instance.id for page in (first, rest) for r in page for i in r.instances]
    assert sorted(seen) == ids and last is None
    assert [i.instance.id for r in first for i in r.instances] == ids[:5]


# -- state changes --------------------------------------------------------------------------


def test_terminate(world: World) -> None:
    world.driver.room = ROOMY
    pending, stopped, protected = (
        world.run()[0],
        world.run(image_id=EBS_IMAGE.image_id)[0],
        world.run(disable_api_termination=True)[0],
    )
    world.set_state(stopped, states.STOPPED)
    woken = world.driver.woken
    assert code_of(lambda: world.instances.terminate(ACCOUNT, [protected])) == (
        "OperationNotPermitted"
    )
    changes = world.instances.terminate(ACCOUNT, [pending, stopped])
    assert changes == [
        (pending, "pending", "shutting-down"),
        (stopped, "stopped", "terminated"),  # nothing runs: no need to wait for the node
    ]
    assert world.block_devices.released == [stopped]  # its volumes, in the same transaction
    assert world.instances.get(ACCOUNT, pending).desired == "terminated"
    assert world.instances.terminate(ACCOUNT, [pending]) == [
        (pending, "shutting-down", "shutting-down")
    ]
    assert world.driver.woken > woken


def test_stop_and_start_an_ebs_instance(world: World) -> None:
    instance_id = world.run(image_id=EBS_IMAGE.image_id)[0]
    world.set_state(instance_id, states.RUNNING)
    assert world.instances.stop(ACCOUNT, [instance_id]) == [(instance_id, "running", "stopping")]
    assert world.stopped == [instance_id]  # CreateImage is told: the user stopped it
    assert world.instances.get(ACCOUNT, instance_id).desired == "stopped"
    assert code_of(lambda: world.instances.start(ACCOUNT, [instance_id])) == (
        "IncorrectInstanceState"  # still stopping
    )
    world.set_state(instance_id, states.STOPPED)
    assert world.instances.start(ACCOUNT, [instance_id]) == [(instance_id, "stopped", "pending")]
    assert world.instances.get(ACCOUNT, instance_id).desired == "running"


def test_a_forced_stop_takes_an_instance_off_a_broken_node(world: World) -> None:
    """StopInstances Force=true of an instance on a BROKEN node: it stops without its node
    (``Server.InternalError`` says why) and starts again where there is room."""
    world.driver.joined = [NodeSlot("n1", "eucalyptus-1a", 8, 8192)]
    ids = world.run(min_count=2, max_count=2, image_id=EBS_IMAGE.image_id)
    on_n1 = next(i for i in ids if world.instances.get(ACCOUNT, i).node == "n1")
    for instance_id in ids:
        world.set_state(instance_id, states.RUNNING)
    world.driver.broken = {"n1"}
    world.instances.stop(ACCOUNT, [on_n1])  # not forced: it waits for its node
    assert world.instances.get(ACCOUNT, on_n1).state_reason_code == ("Client.UserInitiatedShutdown")
    assert world.instances.stop(ACCOUNT, ids, force=True) == [
        (i, "stopping" if i == on_n1 else "running", "stopping") for i in ids
    ]
    row = world.instances.get(ACCOUNT, on_n1)
    assert (row.state_reason_code, row.state_reason_message) == (
        "Server.InternalError",
        "Server.InternalError: its node failed (n1)",
    )
    other = world.instances.get(ACCOUNT, next(i for i in ids if i != on_n1))
    assert other.state_reason_code == "Client.UserInitiatedShutdown"  # its node is fine
    world.set_state(on_n1, states.STOPPED)
    world.driver.joined = []  # n1 takes nothing now: the instance starts elsewhere
    world.instances.start(ACCOUNT, [on_n1])
    assert world.instances.get(ACCOUNT, on_n1).node is None


def test_stop_protection_refuses_the_user_not_create_image(world: World) -> None:
    instance_id = world.run(image_id=EBS_IMAGE.image_id, disable_api_stop=True)[0]
    world.set_state(instance_id, states.RUNNING)
    assert world.instances.attribute(ACCOUNT, instance_id, "disableApiStop") is True
    assert code_of(lambda: world.instances.stop(ACCOUNT, [instance_id])) == (
        "OperationNotPermitted"
    )
    assert world.state(instance_id) == "running"
    world.instances.stop(ACCOUNT, [instance_id], by_user=False)  # CreateImage's own stop
    assert world.state(instance_id) == "stopping"
    turn_off = AttributeRequest((AttributeChange("disableApiStop", False),))
    world.instances.modify_attribute(ACCOUNT, instance_id, turn_off)
    assert world.instances.attribute(ACCOUNT, instance_id, "disableApiStop") is False


def test_reset_attribute(world: World) -> None:
    instance_id = world.run(image_id=STORE_IMAGE.image_id, kernel_id="eki-00000099")[0]
    instances = world.instances
    assert instances.attribute(ACCOUNT, instance_id, "sourceDestCheck") is True  # AWS's default
    off = AttributeRequest((AttributeChange("sourceDestCheck", "false"),))
    instances.modify_attribute(ACCOUNT, instance_id, off)
    assert instances.attribute(ACCOUNT, instance_id, "sourceDestCheck") is False
    instances.reset_attribute(ACCOUNT, instance_id, "sourceDestCheck")
    assert instances.attribute(ACCOUNT, instance_id, "sourceDestCheck") is True
    assert code_of(lambda: instances.reset_attribute(ACCOUNT, instance_id, "kernel")) == (
        "IncorrectInstanceState"  # only a stopped instance changes its kernel
    )
    world.set_state(instance_id, states.STOPPED)
    assert instances.attribute(ACCOUNT, instance_id, "kernel") == "eki-00000099"
    instances.reset_attribute(ACCOUNT, instance_id, "kernel")
    assert instances.attribute(ACCOUNT, instance_id, "kernel") == STORE_IMAGE.kernel_id
    for refused in ("instanceType", "userData", "bogus"):
        assert code_of(lambda n=refused: instances.reset_attribute(ACCOUNT, instance_id, n)) == (
            "InvalidParameterValue"
        )


def test_only_ebs_instances_stop(world: World) -> None:
    instance_id = world.run()[0]
    assert code_of(lambda: world.instances.stop(ACCOUNT, [instance_id])) == "UnsupportedOperation"
    assert code_of(lambda: world.instances.start(ACCOUNT, [instance_id])) == "UnsupportedOperation"
    assert world.stopped == []


def test_start_needs_room_on_the_node(world: World) -> None:
    stopped = world.run(image_id=EBS_IMAGE.image_id)[0]
    world.set_state(stopped, states.STOPPED)  # holds no share while stopped
    world.run(min_count=2, max_count=2)
    assert code_of(lambda: world.instances.start(ACCOUNT, [stopped])) == (
        "InsufficientInstanceCapacity"
    )
    assert world.state(stopped) == "stopped"


def test_reboot_and_console_go_to_the_driver(world: World) -> None:
    running, pending = world.run()[0], world.run()[0]
    world.set_state(running, states.RUNNING)
    world.instances.reboot(ACCOUNT, [running, pending])
    assert world.driver.rebooted == [running]
    assert world.instances.console_output(ACCOUNT, running) == f"console of {running}".encode()


def test_block_device_mapping_attribute_comes_from_ebs(world: World) -> None:
    instance_id = world.run(image_id=EBS_IMAGE.image_id)[0]
    mappings = world.instances.attribute(ACCOUNT, instance_id, "blockDeviceMapping")
    assert mappings[0].volume_id == "vol-1"


# -- DescribeInstanceStatus -----------------------------------------------------------------


def test_status_is_what_the_driver_observed(world: World) -> None:
    world.driver.room = ROOMY
    healthy, unknown, stopped = (world.run(image_id=EBS_IMAGE.image_id)[0] for _ in range(3))
    world.set_state(healthy, states.RUNNING)
    world.set_state(unknown, states.RUNNING)
    world.set_state(stopped, states.STOPPED)
    world.driver.healths[healthy] = InstanceHealth(
        healthy, system=Check("ok", "QEMU is running"), instance=Check("initializing", "booting")
    )
    statuses, _token = world.instances.status(ACCOUNT)
    by_id = {s.instance.id: s for s in statuses}
    assert set(by_id) == {healthy, unknown}  # running only, without IncludeAllInstances
    assert (by_id[healthy].system.status, by_id[healthy].guest.status) == ("ok", "initializing")
    assert by_id[healthy].system.reason == "QEMU is running"
    assert (by_id[unknown].system.status, by_id[unknown].guest.status) == (
        "insufficient-data",
        "insufficient-data",
    )
    everything, _token = world.instances.status(ACCOUNT, include_all=True)
    not_running = next(s for s in everything if s.instance.id == stopped)
    assert (not_running.system.status, not_running.guest.status) == (
        "not-applicable",
        "not-applicable",
    )
    filtered, _token = world.instances.status(
        ACCOUNT, filters=[{"Name": "instance-status.status", "Values": ["initializing"]}]
    )
    assert [s.instance.id for s in filtered] == [healthy]


def test_status_before_the_node_is_up(world: World) -> None:
    instance_id = world.run()[0]
    world.set_state(instance_id, states.RUNNING)
    world.instances.driver = None
    statuses, _token = world.instances.status(ACCOUNT, [instance_id])
    assert statuses[0].system.status == "insufficient-data"
    assert "not started" in statuses[0].system.reason
