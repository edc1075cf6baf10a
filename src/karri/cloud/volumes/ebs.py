"""EBS wired together: the Storage Controller, the volume and snapshot services, the worker."""

from __future__ import annotations

from typing import Any

from karri.cloud.regions import Geography
from karri.cloud.tags import Tags
from karri.cloud.volumes.attachments import Attachments
from karri.cloud.volumes.capture import ImageCapture
from karri.cloud.volumes.defaults import DefaultEbsImage
from karri.cloud.volumes.host import VolumeHost
from karri.cloud.volumes.intents import CaptureIntents
from karri.cloud.volumes.launch import BlockDevices
from karri.cloud.volumes.objects import SnapshotObjects
from karri.cloud.volumes.service import Volumes
from karri.cloud.volumes.snapshots import Snapshots
from karri.cloud.volumes.worker import EbsWorker
from karri.config import Settings
from karri.db.engine import Database
from karri.storage import StorageController, open_storage
from karri.walrus import Walrus


class Ebs:
    """``cloud.ebs``: ``storage`` (where a volume's bytes are, for the node), ``volumes``,
    ``snapshots``, ``attachments``, ``block_devices`` (EBS-backed images and instances),
    ``capture`` (CreateImage), and the ``worker`` that `karri up` starts."""

    def __init__(
        self, settings: Settings, db: Database, tags: Tags, geography: Geography, walrus: Walrus
    ) -> None:
        self.storage: StorageController = open_storage(settings.data_dir)
        self.worker = EbsWorker(db, self.storage, SnapshotObjects(walrus), tags)
        self.snapshots = Snapshots(settings, db, tags, self.storage, self.worker.wake)
        self.volumes = Volumes(settings, db, tags, geography, self.snapshots, self.worker.wake)
        self.attachments = Attachments(db, self.worker.wake)
        self.block_devices = BlockDevices(db, tags, self.storage, self.volumes, self.snapshots)
        self.capture = ImageCapture(db, self.snapshots, CaptureIntents(db, self.worker.wake))
        self.scratch = settings.data_dir / "volumes" / "tmp"
        self._default_image: DefaultEbsImage | None = None

    def connect(self, images: Any, instances: Any) -> None:
        """Hook EBS into the images and instances services: EBS-backed images and
        launches, snapshots kept by images, CreateImage."""
        images.block_devices = instances.block_devices = self.block_devices
        self.snapshots.add_in_use_check(images.snapshot_users)
        self.capture.images, self.capture.instances = images, instances
        self.worker.images = images
        intents = self.capture.intents
        instances.stop_hooks.append(intents.user_stopped)
        self.worker.resume_captures = lambda: intents.resume(
            lambda account_id, instance_id: instances.start(account_id, [instance_id])
        )

    def use_host(self, host: VolumeHost | None) -> None:
        """The node to plug volumes into (None once it goes down)."""
        previous, self.worker.host = self.worker.host, host
        close = getattr(previous, "close", None)
        if close is not None:
            close()
        self.worker.wake()

    def wake(self) -> None:
        """Look for work now (an instance started, stopped or terminated)."""
        self.worker.wake()

    def start(self) -> None:
        self.worker.start()

    def install_default_image(self, images: Any, admin_account_id: str) -> None:
        """Register karri-tiny-ebs in the background, once karri-tiny is available."""
        self._default_image = DefaultEbsImage(
            self.snapshots, images, admin_account_id, self.scratch
        )
        self._default_image.start()

    def stop(self) -> None:
        if self._default_image is not None:
            self._default_image.stop()
        self.worker.stop()
