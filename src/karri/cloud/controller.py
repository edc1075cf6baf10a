"""The cloud controller: one object that holds every CLC service."""

from __future__ import annotations

from karri.cloud.accounts import Accounts, Credentials
from karri.cloud.certs import CloudCertificate
from karri.cloud.images.service import Images
from karri.cloud.instances.launch import ImageDisks
from karri.cloud.instances.reconciler import Reconciler
from karri.cloud.instances.service import Instances
from karri.cloud.keypairs import KeyPairs
from karri.cloud.regions import Geography
from karri.cloud.tags import Tags
from karri.cloud.vmtypes import VmTypes
from karri.cloud.volumes.ebs import Ebs
from karri.config import ADMIN_ACCOUNT, Settings
from karri.db.engine import Database
from karri.node import IdentityKey, Node, NodeSettings
from karri.node.fake import FakeNode
from karri.node.imagecache import ImageCache
from karri.walrus import Walrus


class Cloud:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.accounts = Accounts(db)
        self.tags = Tags(db)
        self.keypairs = KeyPairs(db, self.tags)
        self.vmtypes = VmTypes(db)
        self.geography = Geography(settings)
        self.walrus = Walrus(db, settings.data_dir / "walrus")
        self.ebs = Ebs(settings, db, self.tags, self.geography, self.walrus)
        self.instances = Instances(
            settings, db, self.tags, self.vmtypes, self.keypairs, self.geography
        )
        self.certificate = CloudCertificate(settings.data_dir, settings.region)
        self.images = Images(
            db,
            self.tags,
            self.walrus,
            self.certificate,
            lambda: self.accounts.credentials(ADMIN_ACCOUNT).account_id,
            settings.data_dir / "images" / "tmp",
            int(settings.max_image_gib) * 1024**3,
        )
        self.instances.images = self.images
        self.ebs.connect(self.images, self.instances)

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
