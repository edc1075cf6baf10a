"""Whether a volume must stay as it is until a snapshot has taken its point-in-time copy."""

from __future__ import annotations

from sqlalchemy import select

from karri.cloud.volumes import states
from karri.cloud.volumes.models import Snapshot


def awaits_checkpoint(session, volume_id: str) -> bool:
    """Whether a pending snapshot of the volume still needs its point-in-time copy: until
    then the volume must stay as it was (not deleted, not plugged into a guest)."""
    return (
        session.scalar(
            select(Snapshot.id)
            .where(
                Snapshot.volume_id == volume_id,
                Snapshot.state == states.PENDING,
                Snapshot.checkpointed.is_(False),
                Snapshot.source_snapshot_id.is_(None),
            )
            .limit(1)
        )
        is not None
    )
