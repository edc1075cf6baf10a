"""CreateImage: an EBS-backed instance's volumes become snapshots, and those an EMI.

Without ``NoReboot`` the instance is stopped first (the guest powers off, so its file
systems are clean), its volumes are copied once it is down, and it is started again; with
``NoReboot`` the copies are taken from the running guest through QEMU (crash-consistent).
The image is ``pending`` until every snapshot is complete (the EBS worker settles it).
What is left to do after the call (the restart) is recorded first (``intents.py``), so a
crash of karri at any point does not leave the instance stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import select

from karri.cloud.images.requests import RegisterRequest
from karri.cloud.images.service import check_description
from karri.cloud.instances import states as instance_states
from karri.cloud.instances.models import Instance
from karri.cloud.instances.service import check_ids
from karri.cloud.volumes import states
from karri.cloud.volumes.attachments import owned_instance
from karri.cloud.volumes.intents import CaptureIntents, snapshot_description
from karri.cloud.volumes.mappings import BlockDeviceMapping, EbsDevice
from karri.cloud.volumes.models import Volume, VolumeAttachment
from karri.cloud.volumes.requests import CreateImageRequest
from karri.cloud.volumes.snapshots import Snapshots
from karri.db.engine import Database
from karri.errors import CloudError, invalid_value, missing_parameter


class CapturedImages(Protocol):
    """The images service: checks the name first, registers the image last."""

    def check_name(self, account_id: str, name: str) -> None: ...
    def register_ebs_pending(
        self, account_id: str, request: RegisterRequest, image_id: str | None = None
    ) -> str: ...


class StoppableInstances(Protocol):
    """The instances service: stops the instance before its volumes are copied."""

    def stop(
        self, account_id: str, ids: Sequence[str], force: bool = False, by_user: bool = True
    ) -> Any: ...


class ImageCapture:
    def __init__(
        self,
        db: Database,
        snapshots: Snapshots,
        intents: CaptureIntents,
        images: CapturedImages,
        instances: StoppableInstances,
    ) -> None:
        self.db = db
        self.snapshots = snapshots
        self.intents = intents
        self.images = images
        self.instances = instances

    def create(self, account_id: str, request: CreateImageRequest) -> str:
        instance_id, name = request.instance_id, request.name
        if not instance_id:
            raise missing_parameter("InstanceId")
        if not name:
            raise missing_parameter("Name")
        check_ids([instance_id], "i", "InvalidInstanceID.Malformed")
        # Everything that can be refused is refused before the instance is stopped (the
        # tags were checked when the request was made).
        self.images.check_name(account_id, name)
        check_description(request.description)
        instance, volumes = self._instance(account_id, instance_id)
        reboot = not request.no_reboot and instance.state == instance_states.RUNNING
        # The intent is in the database before the instance is touched: if karri dies
        # from here on, the EBS worker starts the instance again (and undoes the snapshots
        # of an image that was never registered).
        image_id = self.intents.begin(account_id, instance_id, reboot)
        try:
            if reboot:
                self.instances.stop(account_id, [instance_id], by_user=False)
            mappings = tuple(
                BlockDeviceMapping(
                    device,
                    ebs=EbsDevice(
                        snapshot_id=self.snapshots.create(
                            account_id,
                            volume_id,
                            snapshot_description(instance_id, image_id, volume_id),
                            request.snapshot_tags,
                        ).snapshot.id,
                        delete_on_termination=delete,
                    ),
                )
                for device, volume_id, delete in volumes
            )
            self.images.register_ebs_pending(
                account_id,
                RegisterRequest(
                    name=name,
                    description=request.description,
                    architecture=instance.architecture,
                    root_device_name=instance.root_device_name,
                    kernel_id=instance.kernel_id,
                    ramdisk_id=instance.ramdisk_id,
                    block_device_mappings=mappings,
                    tags=request.image_tags,
                ),
                image_id,
            )
        finally:
            self.intents.end(image_id)  # the worker restarts the instance, or undoes
        return image_id

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
