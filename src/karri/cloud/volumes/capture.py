"""CreateImage: an EBS-backed instance's volumes become snapshots, and those an EMI.

Without ``NoReboot`` the instance is stopped first (the guest powers off, so its file
systems are clean), its volumes are copied once it is down, and it is started again; with
``NoReboot`` the copies are taken from the running guest through QEMU (crash-consistent).
The image is ``pending`` until every snapshot is complete (the EBS worker settles it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from karri.cloud.images.service import check_description
from karri.cloud.instances import states as instance_states
from karri.cloud.instances.models import Instance
from karri.cloud.instances.service import check_ids
from karri.cloud.tags import specified_tags
from karri.cloud.volumes import states
from karri.cloud.volumes.attachments import owned_instance
from karri.cloud.volumes.models import Snapshot, Volume, VolumeAttachment
from karri.cloud.volumes.snapshots import Snapshots
from karri.db.engine import Database
from karri.errors import CloudError, invalid_value, missing_parameter

log = logging.getLogger("karri.ebs")

RESTART_WAIT = 3600.0
POLL = 1.0


class ImageCapture:
    def __init__(self, db: Database, snapshots: Snapshots) -> None:
        self.db = db
        self.snapshots = snapshots
        self.images: Any = None  # the images service
        self.instances: Any = None  # the instances service

    def create(self, account_id: str, params: Mapping[str, Any]) -> str:
        instance_id, name = params.get("InstanceId"), params.get("Name")
        if not instance_id:
            raise missing_parameter("InstanceId")
        if not name:
            raise missing_parameter("Name")
        if self.images is None or self.instances is None:
            raise CloudError("UnsupportedOperation", "CreateImage is not available")
        check_ids([instance_id], "i", "InvalidInstanceID.Malformed")
        # Everything that can be refused is refused before the instance is stopped.
        self.images.check_name(account_id, name)
        check_description(params.get("Description"))
        specs = params.get("TagSpecifications") or ()
        image_tags = [s for s in specs if s.get("ResourceType") == "image"]
        snapshot_tags = [s for s in specs if s.get("ResourceType") == "snapshot"]
        specified_tags(image_tags, "image")
        specified_tags(snapshot_tags, "snapshot")
        instance, volumes = self._instance(account_id, instance_id)
        reboot = not params.get("NoReboot") and instance.state == instance_states.RUNNING
        if reboot:
            self.instances.stop(account_id, [instance_id])
        taken: list[tuple[str, bool, str]] = []
        try:
            for device, volume_id, delete in volumes:
                snapshot = self.snapshots.create(
                    account_id,
                    volume_id,
                    f"Created by CreateImage({instance_id}) for {{image}} from {volume_id}",
                    snapshot_tags,
                ).snapshot
                taken.append((device, delete, snapshot.id))
            mappings = [
                {
                    "DeviceName": device,
                    "Ebs": {"SnapshotId": snapshot_id, "DeleteOnTermination": delete},
                }
                for device, delete, snapshot_id in taken
            ]
            image_id = self.images.register_ebs_pending(
                account_id,
                {
                    "Name": name,
                    "Description": params.get("Description"),
                    "Architecture": instance.architecture,
                    "RootDeviceName": instance.root_device_name,
                    "KernelId": instance.kernel_id,
                    "RamdiskId": instance.ramdisk_id,
                    "BlockDeviceMappings": mappings,
                    "TagSpecifications": image_tags,
                },
            )
        except Exception:
            for _device, _delete, snapshot_id in taken:
                self.snapshots.delete(account_id, snapshot_id)
            if reboot:
                self._restart_later(account_id, instance_id, [])
            raise
        snapshot_ids = [snapshot_id for _device, _delete, snapshot_id in taken]
        self._describe_snapshots(image_id, snapshot_ids)
        if reboot:
            self._restart_later(account_id, instance_id, snapshot_ids)
        return image_id

    def _restart_later(self, account_id: str, instance_id: str, snapshot_ids: list[str]) -> None:
        threading.Thread(
            target=self._restart,
            args=(account_id, instance_id, snapshot_ids),
            name=f"createimage-{instance_id}",
            daemon=True,
        ).start()

    def _instance(
        self, account_id: str, instance_id: str
    ) -> tuple[Instance, list[tuple[str, str, bool]]]:
        """The instance and its volumes: (device, volume id, delete on termination)."""
        with self.db.session() as session:
            instance = owned_instance(session, account_id, instance_id)
            if instance.root_device_type != "ebs":
                raise invalid_value(
                    f"The instance '{instance_id}' is not backed by EBS: "
                    "bundle an instance-store instance instead"
                )
            if instance.state not in (instance_states.RUNNING, instance_states.STOPPED):
                raise CloudError(
                    "IncorrectInstanceState",
                    f"The instance '{instance_id}' is not in the 'running' or 'stopped' state.",
                )
            rows = session.execute(
                select(VolumeAttachment.device, Volume.id, VolumeAttachment.delete_on_termination)
                .join(Volume, Volume.id == VolumeAttachment.volume_id)
                .where(
                    VolumeAttachment.instance_id == instance_id,
                    VolumeAttachment.state == states.ATTACHED,
                )
                .order_by(VolumeAttachment.device)
            ).all()
            if not any(device == instance.root_device_name for device, _v, _d in rows):
                raise CloudError(
                    "IncorrectInstanceState", f"The root volume of '{instance_id}' is not attached"
                )
            return instance, [(device, volume_id, delete) for device, volume_id, delete in rows]

    def _describe_snapshots(self, image_id: str, snapshot_ids: list[str]) -> None:
        """Name the image in its snapshots' descriptions, as AWS does."""
        with self.db.session() as session:
            for snapshot in session.scalars(select(Snapshot).where(Snapshot.id.in_(snapshot_ids))):
                snapshot.description = snapshot.description.replace("{image}", image_id)

    def _restart(self, account_id: str, instance_id: str, snapshot_ids: list[str]) -> None:
        """Start the instance again once its volumes have been copied."""
        stop = threading.Event()
        waited = 0.0
        while waited < RESTART_WAIT:
            with self.db.session() as session:
                rows = session.execute(
                    select(Snapshot.state, Snapshot.checkpointed).where(
                        Snapshot.id.in_(snapshot_ids)
                    )
                ).all()
                state = session.scalar(select(Instance.state).where(Instance.id == instance_id))
            copied = all(done or s != states.PENDING for s, done in rows)
            if copied and state == instance_states.STOPPED:
                try:
                    self.instances.start(account_id, [instance_id])
                except CloudError:
                    log.exception("CreateImage: restarting %s failed", instance_id)
                return
            if state not in (instance_states.STOPPING, instance_states.STOPPED):
                return  # someone else started or terminated it meanwhile
            stop.wait(POLL)
            waited += POLL
        log.warning("CreateImage: %s was not restarted (its volumes were not copied)", instance_id)
