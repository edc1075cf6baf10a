"""CreateImage's durable intent (``cloud/volumes/intents.py``): what is left to do after
a crash, decided from the database alone, and carried out once."""

from __future__ import annotations

from pathlib import Path

import pytest

from karri.cloud.images.models import Image
from karri.cloud.instances.models import Instance, Reservation
from karri.cloud.volumes.intents import (
    DROP,
    START,
    WAIT,
    CaptureIntents,
    next_step,
    snapshot_description,
)
from karri.cloud.volumes.models import CaptureIntent, Snapshot
from karri.db.engine import Database
from karri.db.models import Account

ACCOUNT, INSTANCE = "123456789012", "i-0000abcd"


@pytest.mark.parametrize(
    ("restart", "registered", "state", "copied", "step"),
    [
        (False, True, "stopped", True, DROP),  # NoReboot, or the instance was stopped
        (True, True, "stopping", False, WAIT),  # killed before the guest was down
        (True, True, "stopped", False, WAIT),  # down, volumes not copied yet
        (True, True, "stopped", True, START),  # copied: start it again
        (True, False, "stopped", False, START),  # no image after all: start it at once
        (True, False, "stopping", False, WAIT),
        (True, True, "pending", True, DROP),  # the user started it meanwhile
        (True, True, "running", False, DROP),
        (True, True, "shutting-down", True, DROP),  # or terminated it
        (True, True, "terminated", True, DROP),
        (True, True, None, True, DROP),  # gone
    ],
)
def test_next_step(restart: bool, registered: bool, state: str | None, copied: bool, step: str):
    assert next_step(restart, registered, state, copied) == step


class Cloud:
    """A database with one stopped instance and the starts asked for."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = Database(f"sqlite:///{tmp_path / 'k.db'}")
        self.started: list[str] = []
        with self.db.write_session() as session:
            session.add(Account(id=ACCOUNT, name="a"))
            session.flush()
            session.add(Reservation(id="r-00000001", account_id=ACCOUNT))
            session.flush()
            session.add(
                Instance(
                    id=INSTANCE,
                    reservation_id="r-00000001",
                    account_id=ACCOUNT,
                    image_id="emi-00000001",
                    instance_type="t1.micro",
                    vcpus=1,
                    memory_mib=256,
                    disk_gib=1,
                    zone="z",
                    root_device_type="ebs",
                    state="stopped",
                    desired="stopped",
                )
            )

    def intents(self) -> CaptureIntents:
        """As after a restart of karri: no call under way in this process."""
        return CaptureIntents(self.db, lambda: None)

    def start(self, account_id: str, instance_id: str) -> None:
        self.started.append(instance_id)
        self.set(Instance, instance_id, state="pending")

    def set(self, model: type, key: str, **values: object) -> None:
        with self.db.write_session() as session:
            row = session.get(model, key)
            for name, value in values.items():
                setattr(row, name, value)

    def snapshot(self, image_id: str, **values: object) -> str:
        with self.db.write_session() as session:
            session.add(
                Snapshot(
                    id="snap-00000001",
                    account_id=ACCOUNT,
                    volume_id="vol-00000001",
                    volume_size=1,
                    description=snapshot_description(INSTANCE, image_id, "vol-00000001"),
                    **values,
                )
            )
        return "snap-00000001"

    def register(self, image_id: str) -> None:
        with self.db.write_session() as session:
            session.add(
                Image(
                    id=image_id,
                    account_id=ACCOUNT,
                    name="n",
                    image_type="machine",
                    architecture="x86_64",
                    state="pending",
                    root_device_type="ebs",
                    source="ebs",
                    location="",
                )
            )

    def remaining(self) -> int:
        with self.db.session() as session:
            return session.query(CaptureIntent).count()

    def state(self, model: type, key: str) -> str:
        with self.db.session() as session:
            return session.get(model, key).state


def test_restart_once_the_copies_exist(tmp_path: Path) -> None:
    cloud = Cloud(tmp_path)
    image_id = cloud.intents().begin(ACCOUNT, INSTANCE, restart=True)
    snapshot_id = cloud.snapshot(image_id)
    cloud.register(image_id)
    intents = cloud.intents()  # karri restarted
    intents.resume(cloud.start)
    assert cloud.started == [] and cloud.remaining() == 1  # not copied yet
    cloud.set(Snapshot, snapshot_id, checkpointed=True)
    intents.resume(cloud.start)
    intents.resume(cloud.start)
    assert cloud.started == [INSTANCE] and cloud.remaining() == 0  # exactly once
    assert cloud.state(Snapshot, snapshot_id) == "pending"  # the image's, left to finish


def test_an_unregistered_image_is_undone(tmp_path: Path) -> None:
    cloud = Cloud(tmp_path)
    image_id = cloud.intents().begin(ACCOUNT, INSTANCE, restart=True)
    snapshot_id = cloud.snapshot(image_id)  # killed before the image was registered
    cloud.intents().resume(cloud.start)
    assert cloud.state(Snapshot, snapshot_id) == "deleting"
    assert cloud.started == [INSTANCE] and cloud.remaining() == 0


def test_a_call_under_way_is_left_alone(tmp_path: Path) -> None:
    cloud = Cloud(tmp_path)
    intents = cloud.intents()
    image_id = intents.begin(ACCOUNT, INSTANCE, restart=True)
    snapshot_id = cloud.snapshot(image_id)
    intents.user_stopped([INSTANCE])  # CreateImage's own StopInstances
    intents.resume(cloud.start)
    assert cloud.started == [] and cloud.remaining() == 1
    assert cloud.state(Snapshot, snapshot_id) == "pending"
    cloud.register(image_id)
    intents.end(image_id)
    cloud.set(Snapshot, snapshot_id, state="completed", checkpointed=True)
    intents.resume(cloud.start)
    assert cloud.started == [INSTANCE] and cloud.remaining() == 0


def test_the_users_stop_wins(tmp_path: Path) -> None:
    cloud = Cloud(tmp_path)
    image_id = cloud.intents().begin(ACCOUNT, INSTANCE, restart=True)
    cloud.register(image_id)
    intents = cloud.intents()
    intents.user_stopped([INSTANCE])
    intents.resume(cloud.start)
    assert cloud.started == [] and cloud.remaining() == 0
