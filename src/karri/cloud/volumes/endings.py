"""What an instance's stop or termination does to its attachments, written in the same
transaction as the instance's new state, after the node has let go of its disks.

So no client sees the wrong combination (issue 21): once DescribeInstances says
``terminated``, its volumes are ``available`` (kept) or ``deleting``
(DeleteOnTermination), and DeleteVolume on a kept one succeeds; once it says ``stopped``,
a volume whose detach was under way is ``available`` and one being attached is
``attached``. The EBS worker's ``_release`` uses the same rule for rows a crash left.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from karri.cloud.volumes import states
from karri.cloud.volumes.checkpoints import awaits_checkpoint
from karri.cloud.volumes.models import Volume, VolumeAttachment


def release(session: Session, attachment: VolumeAttachment) -> bool:
    """The attachment of a terminated instance goes; its volume is kept, or marked
    ``deleting`` when DeleteOnTermination (True: the EBS worker has a file to delete)."""
    session.delete(attachment)
    if not attachment.delete_on_termination:
        return False
    result = session.execute(
        update(Volume)
        .where(Volume.id == attachment.volume_id, Volume.state != states.DELETING)
        .values(state=states.DELETING)
    )
    return result.rowcount == 1


def release_terminated(session: Session, instance_ids: Sequence[str]) -> bool:
    """Every attachment of these (terminated) instances released; True if a volume is
    now ``deleting``."""
    attachments = session.scalars(
        select(VolumeAttachment).where(VolumeAttachment.instance_id.in_(list(instance_ids)))
    )
    deleting = [release(session, a) for a in list(attachments)]
    session.flush()
    return any(deleting)


def settle_stopped(session: Session, instance_id: str) -> None:
    """A stopped instance (its guest gone): a detach under way is done, an attach of a
    ready volume is done (one still being created or copied stays ``attaching``; the
    worker finishes it)."""
    for attachment in list(
        session.scalars(select(VolumeAttachment).where(VolumeAttachment.instance_id == instance_id))
    ):
        if attachment.state == states.DETACHING:
            session.delete(attachment)
        elif attachment.state == states.ATTACHING:
            volume = session.get(Volume, attachment.volume_id)
            if (
                volume is not None
                and volume.state == states.AVAILABLE
                and not awaits_checkpoint(session, volume.id)
            ):
                attachment.state = states.ATTACHED
    session.flush()
