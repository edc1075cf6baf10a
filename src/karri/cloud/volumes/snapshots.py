"""The EC2 snapshot calls: snapshots of volumes kept in Walrus, shared per account or with
everyone (createVolumePermission), copied within the region.

CreateSnapshot records a pending snapshot; the EBS worker takes the volume's point-in-time
copy (a checkpoint), streams it into Walrus with ``Progress``, and completes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from karri.cloud.filters import FilterSet, Page, paginate
from karri.cloud.instances.service import check_ids
from karri.cloud.permissions import (
    PUBLIC,
    GranteeErrors,
    PermissionModification,
    permission_changes,
)
from karri.cloud.tags import Taggable, Tags, owned_ids
from karri.cloud.volumes import states
from karri.cloud.volumes.keys import EbsKeys, encryption_of
from karri.cloud.volumes.models import Snapshot, SnapshotPermission, Volume
from karri.cloud.volumes.requests import CopySnapshotRequest
from karri.config import Settings
from karri.db.engine import Database
from karri.errors import CloudError, invalid_value, missing_parameter
from karri.ids import new_id
from karri.storage import GIB, StorageController

# AWS gives snapshots that have no volume of their own (copies, imports) this volume id.
NO_VOLUME = "vol-ffffffff"
MAX_DESCRIPTION = 255

# What keeps a snapshot from being deleted: given DeleteSnapshot's session and a snapshot
# id, the ids of its users (the images registered on it, ``images.service.snapshot_users``).
SnapshotUsers = Callable[[Session, str], Sequence[str]]


@dataclass(frozen=True)
class SnapshotView:
    snapshot: Snapshot
    tags: dict[str, str]  # only the owner sees a snapshot's tags


@dataclass(frozen=True)
class SnapshotAttribute:
    snapshot_id: str
    name: str
    grantees: tuple[str, ...] = ()  # createVolumePermission's: account ids, or PUBLIC


FILTERS: FilterSet[SnapshotView] = FilterSet(
    {
        "snapshot-id": lambda v: v.snapshot.id,
        "volume-id": lambda v: v.snapshot.volume_id,
        "volume-size": lambda v: v.snapshot.volume_size,
        "status": lambda v: v.snapshot.state,
        "progress": lambda v: f"{v.snapshot.progress}%",
        "owner-id": lambda v: v.snapshot.account_id,
        "owner-alias": lambda _v: None,
        "description": lambda v: v.snapshot.description,
        "start-time": lambda v: v.snapshot.started_at,
        "encrypted": lambda v: v.snapshot.encrypted,
        "storage-tier": lambda _v: "standard",
        "transfer-type": lambda _v: "standard",  # no time-based copies
    }
)


def not_found(snapshot_id: str) -> CloudError:
    return CloudError("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")


def _visible(account_id: str):
    shared = select(SnapshotPermission.snapshot_id).where(
        SnapshotPermission.grantee.in_([account_id, PUBLIC])
    )
    return (Snapshot.state != states.SNAPSHOT_DELETING) & or_(
        Snapshot.account_id == account_id, Snapshot.id.in_(shared)
    )


class Snapshots:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        tags: Tags,
        storage: StorageController,
        wake: Callable[[], None],
        users: SnapshotUsers,
        keys: EbsKeys,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.db = db
        self.tags = tags
        self.storage = storage
        self.wake = wake
        self.users = users
        tags.register(
            Taggable(
                "snap",
                "snapshot",
                "InvalidSnapshot.NotFound",
                "snapshot",
                owned_ids(Snapshot, Snapshot.state != states.SNAPSHOT_DELETING),
            )
        )

    # -- CreateSnapshot / CopySnapshot ---------------------------------------------------

    def create(
        self,
        account_id: str,
        volume_id: str | None,
        description: str | None,
        tags: Mapping[str, str] | None = None,
    ) -> SnapshotView:
        if not volume_id:
            raise missing_parameter("VolumeId")
        check_ids([volume_id], "vol", "InvalidVolumeID.Malformed")
        description = _description(description)
        with self.db.write_session() as session:
            volume = session.get(Volume, volume_id)
            if volume is None or volume.account_id != account_id:
                raise CloudError(
                    "InvalidVolume.NotFound", f"The volume '{volume_id}' does not exist."
                )
            if volume.state != states.AVAILABLE:
                raise CloudError(
                    "IncorrectState", f"Volume '{volume_id}' is in the '{volume.state}' state."
                )
            view = self._add(
                session,
                account_id,
                volume.id,
                volume.size_gib,
                description,
                tags or {},
                None,
                encrypted=volume.encrypted,
            )
        self.wake()
        return view

    def copy(self, account_id: str, request: CopySnapshotRequest) -> SnapshotView:
        source_id = request.source_snapshot_id
        if not source_id:
            raise missing_parameter("SourceSnapshotId")
        if not request.source_region:
            raise missing_parameter("SourceRegion")
        regions = {
            "SourceRegion": request.source_region,
            "DestinationRegion": request.destination_region,
        }
        for name, region in regions.items():
            if region and region != self.settings.region:
                raise invalid_value(f"Value ({region}) for parameter {name} is invalid.")
        tags = dict(request.tags)
        with self.db.write_session() as session:
            source = self.restorable(session, account_id, source_id)
            encrypted = encryption_of(
                requested=request.encrypted,
                kms_key_id=request.kms_key_id,
                by_default=False,  # a copy's encryption is the source's or the request's
                snapshot_encrypted=source.encrypted,
            )
            if request.kms_key_id:
                self.keys.resolve(account_id, request.kms_key_id, session)
            description = _description(
                request.description
                or f"[Copied {source.id} from {self.settings.region}] {source.description}".strip()
            )
            view = self._add(
                session,
                account_id,
                NO_VOLUME,
                source.volume_size,
                description,
                tags,
                source.id,
                encrypted=encrypted,
            )
        self.wake()
        return view

    def create_from_file(self, account_id: str, path: Path, description: str = "") -> SnapshotView:
        """A snapshot of a raw disk image (ImportImage, the default EBS image).

        Pending when it returns; the worker uploads it like any other snapshot.
        """
        size_gib = max(1, math.ceil(path.stat().st_size / GIB))
        with self.db.session() as session:
            snapshot_id = new_id("snap", lambda i: session.get(Snapshot, i) is not None)
        self.storage.checkpoint_file(snapshot_id, path)
        with self.db.write_session() as session:
            view = self._add(
                session,
                account_id,
                NO_VOLUME,
                size_gib,
                _description(description),
                {},
                None,
                snapshot_id=snapshot_id,
            )
            view.snapshot.checkpointed = True
        self.wake()
        return view

    def _add(
        self,
        session: Session,
        account_id: str,
        volume_id: str,
        size_gib: int,
        description: str,
        tags: Mapping[str, str],
        source_id: str | None,
        *,
        snapshot_id: str | None = None,
        encrypted: bool = False,
    ) -> SnapshotView:
        snapshot = Snapshot(
            id=snapshot_id or new_id("snap", lambda i: session.get(Snapshot, i) is not None),
            account_id=account_id,
            volume_id=volume_id,
            volume_size=size_gib,
            description=description,
            state=states.PENDING,
            progress=0,
            source_snapshot_id=source_id,
            started_at=datetime.now(UTC),
            encrypted=encrypted,
        )
        session.add(snapshot)
        session.flush()
        if tags:
            self.tags.put(session, account_id, [snapshot.id], tags)
        return SnapshotView(snapshot, dict(tags))

    # -- use by others ---------------------------------------------------------------------

    def restorable(self, session: Session, account_id: str, snapshot_id: str) -> Snapshot:
        """A completed snapshot the account may create volumes from (own, shared or public)."""
        check_ids([snapshot_id], "snap", "InvalidSnapshotID.Malformed")
        snapshot = session.scalar(
            select(Snapshot).where(Snapshot.id == snapshot_id, _visible(account_id))
        )
        if snapshot is None:
            raise not_found(snapshot_id)
        if snapshot.state != states.COMPLETED:
            raise CloudError(
                "IncorrectState", f"Snapshot '{snapshot_id}' is in the '{snapshot.state}' state."
            )
        return snapshot

    # -- DescribeSnapshots -------------------------------------------------------------------

    def describe(
        self,
        account_id: str,
        ids: Sequence[str] | None = None,
        owners: Sequence[str] | None = None,
        restorable_by: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[SnapshotView]:
        ids = check_ids(ids, "snap", "InvalidSnapshotID.Malformed")
        with self.db.session() as session:
            query = select(Snapshot).where(_visible(account_id))
            if ids:
                query = query.where(Snapshot.id.in_(ids))
            rows = list(session.scalars(query))
            found = {s.id for s in rows}
            for snapshot_id in ids:
                if snapshot_id not in found:
                    raise not_found(snapshot_id)
            if owners:
                wanted = {account_id if o == "self" else o for o in owners}
                rows = [s for s in rows if s.account_id in wanted]
            if restorable_by:
                grants = self._grants(session, [s.id for s in rows])
                users = {account_id if u == "self" else u for u in restorable_by}
                rows = [s for s in rows if _restorable_by(grants.get(s.id, set()), users)]
            tags = self.tags.of(session, [s.id for s in rows], account_id)
        views = [SnapshotView(s, tags.get(s.id, {})) for s in rows]
        views = FILTERS.apply(views, filters, lambda v: v.tags)
        return paginate(
            views,
            lambda v: v.snapshot.id,
            max_results,
            next_token,
            kind="snapshots",
            ids_given=bool(ids),
        )

    @staticmethod
    def _grants(session: Session, ids: Sequence[str]) -> dict[str, set[str]]:
        grants: dict[str, set[str]] = {}
        rows = session.execute(
            select(SnapshotPermission.snapshot_id, SnapshotPermission.grantee).where(
                SnapshotPermission.snapshot_id.in_(ids)
            )
        )
        for snapshot_id, grantee in rows:
            grants.setdefault(snapshot_id, set()).add(grantee)
        return grants

    # -- DeleteSnapshot ---------------------------------------------------------------------

    def delete(self, account_id: str, snapshot_id: str | None) -> None:
        with self.db.write_session() as session:
            snapshot = self._own(session, account_id, snapshot_id)
            users = self.users(session, snapshot.id)
            if users:
                raise CloudError(
                    "InvalidSnapshot.InUse",
                    f"The snapshot {snapshot.id} is currently in use by {users[0]}",
                )
            snapshot.state = states.SNAPSHOT_DELETING
        self.wake()

    def _own(self, session: Session, account_id: str, snapshot_id: str | None) -> Snapshot:
        if not snapshot_id:
            raise missing_parameter("SnapshotId")
        check_ids([snapshot_id], "snap", "InvalidSnapshotID.Malformed")
        snapshot = session.get(Snapshot, snapshot_id)
        if (
            snapshot is None
            or snapshot.account_id != account_id
            or snapshot.state == states.SNAPSHOT_DELETING
        ):
            raise not_found(snapshot_id)
        return snapshot

    # -- createVolumePermission -------------------------------------------------------------

    def attribute(
        self, account_id: str, snapshot_id: str | None, name: str | None
    ) -> SnapshotAttribute:
        """DescribeSnapshotAttribute: ``createVolumePermission`` (its grantees, ``all``
        for everyone, sorted) or ``productCodes`` (none)."""
        if not name:
            raise missing_parameter("Attribute")
        with self.db.session() as session:
            snapshot = self._own(session, account_id, snapshot_id)
            if name == "productCodes":
                return SnapshotAttribute(snapshot.id, name)
            if name != "createVolumePermission":
                raise _bad_attribute(name)
            grants = sorted(self._grants(session, [snapshot.id]).get(snapshot.id, set()))
        return SnapshotAttribute(snapshot.id, name, tuple(grants))

    def modify_attribute(
        self,
        account_id: str,
        snapshot_id: str | None,
        attribute: str | None,
        modification: PermissionModification,
    ) -> None:
        """ModifySnapshotAttribute: who may create volumes from the snapshot."""
        if attribute not in (None, "createVolumePermission"):
            raise _bad_attribute(attribute)
        changes = permission_changes("CreateVolumePermission", modification, VOLUME_GRANTEE_ERRORS)
        with self.db.write_session() as session:
            snapshot = self._own(session, account_id, snapshot_id)
            if changes.add and snapshot.encrypted:
                raise CloudError(
                    "InvalidParameter",
                    "Snapshots encrypted with the AWS Managed CMK can't be shared. "
                    "Specify another snapshot.",
                )
            if changes.remove:
                session.execute(
                    delete(SnapshotPermission).where(
                        SnapshotPermission.snapshot_id == snapshot.id,
                        SnapshotPermission.grantee.in_(changes.remove),
                    )
                )
            existing = self._grants(session, [snapshot.id]).get(snapshot.id, set())
            for grantee in sorted(changes.add - existing):
                session.add(SnapshotPermission(snapshot_id=snapshot.id, grantee=grantee))

    def reset_attribute(self, account_id: str, snapshot_id: str | None, name: str | None) -> None:
        if not name:
            raise missing_parameter("Attribute")
        if name != "createVolumePermission":
            raise _bad_attribute(name)
        with self.db.write_session() as session:
            snapshot = self._own(session, account_id, snapshot_id)
            session.execute(
                delete(SnapshotPermission).where(SnapshotPermission.snapshot_id == snapshot.id)
            )


def _restorable_by(grants: set[str], users: set[str]) -> bool:
    """Whether any of ``users`` holds an explicit createVolumePermission (``all``: public)."""
    return bool(grants & users)


def volume_size(size: int | None, snapshot: Snapshot) -> int:
    """The size of a volume made from ``snapshot``: its own by default, never smaller."""
    if size is None:
        return snapshot.volume_size
    if size < snapshot.volume_size:
        raise invalid_value(
            f"Volume of {size}GiB is smaller than snapshot '{snapshot.id}', "
            f"expect size >= {snapshot.volume_size}GiB"
        )
    return size


def _description(value: str | None) -> str:
    value = value or ""
    if len(value) > MAX_DESCRIPTION:
        raise invalid_value(f"The description exceeds {MAX_DESCRIPTION} characters.")
    return value


def _bad_attribute(name: str) -> CloudError:
    return invalid_value(f"Value ({name}) for parameter attribute is invalid. Unknown attribute.")


def _bad_user(user: str | None) -> CloudError:
    if not user:
        return missing_parameter("UserId")
    return CloudError("InvalidUserID.Malformed", f"Invalid user id: '{user}'")


VOLUME_GRANTEE_ERRORS = GranteeErrors(
    group=lambda group: invalid_value(f"Value ({group}) for parameter group is invalid."),
    user=_bad_user,
)
