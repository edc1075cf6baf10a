"""EBS-backed images and instances: block device mappings become volumes at launch, and an
instance boots with the volumes attached to it.

``cloud.ebs.block_devices`` is what the images and instances services call:

- ``for_image`` checks a RegisterImage's mappings (snapshots the registrant may use);
- ``create_for_launch`` creates, in RunInstances' own transaction, each instance's volumes
  from the image's mappings and the request's, attached at their devices;
- ``boot_volumes`` tells the launcher which volumes instances start with (root first),
  or that one must wait (a volume still being restored from its snapshot);
- ``instance_mappings`` is what DescribeInstances reports as ``BlockDeviceMappings``;
- ``release_terminated`` and ``settle_stopped`` settle an instance's attachments in the
  transaction that records its new state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from karri.cloud.instances.models import Instance
from karri.cloud.tags import Tags
from karri.cloud.volumes import endings, states
from karri.cloud.volumes.checkpoints import checkpoints_awaited
from karri.cloud.volumes.keys import encryption_of
from karri.cloud.volumes.mapping_checks import normalize
from karri.cloud.volumes.mappings import BlockDeviceMapping, ebs_mappings, snapshot_ids
from karri.cloud.volumes.models import Snapshot, Volume, VolumeAttachment
from karri.cloud.volumes.service import Volumes
from karri.cloud.volumes.snapshots import Snapshots, not_found
from karri.cloud.volumes.targets import node_target
from karri.cloud.volumes.volume_types import settle, volume_limits
from karri.db.base import utcnow
from karri.db.engine import Database
from karri.errors import invalid_value
from karri.ids import new_id
from karri.node import DiskFormat, DiskLimits, VolumeDisk
from karri.storage import StorageController, VolumeTarget


@dataclass(frozen=True)
class BootVolume:
    volume_id: str
    device: str
    target: VolumeTarget
    root: bool
    limits: DiskLimits | None = None
    secret: str | None = field(default=None, repr=False)

    @property
    def disk(self) -> VolumeDisk:
        """The node's disk: the volume's file (LUKS opened with ``secret``), throttled to
        its type."""
        return VolumeDisk(
            self.volume_id,
            node_target(self.target),
            cast(DiskFormat, self.target.format),
            self.limits,
            self.secret,
        )


class BlockDevices:
    def __init__(
        self,
        db: Database,
        tags: Tags,
        storage: StorageController,
        volumes: Volumes,
        snapshots: Snapshots,
    ) -> None:
        self.db = db
        self.tags = tags
        self.storage = storage
        self.volumes = volumes
        self.snapshots = snapshots

    # -- RegisterImage ---------------------------------------------------------------------

    def for_image(
        self,
        account_id: str,
        mappings: Sequence[BlockDeviceMapping],
        root_device: str,
        *,
        pending: bool = False,
    ) -> list[BlockDeviceMapping]:
        """An EBS-backed image's mappings, checked and normalized (root from a snapshot).
        With ``pending`` (CreateImage) the account's own pending snapshots are accepted."""

        def snapshot_of(session: Session, snapshot_id: str) -> Snapshot:
            if pending:
                own = session.get(Snapshot, snapshot_id)
                if own is not None and own.account_id == account_id and own.state == states.PENDING:
                    return own
            return self.snapshots.restorable(session, account_id, snapshot_id)

        with self.db.session() as session:
            return normalize(
                mappings,
                root_device,
                lambda snapshot_id: snapshot_of(session, snapshot_id),
                require_root=True,
            )

    # -- RunInstances ------------------------------------------------------------------------

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
        """Each instance's volumes, created (``creating``) and attached (``attaching``) in the
        caller's transaction. Returns the mappings that were applied."""
        from_image = snapshot_ids(image_mappings)

        def snapshot_of(snapshot_id: str) -> Snapshot:
            if snapshot_id not in from_image:  # the launcher's own choice: its permissions
                return self.snapshots.restorable(session, account_id, snapshot_id)
            snapshot = session.get(Snapshot, snapshot_id)
            if snapshot is None or snapshot.state != states.COMPLETED:
                raise not_found(snapshot_id)
            return snapshot

        root_device = instances[0].root_device_name if instances else "/dev/sda1"
        applied = normalize(
            request_mappings or (),
            root_device,
            snapshot_of,
            require_root=ebs_root,
            base=image_mappings,
        )
        by_default = self.volumes.keys.by_default(account_id, session)
        encrypted = {
            m.device_name: encryption_of(
                requested=bool(m.ebs.encrypted),
                kms_key_id=m.ebs.kms_key_id,
                by_default=by_default,
                snapshot_encrypted=snapshot_of(m.ebs.snapshot_id).encrypted
                if m.ebs.snapshot_id
                else None,
            )
            for m in ebs_mappings(applied)
            if m.ebs is not None
        }
        for mapping in ebs_mappings(applied):
            if mapping.ebs is not None and mapping.ebs.kms_key_id:
                self.volumes.keys.resolve(account_id, mapping.ebs.kms_key_id, session)
        created: list[str] = []
        for instance in instances:
            for mapping in ebs_mappings(applied):
                ebs = mapping.ebs
                assert ebs is not None and ebs.volume_size is not None  # normalized
                self.volumes.check_size(ebs.volume_size)
                settled = settle(ebs.volume_type, ebs.volume_size, ebs.iops, ebs.throughput)
                volume = Volume(
                    id=new_id("vol", lambda i: session.get(Volume, i) is not None),
                    account_id=account_id,
                    size_gib=ebs.volume_size,
                    snapshot_id=ebs.snapshot_id,
                    zone=instance.zone,
                    volume_type=ebs.volume_type,
                    iops=settled.iops,
                    throughput=settled.throughput,
                    state=states.CREATING,
                    encrypted=encrypted[mapping.device_name],
                )
                session.add(volume)
                session.add(
                    VolumeAttachment(
                        volume_id=volume.id,
                        instance_id=instance.id,
                        device=mapping.device_name,
                        state=states.ATTACHING,
                        delete_on_termination=ebs.delete_on_termination,
                        attach_time=utcnow(),
                    )
                )
                created.append(volume.id)
        session.flush()
        if created and tags:
            self.tags.put(session, account_id, created, dict(tags))
        if created:
            event.listen(session, "after_commit", lambda _s: self.volumes.wake(), once=True)
        return applied

    # -- launching and describing --------------------------------------------------------------

    def volume_ids(self, instance_id: str) -> list[str]:
        """The volumes attached (or attaching) to the instance."""
        with self.db.session() as session:
            return list(
                session.scalars(
                    select(VolumeAttachment.volume_id).where(
                        VolumeAttachment.instance_id == instance_id
                    )
                )
            )

    def boot_volumes(self, instance_ids: Sequence[str]) -> dict[str, list[BootVolume] | None]:
        """The volumes each instance starts with, root first (an instance-store one: none);
        None while one is not ready. Raises when one can never be (its creation failed).
        One read for a wave of launches."""
        with self.db.session() as session:
            roots = dict(
                session.execute(
                    select(Instance.id, Instance.root_device_name).where(
                        Instance.id.in_(list(instance_ids))
                    )
                ).all()
            )
            rows = session.execute(
                select(VolumeAttachment, Volume)
                .join(Volume, Volume.id == VolumeAttachment.volume_id)
                .where(
                    VolumeAttachment.instance_id.in_(list(instance_ids)),
                    VolumeAttachment.state.in_((states.ATTACHING, states.ATTACHED)),
                )
            ).all()
            awaiting = checkpoints_awaited(session, [volume.id for _a, volume in rows])
        attached: dict[str, list[tuple[VolumeAttachment, Volume]]] = {}
        for attachment, volume in rows:
            attached.setdefault(attachment.instance_id, []).append((attachment, volume))
        found: dict[str, list[BootVolume] | None] = {}
        for instance_id in instance_ids:
            found[instance_id] = self._boot_volumes(
                attached.get(instance_id, []), roots.get(instance_id), awaiting
            )
        return found

    def _boot_volumes(
        self,
        rows: Sequence[tuple[VolumeAttachment, Volume]],
        root: str | None,
        awaiting: set[str],
    ) -> list[BootVolume] | None:
        for _attachment, volume in rows:
            if volume.state == states.ERROR:
                raise RuntimeError(f"volume {volume.id} could not be created")
            if volume.state != states.AVAILABLE or volume.id in awaiting:
                return None
        out = [
            BootVolume(
                a.volume_id,
                a.device,
                self.storage.target(a.volume_id),
                a.device == root,
                volume_limits(volume),
                self._passphrase(volume),
            )
            for a, volume in rows
        ]
        return sorted(out, key=lambda b: (not b.root, b.device))

    def passphrase_of(self, volume_id: str) -> str | None:
        """An encrypted volume's passphrase, for a node that lost it (None if plain)."""
        with self.db.session() as session:
            volume = session.get(Volume, volume_id)
            return self._passphrase(volume) if volume is not None else None

    def _passphrase(self, volume: Volume) -> str | None:
        """What opens an encrypted volume at boot: its account's key (handed to the node
        in the spec, as to a hot-plug; the node never stores it)."""
        return (
            self.volumes.keys.passphrase(volume.account_id).decode() if volume.encrypted else None
        )

    def instance_mappings(self, instance_ids: Sequence[str]) -> dict[str, list[VolumeAttachment]]:
        """The volumes attached to each instance, by device (DescribeInstances reports them
        as its ``BlockDeviceMappings``)."""
        out: dict[str, list[VolumeAttachment]] = {i: [] for i in instance_ids}
        with self.db.session() as session:
            rows = session.scalars(
                select(VolumeAttachment)
                .where(VolumeAttachment.instance_id.in_(list(instance_ids)))
                .order_by(VolumeAttachment.device)
            )
            for a in rows:
                out[a.instance_id].append(a)
        return out

    # -- an instance's stop and termination ------------------------------------------------

    def release_terminated(self, session: Session, instance_ids: Sequence[str]) -> None:
        """In the transaction that records their termination: the instances' volumes come
        free or go (``endings``); the worker deletes files once it commits."""
        if endings.release_terminated(session, instance_ids):
            event.listen(session, "after_commit", lambda _s: self.volumes.wake(), once=True)

    def settle_stopped(self, session: Session, instance_id: str) -> None:
        """In the transaction that records the stop: its attachments settled."""
        endings.settle_stopped(session, instance_id)

    def set_delete_on_termination(
        self, account_id: str, instance_id: str, device: str, value: bool
    ) -> None:
        """ModifyInstanceAttribute's BlockDeviceMapping.N.Ebs.DeleteOnTermination."""
        with self.db.write_session() as session:
            attachment = session.scalar(
                select(VolumeAttachment)
                .join(Volume, Volume.id == VolumeAttachment.volume_id)
                .where(
                    VolumeAttachment.instance_id == instance_id,
                    VolumeAttachment.device == device,
                    Volume.account_id == account_id,
                )
            )
            if attachment is None:
                raise invalid_value(f"The device {device} is not mapped on {instance_id}")
            attachment.delete_on_termination = value
