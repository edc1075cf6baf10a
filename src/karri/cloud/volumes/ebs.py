"""``cloud.ebs``: the Storage Controller's parts, as the controller wires them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from karri.cloud.volumes.attachments import Attachments
from karri.cloud.volumes.capture import ImageCapture
from karri.cloud.volumes.defaults import DefaultEbsImage, SourceImages
from karri.cloud.volumes.host import VolumeHost
from karri.cloud.volumes.keys import EbsKeys
from karri.cloud.volumes.launch import BlockDevices
from karri.cloud.volumes.modifications import Modifications
from karri.cloud.volumes.service import Volumes
from karri.cloud.volumes.snapshots import Snapshots
from karri.cloud.volumes.worker import EbsWorker
from karri.storage import StorageController


@dataclass
class Ebs:
    """``storage`` (where a volume's bytes are, for the node), ``volumes``, ``snapshots``,
    ``attachments``, ``modifications`` (ModifyVolume), ``block_devices`` (EBS-backed
    images and instances), ``capture`` (CreateImage), ``keys`` (encryption at rest),
    and the ``worker`` that `karri up` starts."""

    storage: StorageController
    volumes: Volumes
    snapshots: Snapshots
    attachments: Attachments
    modifications: Modifications
    block_devices: BlockDevices
    capture: ImageCapture
    worker: EbsWorker
    keys: EbsKeys
    scratch: Path  # where the default EBS image's disk is staged
    _default_image: DefaultEbsImage | None = field(default=None, init=False)

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

    def install_default_image(self, images: SourceImages, admin_account_id: str) -> None:
        """Register karri-tiny-ebs in the background, once karri-tiny is available."""
        self._default_image = DefaultEbsImage(
            self.snapshots, images, admin_account_id, self.scratch
        )
        self._default_image.start()

    def stop(self) -> None:
        if self._default_image is not None:
            self._default_image.stop()
        self.worker.stop()
        close = getattr(self.storage, "close", None)  # a Ceph cluster's connection
        if close is not None:
            close()
