"""EBS wired together: the Storage Controller, the volume and snapshot services, the worker."""

from __future__ import annotations

from karri.cloud.regions import Geography
from karri.cloud.tags import Tags
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
    ``snapshots``, and the ``worker`` that `karri up` starts."""

    def __init__(
        self, settings: Settings, db: Database, tags: Tags, geography: Geography, walrus: Walrus
    ) -> None:
        self.storage: StorageController = open_storage(settings.data_dir)
        self.worker = EbsWorker(db, self.storage, SnapshotObjects(walrus), tags)
        self.snapshots = Snapshots(settings, db, tags, self.storage, self.worker.wake)
        self.volumes = Volumes(settings, db, tags, geography, self.snapshots, self.worker.wake)

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
