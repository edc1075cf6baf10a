"""AttachVolume and DetachVolume: record the attachment; the EBS worker plugs it in.

An attachment row is the volume's one attachment (``attaching`` → ``attached`` →
``detaching``; the row goes at ``detached``). The root volume of an EBS-backed instance is
an attachment like any other, at the instance's root device name. Attaching to a stopped
instance is recorded at once and takes effect when it next starts (its disks are read from
these rows); the node itself is reached only by the worker, through a ``VolumeHost``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from karri.cloud.instances import states as instance_states
from karri.cloud.instances.models import Instance
from karri.cloud.instances.service import check_ids
from karri.cloud.volumes import states
from karri.cloud.volumes.models import Volume, VolumeAttachment
from karri.cloud.volumes.service import not_found
from karri.db.base import utcnow
from karri.db.engine import Database
from karri.errors import CloudError, invalid_value, missing_parameter

DEVICE = re.compile(r"^/dev/(sd|xvd|vd|hd)[a-z]{1,2}[0-9]{0,2}$")
# States in which an instance may take a volume: running now, or at its next start.
ATTACHABLE = (instance_states.RUNNING, instance_states.STOPPED)


@dataclass(frozen=True)
class AttachmentView:
    attachment: VolumeAttachment
    state: str  # the state to report (DetachVolume answers "detaching")


def check_device(device: str) -> str:
    if not DEVICE.match(device):
        raise invalid_value(
            f"Value ({device}) for parameter device is invalid. "
            f"{device} is not a valid EBS device name."
        )
    return device


def owned_instance(session: Session, account_id: str, instance_id: str) -> Instance:
    """The account's instance (not terminated), or ``InvalidInstanceID.NotFound``."""
    instance = session.get(Instance, instance_id)
    if (
        instance is None
        or instance.account_id != account_id
        or instance.state == instance_states.TERMINATED
    ):
        raise CloudError(
            "InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist"
        )
    return instance


def devices_in_use(session: Session, instance: Instance) -> set[str]:
    used = set(
        session.scalars(
            select(VolumeAttachment.device).where(VolumeAttachment.instance_id == instance.id)
        )
    )
    return used | {instance.root_device_name}


class Attachments:
    def __init__(self, db: Database, wake: Callable[[], None]) -> None:
        self.db = db
        self.wake = wake

    def attach(
        self,
        account_id: str,
        volume_id: str | None,
        instance_id: str | None,
        device: str | None,
    ) -> AttachmentView:
        for name, value in (("VolumeId", volume_id), ("InstanceId", instance_id)):
            if not value:
                raise missing_parameter(name)
        if not device:
            raise missing_parameter("Device")
        check_ids([volume_id], "vol", "InvalidVolumeID.Malformed")
        check_ids([instance_id], "i", "InvalidInstanceID.Malformed")
        check_device(device)
        with self.db.write_session() as session:
            volume = self._volume(session, account_id, volume_id)
            instance = owned_instance(session, account_id, instance_id)
            existing = session.get(VolumeAttachment, volume.id)
            if existing is not None:
                raise CloudError("VolumeInUse", f"{volume.id} is already attached to an instance")
            if volume.state != states.AVAILABLE:
                raise CloudError("IncorrectState", f"{volume.id} is not 'available'.")
            if instance.state not in ATTACHABLE:
                raise CloudError(
                    "IncorrectState", f"Instance '{instance.id}' is not 'running' or 'stopped'."
                )
            if volume.zone != instance.zone:
                raise CloudError(
                    "InvalidVolume.ZoneMismatch",
                    f"The volume '{volume.id}' is not in the same availability zone as "
                    f"instance '{instance.id}'",
                )
            if device in devices_in_use(session, instance):
                raise invalid_value(f"Attachment point {device} is already in use")
            attachment = VolumeAttachment(
                volume_id=volume.id,
                instance_id=instance.id,
                device=device,
                state=states.ATTACHING,
                delete_on_termination=False,
                attach_time=utcnow(),
            )
            session.add(attachment)
            view = AttachmentView(attachment, states.ATTACHING)
        self.wake()
        return view

    def detach(
        self,
        account_id: str,
        volume_id: str | None,
        instance_id: str | None = None,
        device: str | None = None,
        force: bool = False,
    ) -> AttachmentView:
        if not volume_id:
            raise missing_parameter("VolumeId")
        check_ids([volume_id], "vol", "InvalidVolumeID.Malformed")
        with self.db.write_session() as session:
            volume = self._volume(session, account_id, volume_id)
            attachment = session.get(VolumeAttachment, volume.id)
            if attachment is None:
                raise CloudError(
                    "IncorrectState", f"Volume '{volume.id}' is in the '{volume.state}' state."
                )
            if (instance_id and instance_id != attachment.instance_id) or (
                device and device != attachment.device
            ):
                raise CloudError(
                    "InvalidAttachment.NotFound",
                    f"Attachment point not found for volume '{volume.id}'",
                )
            instance = session.get(Instance, attachment.instance_id)
            if (
                instance is not None
                and attachment.device == instance.root_device_name
                and instance.state not in (instance_states.STOPPED, instance_states.TERMINATED)
            ):
                raise CloudError(
                    "OperationNotPermitted",
                    f"Unable to detach root volume '{volume.id}' from instance '{instance.id}'",
                )
            attachment.state = states.DETACHING
            attachment.force = attachment.force or force
            view = AttachmentView(attachment, states.DETACHING)
        self.wake()
        return view

    @staticmethod
    def _volume(session: Session, account_id: str, volume_id: str) -> Volume:
        volume = session.get(Volume, volume_id)
        if volume is None or volume.account_id != account_id:
            raise not_found(volume_id)
        return volume
