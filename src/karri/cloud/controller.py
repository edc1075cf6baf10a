"""The cloud controller: one object that holds every CLC service."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from karri.cloud.accounts import Accounts, Credentials
from karri.cloud.certs import CloudCertificate
from karri.cloud.images.service import Images, snapshot_users
from karri.cloud.instances.launch import ImageDisks
from karri.cloud.instances.reconciler import Reconciler
from karri.cloud.instances.service import Instances, interface_facts
from karri.cloud.keypairs import KeyPairs
from karri.cloud.network.addresses import Addresses
from karri.cloud.network.groups import SecurityGroups
from karri.cloud.network.interfaces import Interfaces
from karri.cloud.network.vpcs import Vpcs
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
from karri.node.publicnat import PublicPool
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
        self.tags = tags = Tags(db)
        self._reconciler: Reconciler | None = None  # `karri up` only: node_runtime()
        self.geography = Geography(settings)
        self.vpcs = Vpcs(db, tags, self.geography)
        self.groups = groups = SecurityGroups(
            db, tags, vpcs=self.vpcs, on_change=self._groups_changed
        )
        self.accounts = Accounts(db, on_created=self._account_created)
        self.keypairs = KeyPairs(db, tags)
        self.vmtypes = VmTypes(db)
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
            subnets=self.vpcs,
            user_stopped=intents.user_stopped,
            groups=groups,
        )
        self.addresses = Addresses(
            db,
            tags,
            settings.region,
            # the node's order of the pool (the same seed): the address chosen is the one
            # the node would have tried first
            PublicPool(settings.public_pool, str(settings.data_dir.resolve()), tries=1 << 16),
            on_change=self._addresses_changed,
        )
        self.interfaces = Interfaces(db, tags, self.geography, interface_facts(settings.region))
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

    def _account_created(self, account_id: str) -> None:
        """A new account's default VPC and its default security group."""
        self.vpcs.ensure_default(account_id)
        self.groups.ensure_default(account_id)

    def _groups_changed(self, vpc_id: str) -> None:
        """Security groups changed (committed): in force on the node when this returns."""
        if self._reconciler is not None:
            self._reconciler.groups_changed(vpc_id)

    def _addresses_changed(self, instance_ids: Sequence[str]) -> None:
        """Public addresses moved (committed): mapped on the node when this returns."""
        if self._reconciler is not None:
            self._reconciler.addresses_changed(instance_ids)

    def bootstrap(self) -> Credentials:
        """Everything a first start creates; a no-op afterwards. Returns the admin's keys."""
        self.vmtypes.ensure_defaults()
        admin = self.accounts.ensure_admin()
        self.vpcs.ensure_all_defaults()  # accounts from before VPCs get theirs here
        self.groups.ensure_defaults(a.id for a in self.accounts.list())
        self.instances.join_default_vpcs()  # and so do their instances
        return admin

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
            public_ip_pool=s.public_pool,
            accelerator=s.accelerator,
            cpu_overcommit=s.cpu_overcommit,
            memory_overcommit=s.memory_overcommit,
            identity_key=identity,
        )
        cache = ImageCache(s.data_dir / "node" / "images")
        self.images.deregistered_hooks.append(cache.forget)
        disks = ImageDisks(cache, self.images.fetcher, self.ebs.block_devices)
        self._reconciler = Reconciler(
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
            groups=self.groups,
            addresses=self.addresses,
        )
        return self._reconciler

    def stop(self) -> None:
        self.ebs.stop()
