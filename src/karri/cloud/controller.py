"""The cloud controller: one object that holds every CLC service."""

from __future__ import annotations

import threading

from karri.cloud.accounts import Accounts, Credentials
from karri.cloud.certs import CloudCertificate
from karri.cloud.images.service import Images, snapshot_users
from karri.cloud.instances.launch import ImageDisks
from karri.cloud.instances.reconciler import Reconciler
from karri.cloud.instances.service import Instances
from karri.cloud.keypairs import KeyPairs
from karri.cloud.regions import Geography
from karri.cloud.tags import Tags
from karri.cloud.vmtypes import VmTypes
from karri.cloud.volumes.attachments import Attachments
from karri.cloud.volumes.capture import ImageCapture
from karri.cloud.volumes.ebs import Ebs
from karri.cloud.volumes.intents import CaptureIntents
from karri.cloud.volumes.launch import BlockDevices
from karri.cloud.volumes.modifications import Modifications
from karri.cloud.volumes.objects import SnapshotObjects
from karri.cloud.volumes.service import Volumes
from karri.cloud.volumes.snapshots import Snapshots
from karri.cloud.volumes.worker import EbsWorker
from karri.config import ADMIN_ACCOUNT, Settings
from karri.db.engine import Database
from karri.node import IdentityKey, Node, NodeSettings
from karri.node.fake import FakeNode
from karri.node.imagecache import ImageCache
from karri.storage import open_storage
from karri.walrus import Walrus


class Cloud:
    """Every CLC service, built here and nowhere else: each gets its collaborators in its
    constructor. EBS's volumes come first (EBS-backed images and launches are made of
    them), then images, then instances, then what needs both: CreateImage and the EBS
    worker (which settles CreateImage's images and restarts its instances)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.accounts = Accounts(db)
        self.tags = tags = Tags(db)
        self.keypairs = KeyPairs(db, tags)
        self.vmtypes = VmTypes(db)
        self.geography = Geography(settings)
        self.walrus = Walrus(db, settings.data_dir / "walrus")
        self.certificate = CloudCertificate(settings.data_dir, settings.region)
        wakeup = threading.Event()  # the EBS worker's: every EBS call that leaves work sets it
        storage = open_storage(settings.data_dir)
        snapshots = Snapshots(settings, db, tags, storage, wakeup.set, snapshot_users)
        volumes = Volumes(settings, db, tags, self.geography, snapshots, wakeup.set)
        block_devices = BlockDevices(db, tags, storage, volumes, snapshots)
        intents = CaptureIntents(db, wakeup.set)
        self.images = Images(
            db,
            tags,
            self.walrus,
            self.certificate,
            lambda: self.accounts.credentials(ADMIN_ACCOUNT).account_id,
            settings.data_dir / "images" / "tmp",
            int(settings.max_image_gib) * 1024**3,
            block_devices=block_devices,
            snapshots=snapshots,
        )
        self.instances = instances = Instances(
            settings,
            db,
            tags,
            self.vmtypes,
            self.keypairs,
            self.geography,
            images=self.images,
            block_devices=block_devices,
            user_stopped=intents.user_stopped,
        )
        worker = EbsWorker(
            db,
            storage,
            SnapshotObjects(self.walrus),
            tags,
            wakeup=wakeup,
            images=self.images,
            resume_captures=lambda: intents.resume(
                lambda account_id, instance_id: instances.start(account_id, [instance_id])
            ),
        )
        self.ebs = Ebs(
            storage=storage,
            volumes=volumes,
            snapshots=snapshots,
            attachments=Attachments(db, wakeup.set),
            modifications=Modifications(volumes, wakeup.set),
            block_devices=block_devices,
            capture=ImageCapture(db, snapshots, intents, self.images, instances),
            worker=worker,
            scratch=settings.data_dir / "volumes" / "tmp",
        )

    def bootstrap(self) -> Credentials:
        """Everything a first start creates; a no-op afterwards. Returns the admin's keys."""
        self.vmtypes.ensure_defaults()
        return self.accounts.ensure_admin()

    def start(self) -> None:
        """Start the background work of `karri up` (one-shot CLI commands never do)."""
        self.ebs.start()
        self.images.start(
            self.accounts.credentials(ADMIN_ACCOUNT).account_id,
            default_set=self.settings.default_images,
            scratch=self.settings.data_dir / "images" / "tmp",
        )
        if self.settings.default_images:
            admin = self.accounts.credentials(ADMIN_ACCOUNT).account_id
            self.ebs.install_default_image(self.images, admin)

    def node_runtime(self) -> Reconciler:
        """The node of this host and the reconciler that drives it (`karri up` only)."""
        s = self.settings
        identity = IdentityKey(
            self.certificate.key_path.read_bytes(), self.certificate.cert_path.read_bytes()
        )
        node_settings = NodeSettings(
            subnet=s.private_subnet,
            public_ip_pool=s.public_pool,
            accelerator=s.accelerator,
            cpu_overcommit=s.cpu_overcommit,
            memory_overcommit=s.memory_overcommit,
            identity_key=identity,
        )
        cache = ImageCache(s.data_dir / "node" / "images")
        self.images.deregistered_hooks.append(cache.forget)
        disks = ImageDisks(cache, self.images.fetcher, self.ebs.block_devices)
        return Reconciler(
            self.db,
            self.instances,
            disks,
            s.region,
            lambda lookup, on_exit, on_recovery: (
                FakeNode(on_exit=on_exit, on_recovery=on_recovery)
                if s.node_driver == "fake"
                else Node(
                    s.data_dir,
                    node_settings,
                    metadata=lookup,
                    on_exit=on_exit,
                    on_recovery=on_recovery,
                )
            ),
        )

    def stop(self) -> None:
        self.ebs.stop()
