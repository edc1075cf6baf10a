"""CreateImage's intent, kept in the database so that a crash of karri does not lose it.

``begin`` writes a row before the instance is touched: the image's id (chosen up front,
so the snapshots can name it) and whether the instance is to be started again. The EBS
worker calls ``resume`` at every scan and carries out what a row says once its
CreateImage call is no longer under way (it never is after a restart):

- the image was never registered (the call failed, or karri died in it): the snapshots it
  had begun are deleted, nothing is left half-made;
- the instance is started again (once, and only if it was stopped for the image) when
  its volumes' point-in-time copies exist, as CreateImage without ``NoReboot`` does on AWS;
  not if it was started or terminated meanwhile, nor after the user's own StopInstances
  (``user_stopped``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from karri.cloud.images.models import Image
from karri.cloud.images.views import PREFIXES
from karri.cloud.instances import states as instance_states
from karri.cloud.instances.models import Instance
from karri.cloud.volumes import states
from karri.cloud.volumes.models import CaptureIntent, Snapshot
from karri.db.engine import Database
from karri.errors import CloudError
from karri.ids import new_id

log = logging.getLogger("karri.ebs")

WAIT, START, DROP = "wait", "start", "drop"


def next_step(restart: bool, registered: bool, instance_state: str | None, copied: bool) -> str:
    """What is left of a CreateImage no longer under way: ``start`` the instance again,
    ``wait`` (for it to be down, or for its volumes' copies), or ``drop`` the intent."""
    if not restart:
        return DROP
    if instance_state == instance_states.STOPPING:
        return WAIT
    if instance_state == instance_states.STOPPED:
        # an image never registered has no copies to wait for (its snapshots are undone)
        return START if copied or not registered else WAIT
    return DROP  # started, terminated or gone meanwhile: not ours to start


def snapshot_description(instance_id: str, image_id: str, volume_id: str) -> str:
    """AWS's description of a CreateImage snapshot (the image is named in it)."""
    return f"Created by CreateImage({instance_id}) for {image_id} from {volume_id}"


class CaptureIntents:
    def __init__(self, db: Database, wake: Callable[[], None]) -> None:
        self.db = db
        self.wake = wake
        self._lock = threading.Lock()
        self._under_way: set[str] = set()  # image ids of CreateImage calls in this process
        self._start_failed: set[str] = set()  # logged once, tried again at every scan

    def begin(self, account_id: str, instance_id: str, restart: bool) -> str:
        """Record a CreateImage before it touches the instance; returns its image id."""
        with self.db.write_session() as session:
            image_id = new_id(
                PREFIXES["machine"],
                lambda i: (
                    session.get(Image, i) is not None or session.get(CaptureIntent, i) is not None
                ),
            )
            with self._lock:  # under way before the worker can see the row
                self._under_way.add(image_id)
            session.add(
                CaptureIntent(
                    image_id=image_id,
                    account_id=account_id,
                    instance_id=instance_id,
                    restart=restart,
                )
            )
        return image_id

    def end(self, image_id: str) -> None:
        """The CreateImage call returned or raised: the worker takes over its intent."""
        with self._lock:
            self._under_way.discard(image_id)
        self.wake()

    def user_stopped(self, instance_ids: Iterable[str]) -> None:
        """StopInstances by the user: an instance it was asked for stays stopped."""
        with self._lock:
            under_way = set(self._under_way)
        with self.db.write_session() as session:
            session.execute(
                delete(CaptureIntent).where(
                    CaptureIntent.instance_id.in_(list(instance_ids)),
                    CaptureIntent.image_id.not_in(under_way),
                )
            )

    def resume(self, start: Callable[[str, str], None]) -> None:
        """Carry out the intents of CreateImage calls no longer under way.

        ``start(account_id, instance_id)`` is StartInstances."""
        with self.db.session() as session:
            intents = list(session.scalars(select(CaptureIntent)))
        with self._lock:
            intents = [i for i in intents if i.image_id not in self._under_way]
        for intent in intents:
            with self.db.write_session() as session:
                registered = session.get(Image, intent.image_id) is not None
                if not registered:
                    _undo_snapshots(session, intent)
                instance_state = session.scalar(
                    select(Instance.state).where(Instance.id == intent.instance_id)
                )
                copied = _copied(session, intent)
            step = next_step(intent.restart, registered, instance_state, copied)
            if step == START:
                try:
                    start(intent.account_id, intent.instance_id)
                except CloudError as error:
                    if intent.image_id not in self._start_failed:
                        self._start_failed.add(intent.image_id)
                        log.warning(
                            "CreateImage %s: starting %s again failed (%s); tried again later",
                            intent.image_id,
                            intent.instance_id,
                            error,
                        )
                    continue
                log.info("CreateImage %s: %s started again", intent.image_id, intent.instance_id)
            if step in (START, DROP):
                self._start_failed.discard(intent.image_id)
                with self.db.write_session() as session:
                    session.execute(
                        delete(CaptureIntent).where(CaptureIntent.image_id == intent.image_id)
                    )


def _made_for(intent: CaptureIntent):
    """The snapshots a CreateImage made (their descriptions name its image)."""
    prefix = snapshot_description(intent.instance_id, intent.image_id, "")
    return (
        Snapshot.account_id == intent.account_id,
        Snapshot.description.startswith(prefix, autoescape=True),
    )


def _undo_snapshots(session: Session, intent: CaptureIntent) -> None:
    """The snapshots begun for an image that was never registered are deleted."""
    result = session.execute(
        update(Snapshot)
        .where(*_made_for(intent), Snapshot.state != states.SNAPSHOT_DELETING)
        .values(state=states.SNAPSHOT_DELETING)
    )
    if result.rowcount:
        log.info(
            "CreateImage %s was cut short: %d snapshots deleted", intent.image_id, result.rowcount
        )


def _copied(session: Session, intent: CaptureIntent) -> bool:
    """Whether every snapshot made for the image has its point-in-time copy (or failed)."""
    rows = session.execute(select(Snapshot.state, Snapshot.checkpointed).where(*_made_for(intent)))
    return all(done or state != states.PENDING for state, done in rows)
