"""The EC2 volume calls: record intent in the database; the EBS worker does the I/O."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from karri.cloud.filters import FilterSet, Page, paginate
from karri.cloud.instances.service import check_ids
from karri.cloud.regions import Geography
from karri.cloud.tags import Taggable, Tags, owned_ids
from karri.cloud.volumes import states
from karri.cloud.volumes.keys import EbsKeys, encryption_of
from karri.cloud.volumes.models import Volume, VolumeAttachment
from karri.cloud.volumes.requests import CreateVolumeRequest
from karri.cloud.volumes.snapshots import Snapshots, volume_size
from karri.cloud.volumes.volume_types import check_options, check_type, settle
from karri.config import Settings
from karri.db.engine import Database
from karri.errors import CloudError, invalid_value, missing_parameter
from karri.ids import new_id

ATTRIBUTES = ("autoEnableIO", "productCodes")  # DescribeVolumeAttribute's


@dataclass(frozen=True)
class VolumeView:
    volume: Volume
    attachment: VolumeAttachment | None
    tags: dict[str, str]

    @property
    def state(self) -> str:
        return states.volume_state(self.volume, self.attachment)


def _attachment(attr: str) -> Callable[[VolumeView], Any]:
    return lambda v: getattr(v.attachment, attr) if v.attachment else None


FILTERS: FilterSet[VolumeView] = FilterSet(
    {
        "volume-id": lambda v: v.volume.id,
        "status": lambda v: v.state,
        "size": lambda v: v.volume.size_gib,
        "snapshot-id": lambda v: v.volume.snapshot_id or "",
        "availability-zone": lambda v: v.volume.zone,
        "create-time": lambda v: v.volume.created_at,
        "volume-type": lambda v: v.volume.volume_type,
        "encrypted": lambda v: v.volume.encrypted,
        "multi-attach-enabled": lambda _v: False,
        "fast-restored": lambda _v: False,
        "operator.managed": lambda _v: False,  # no service manages karri's volumes
        "operator.principal": lambda _v: None,
        "attachment.instance-id": _attachment("instance_id"),
        "attachment.device": _attachment("device"),
        "attachment.status": _attachment("state"),
        "attachment.delete-on-termination": _attachment("delete_on_termination"),
        "attachment.attach-time": _attachment("attach_time"),
    }
)

STATUS_FILTERS: FilterSet[VolumeView] = FilterSet(
    {
        "volume-id": lambda v: v.volume.id,
        "availability-zone": lambda v: v.volume.zone,
        "volume-status.status": lambda v: states.io_status(v.volume),
        "volume-status.details-name": lambda _v: ["io-enabled", "io-performance"],
        "volume-status.details-status": lambda v: [
            states.io_enabled(v.volume),
            "not-applicable",
        ],
        "action.code": lambda _v: [],
        "action.description": lambda _v: [],
        "action.event-id": lambda _v: [],
        "event.description": lambda _v: [],
        "event.event-id": lambda _v: [],
        "event.event-type": lambda _v: [],
        "event.not-after": lambda _v: [],
        "event.not-before": lambda _v: [],
    },
    tags=False,
)


class Volumes:
    """CreateVolume, DescribeVolumes, DeleteVolume, volume status and attributes."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        tags: Tags,
        geography: Geography,
        snapshots: Snapshots,
        wake: Callable[[], None],
        keys: EbsKeys,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.db = db
        self.tags = tags
        self.geography = geography
        self.snapshots = snapshots
        self.wake = wake
        zone_ids = {z.name: z.zone_id for z in geography.zones}
        self.filters: FilterSet[VolumeView] = FilterSet(
            {**FILTERS.getters, "availability-zone-id": lambda v: zone_ids.get(v.volume.zone)}
        )
        self.max_gib = int(settings.max_volume_gib)
        self._creating = threading.Lock()  # ClientToken check and insert are one step
        tags.register(
            Taggable("vol", "volume", "InvalidVolume.NotFound", "volume", owned_ids(Volume))
        )

    # -- CreateVolume ------------------------------------------------------------------

    def create(self, account_id: str, request: CreateVolumeRequest) -> VolumeView:
        zone = self._zone(request.availability_zone, request.availability_zone_id)
        volume_type = check_type(request.volume_type)
        if request.multi_attach_enabled:
            raise CloudError("UnsupportedOperation", "Multi-Attach is not supported.")
        check_options(volume_type, request.iops, request.throughput)
        tags = request.tags
        size = request.size
        snapshot_id = request.snapshot_id
        if size is None and not snapshot_id:
            raise missing_parameter("size or snapshotId")
        token = request.client_token
        with self._creating, self.db.write_session() as session:
            if token:
                existing = self._by_token(session, account_id, token)
                if existing is not None:
                    return self._idempotent(session, existing, size, snapshot_id, zone)
            source = (
                self.snapshots.restorable(session, account_id, snapshot_id) if snapshot_id else None
            )
            if source is not None:
                size = volume_size(size, source)
            assert size is not None
            encrypted = encryption_of(
                requested=request.encrypted,
                kms_key_id=request.kms_key_id,
                by_default=self.keys.by_default(account_id, session),
                snapshot_encrypted=source.encrypted if source is not None else None,
            )
            if request.kms_key_id:
                self.keys.resolve(account_id, request.kms_key_id, session)
            settled = settle(
                volume_type, size, request.iops, request.throughput, max_gib=self.max_gib
            )
            volume = Volume(
                id=new_id("vol", lambda i: session.get(Volume, i) is not None),
                account_id=account_id,
                size_gib=size,
                snapshot_id=snapshot_id or None,
                zone=zone,
                volume_type=volume_type,
                iops=settled.iops,
                throughput=settled.throughput,
                state=states.CREATING,
                client_token=token,
                encrypted=encrypted,
            )
            session.add(volume)
            session.flush()
            if tags:
                self.tags.put(session, account_id, [volume.id], tags)
            view = VolumeView(volume, None, dict(tags))
        self.wake()
        return view

    def _zone(self, zone: str | None, zone_id: str | None) -> str:
        if not zone and not zone_id:
            raise missing_parameter("AvailabilityZone")
        for known in self.geography.zones:
            if zone in (None, known.name) and zone_id in (None, known.zone_id):
                return known.name
        raise invalid_value(f"Invalid availability zone: [{zone or zone_id}]")

    def check_size(self, size: int) -> None:
        if size < 1:
            raise invalid_value(f"Volume of {size}GiB is too small; minimum is 1GiB.")
        if size > self.max_gib:
            raise invalid_value(f"Volume of {size}GiB is too large; maximum is {self.max_gib}GiB.")

    @staticmethod
    def _by_token(session: Session, account_id: str, token: str) -> Volume | None:
        return session.scalar(
            select(Volume).where(Volume.account_id == account_id, Volume.client_token == token)
        )

    def _idempotent(
        self,
        session: Session,
        volume: Volume,
        size: int | None,
        snapshot_id: str | None,
        zone: str,
    ) -> VolumeView:
        if (
            (size is not None and size != volume.size_gib)
            or (snapshot_id or None) != volume.snapshot_id
            or zone != volume.zone
        ):
            raise CloudError(
                "IdempotentParameterMismatch",
                "The client token you have provided is associated with a resource that "
                "had different parameters.",
            )
        return self._views(session, volume.account_id, [volume])[0]

    # -- Describe ------------------------------------------------------------------------

    def _views(
        self, session: Session, account_id: str, volumes: Sequence[Volume]
    ) -> list[VolumeView]:
        ids = [v.id for v in volumes]
        attachments = {
            a.volume_id: a
            for a in session.scalars(
                select(VolumeAttachment).where(VolumeAttachment.volume_id.in_(ids))
            )
        }
        tags = self.tags.of(session, ids, account_id)
        return [VolumeView(v, attachments.get(v.id), tags[v.id]) for v in volumes]

    def _select(self, account_id: str, ids: Sequence[str] | None) -> list[VolumeView]:
        ids = check_ids(ids, "vol", "InvalidVolumeID.Malformed")
        with self.db.session() as session:
            query = select(Volume).where(Volume.account_id == account_id)
            if ids:
                query = query.where(Volume.id.in_(ids))
            views = self._views(session, account_id, list(session.scalars(query)))
        found = {v.volume.id for v in views}
        for volume_id in ids:
            if volume_id not in found:
                raise not_found(volume_id)
        return views

    def describe(
        self,
        account_id: str,
        ids: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
        *,
        status: bool = False,
    ) -> Page[VolumeView]:
        """DescribeVolumes, or DescribeVolumeStatus (its own filters; no deleting volumes)."""
        views = self._select(account_id, ids)
        if status:
            views = [v for v in views if v.volume.state != states.DELETING]
            views = STATUS_FILTERS.apply(views, filters)
        else:
            views = self.filters.apply(views, filters, lambda v: v.tags)
        return paginate(
            views,
            lambda v: v.volume.id,
            max_results,
            next_token,
            kind="volumes",
            ids_given=bool(ids),
        )

    def get(self, account_id: str, volume_id: str | None) -> VolumeView:
        if not volume_id:
            raise missing_parameter("VolumeId")
        return self._select(account_id, [volume_id])[0]

    # -- DeleteVolume --------------------------------------------------------------------

    def delete(self, account_id: str, volume_id: str | None) -> None:
        if not volume_id:
            raise missing_parameter("VolumeId")
        check_ids([volume_id], "vol", "InvalidVolumeID.Malformed")
        with self.db.write_session() as session:
            volume = session.get(Volume, volume_id)
            if volume is None or volume.account_id != account_id:
                raise not_found(volume_id)
            attachment = session.get(VolumeAttachment, volume_id)
            if attachment is not None:
                raise CloudError(
                    "VolumeInUse",
                    f"Volume {volume_id} is currently attached to {attachment.instance_id}",
                )
            if volume.state == states.DELETING:
                return
            volume.state = states.DELETING
        self.wake()

    # -- Attributes ----------------------------------------------------------------------

    def attribute(self, account_id: str, volume_id: str | None, name: str | None) -> Volume:
        """DescribeVolumeAttribute: the volume, once ``name`` is one of ``ATTRIBUTES``."""
        view = self.get(account_id, volume_id)
        if not name:
            raise missing_parameter("Attribute")
        if name not in ATTRIBUTES:
            raise invalid_value(
                f"Value ({name}) for parameter attribute is invalid. Unknown attribute."
            )
        return view.volume

    def modify_attribute(
        self, account_id: str, volume_id: str | None, auto_enable_io: bool | None
    ) -> None:
        view = self.get(account_id, volume_id)
        if auto_enable_io is None:
            raise missing_parameter("AutoEnableIO")
        with self.db.write_session() as session:
            volume = session.get(Volume, view.volume.id)
            if volume is not None:
                volume.auto_enable_io = bool(auto_enable_io)


def not_found(volume_id: str) -> CloudError:
    return CloudError("InvalidVolume.NotFound", f"The volume '{volume_id}' does not exist.")
