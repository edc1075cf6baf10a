"""What a stop or a termination does to an instance's attachments (``cloud.volumes.endings``),
on a migrated SQLite database: kept volumes free, DeleteOnTermination ones ``deleting``,
other instances' untouched; a stop finishes detaches and attaches of ready volumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from karri.cloud.volumes import endings, states
from karri.cloud.volumes.models import Snapshot, Volume, VolumeAttachment
from karri.db.engine import Database
from karri.db.models import Account

ACCOUNT = "123456789012"


@pytest.fixture
def db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    with db.write_session() as session:
        session.add(Account(id=ACCOUNT, name="a"))
    return db


def add(
    db: Database,
    volume_id: str,
    instance_id: str,
    attachment: str = states.ATTACHED,
    *,
    delete_on_termination: bool = False,
    volume: str = states.AVAILABLE,
) -> None:
    with db.write_session() as session:
        session.add(Volume(id=volume_id, account_id=ACCOUNT, size_gib=1, zone="z", state=volume))
        session.flush()
        session.add(
            VolumeAttachment(
                volume_id=volume_id,
                instance_id=instance_id,
                device=f"/dev/sd{volume_id[-1]}",
                state=attachment,
                delete_on_termination=delete_on_termination,
            )
        )


def seen(db: Database) -> dict[str, tuple[str, str | None]]:
    """Each volume's state and its attachment's (None: detached)."""
    with db.session() as session:
        return {
            v.id: (
                v.state,
                a.state if (a := session.get(VolumeAttachment, v.id)) is not None else None,
            )
            for v in session.query(Volume)
        }


def test_a_termination_frees_kept_volumes_and_deletes_the_others(db: Database) -> None:
    add(db, "vol-a", "i-1")
    add(db, "vol-b", "i-1", delete_on_termination=True)
    add(db, "vol-c", "i-1", states.DETACHING)
    add(db, "vol-d", "i-2", delete_on_termination=True)
    with db.write_session() as session:
        assert endings.release_terminated(session, ["i-1"]) is True
        assert endings.release_terminated(session, ["i-1"]) is False  # nothing left
    assert seen(db) == {
        "vol-a": (states.AVAILABLE, None),
        "vol-b": (states.DELETING, None),
        "vol-c": (states.AVAILABLE, None),
        "vol-d": (states.AVAILABLE, states.ATTACHED),  # another instance's
    }


def test_a_stop_finishes_detaches_and_attaches_of_ready_volumes(db: Database) -> None:
    add(db, "vol-a", "i-1", states.DETACHING)
    add(db, "vol-b", "i-1", states.ATTACHING)
    add(db, "vol-c", "i-1", states.ATTACHING, volume=states.CREATING)
    add(db, "vol-d", "i-1", states.ATTACHING)
    add(db, "vol-e", "i-1", delete_on_termination=True)
    with db.write_session() as session:  # a snapshot of vol-d still needs its point-in-time copy
        session.add(Snapshot(id="snap-1", account_id=ACCOUNT, volume_id="vol-d", volume_size=1))
    with db.write_session() as session:
        endings.settle_stopped(session, "i-1")
    assert seen(db) == {
        "vol-a": (states.AVAILABLE, None),
        "vol-b": (states.AVAILABLE, states.ATTACHED),
        "vol-c": (states.CREATING, states.ATTACHING),  # the worker finishes it once created
        "vol-d": (states.AVAILABLE, states.ATTACHING),
        "vol-e": (states.AVAILABLE, states.ATTACHED),  # a stop keeps what is attached
    }
