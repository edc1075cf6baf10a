"""ModifyVolume and DescribeVolumesModifications: a volume's size, type, IOPS and
throughput changed while it stays in use.

The call checks the target configuration against the type's rules and records it
(``modifying``); the EBS worker grows the volume and changes its guest's limits, then
moves the row on (``optimizing``, where DescribeVolumes already shows the new values, then
``completed``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from karri.cloud.filters import FilterSet, Page, paginate
from karri.cloud.volumes import states
from karri.cloud.volumes.models import Volume, VolumeModification
from karri.cloud.volumes.requests import ModifyVolumeRequest
from karri.cloud.volumes.service import Volumes
from karri.cloud.volumes.volume_types import modified, of_volume
from karri.cloud.volumes.worker import MODIFYING, OPTIMIZING
from karri.db.base import utcnow
from karri.errors import CloudError

UNDER_WAY = (MODIFYING, OPTIMIZING)
RATE_WINDOW = timedelta(hours=24)
RATE_LIMIT = 4  # modifications of one volume per window (AWS's)

FILTERS: FilterSet[VolumeModification] = FilterSet(
    {
        "volume-id": lambda m: m.volume_id,
        "modification-state": lambda m: m.state,
        "target-size": lambda m: m.target_size,
        "target-iops": lambda m: m.target_iops,
        "target-volume-type": lambda m: m.target_type,
        "original-size": lambda m: m.original_size,
        "original-iops": lambda m: m.original_iops,
        "original-volume-type": lambda m: m.original_type,
        "start-time": lambda m: m.start_time,
        "originalMultiAttachEnabled": lambda _m: False,
        "targetMultiAttachEnabled": lambda _m: False,
    },
    tags=False,
)


class Modifications:
    def __init__(self, volumes: Volumes, wake: Callable[[], None]) -> None:
        self.volumes = volumes
        self.db = volumes.db
        self.wake = wake

    def modify(self, account_id: str, request: ModifyVolumeRequest) -> VolumeModification:
        view = self.volumes.get(account_id, request.volume_id)
        if request.multi_attach_enabled:
            raise CloudError("UnsupportedOperation", "Multi-Attach is not supported.")
        with self.db.write_session() as session:
            volume = session.get(Volume, view.volume.id)
            if volume is None:
                raise CloudError(
                    "InvalidVolume.NotFound", f"The volume '{view.volume.id}' does not exist."
                )
            target = modified(
                of_volume(volume),
                request.size,
                request.volume_type,
                request.iops,
                request.throughput,
                max_gib=self.volumes.max_gib,
            )
            if volume.state != states.AVAILABLE:
                raise CloudError(
                    "IncorrectState",
                    f"Volume {volume.id} must be in the available or in-use state to be modified.",
                )
            latest = _latest(session, [volume.id]).get(volume.id)
            if latest is not None and latest.state in UNDER_WAY:
                raise CloudError(
                    "IncorrectModificationState",
                    f"Volume {volume.id} cannot be modified in modification state "
                    f"{latest.state.upper()}",
                )
            self._check_rate(session, volume.id)
            modification = VolumeModification(
                volume_id=volume.id,
                state=MODIFYING,
                original_size=volume.size_gib,
                original_type=volume.volume_type,
                original_iops=volume.iops,
                original_throughput=volume.throughput,
                target_size=target.size_gib,
                target_type=target.volume_type,
                target_iops=target.iops,
                target_throughput=target.throughput,
                progress=0,
                start_time=utcnow(),
            )
            session.add(modification)
            session.flush()
            session.expunge(modification)
        self.wake()
        return modification

    @staticmethod
    def _check_rate(session: Session, volume_id: str) -> None:
        since = utcnow() - RATE_WINDOW
        recent = list(
            session.scalars(
                select(VolumeModification.start_time)
                .where(
                    VolumeModification.volume_id == volume_id,
                    VolumeModification.start_time > since,
                )
                .order_by(VolumeModification.start_time)
            )
        )
        if len(recent) >= RATE_LIMIT:
            eligible = (recent[0] + RATE_WINDOW).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            raise CloudError(
                "VolumeModificationRateExceeded",
                "You've reached the maximum modification rate per volume limit. Wait until "
                f"{eligible} before you can issue the next modification request for this volume.",
            )

    def describe(
        self,
        account_id: str,
        ids: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[VolumeModification]:
        """Each volume's latest modification."""
        ids = list(ids or [])
        views = self.volumes.describe(account_id, ids or None).items  # NotFound, Malformed
        with self.db.session() as session:
            latest = _latest(session, [v.volume.id for v in views])
            session.expunge_all()
        for volume_id in ids:
            if volume_id not in latest:
                raise CloudError(
                    "InvalidVolumeModification.NotFound",
                    f"Modification for volume '{volume_id}' does not exist.",
                )
        found = FILTERS.apply(list(latest.values()), filters)
        return paginate(
            found,
            lambda m: m.volume_id,
            max_results,
            next_token,
            kind="volume-modifications",
            minimum=1,
            maximum=500,
        )


def _latest(session: Session, volume_ids: Sequence[str]) -> dict[str, VolumeModification]:
    """The latest modification of each volume that has one."""
    newest = (
        select(func.max(VolumeModification.id))
        .where(VolumeModification.volume_id.in_(list(volume_ids)))
        .group_by(VolumeModification.volume_id)
    )
    rows = session.scalars(select(VolumeModification).where(VolumeModification.id.in_(newest)))
    return {m.volume_id: m for m in rows}
