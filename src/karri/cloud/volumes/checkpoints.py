"""Whether a volume must stay as it is until a snapshot has taken its point-in-time copy."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from karri.cloud.volumes import states
from karri.cloud.volumes.models import Snapshot


def awaits_checkpoint(session, volume_id: str) -> bool:
    """Whether a pending snapshot of the volume still needs its point-in-time copy: until
    then the volume must stay as it was (not deleted, not plugged into a guest)."""
    return volume_id in checkpoints_awaited(session, [volume_id])


def checkpoints_awaited(session, volume_ids: Sequence[str]) -> set[str]:
    """Those of these volumes that ``awaits_checkpoint``: one query for many."""
    if not volume_ids:
        return set()
    return set(
        session.scalars(
            select(Snapshot.volume_id)
            .where(
                Snapshot.volume_id.in_(list(volume_ids)),
                Snapshot.state == states.PENDING,
                Snapshot.checkpointed.is_(False),
                Snapshot.source_snapshot_id.is_(None),
            )
            .distinct()
        )
    )
