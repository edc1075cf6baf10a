"""The cloud controller: one object that holds every CLC service."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from karri.cloud.accounts import Accounts, Credentials
from karri.cloud.certs import CloudCertificate
from karri.cloud.iam.service import Iam, iam_counter
from karri.cloud.images.service import Images, snapshot_users
from karri.cloud.instances.groups import default_group
from karri.cloud.instances.launch import ImageDisks
from karri.cloud.instances.placement import Scheduler
from karri.cloud.instances.profiles import InstanceProfiles
from karri.cloud.instances.reconciler import Reconciler
from karri.cloud.instances.service import Instances, attach_target, interface_facts
from karri.cloud.instances.standby import StandbyHearer
from karri.cloud.keypairs import KeyPairs
from karri.cloud.lifecycle_job import LifecycleJob
from karri.cloud.network.addresses import Addresses, mapped_in
from karri.cloud.network.dhcp_options import DhcpOptionSets
from karri.cloud.network.gateways import InternetGateways
from karri.cloud.network.groups import SecurityGroups
from karri.cloud.network.interface_changes import InterfaceChanges
from karri.cloud.network.interfaces import Interfaces
from karri.cloud.network.nat_gateways import NatGateways
from karri.cloud.network.network_acls import NetworkAcls
from karri.cloud.network.route_tables import RouteTables
from karri.cloud.network.subnet_changes import SubnetChanges
from karri.cloud.network.vpc_changes import VpcChanges
from karri.cloud.network.vpc_ranges import VpcRanges
from karri.cloud.network.vpcs import Vpcs
from karri.cloud.nodes.ca import NodeCA
from karri.cloud.nodes.directory import InstanceNodes, RegistryDirectory
from karri.cloud.nodes.identity import IdentitySigning, InstanceRecords
from karri.cloud.nodes.registry import Nodes
from karri.cloud.nodes.reports import NodeReports
from karri.cloud.push_requests import NO_PUSHES, NotifiedPushes, PushDispatcher, PushRequests
from karri.cloud.regions import Geography
from karri.cloud.systemkey import SystemKey, SystemUrls
from karri.cloud.tags import Tags
from karri.cloud.vmtypes import VmTypes
from karri.cloud.volumes.attachments import Attachments
from karri.cloud.volumes.capture import ImageCapture
from karri.cloud.volumes.ebs import Ebs
from karri.cloud.volumes.intents import CaptureIntents
from karri.cloud.volumes.keys import MASTER_KEY, EbsKeys, MasterKey
from karri.cloud.volumes.launch import BlockDevices
from karri.cloud.volumes.modifications import Modifications
from karri.cloud.volumes.objects import SnapshotObjects
from karri.cloud.volumes.service import Volumes
from karri.cloud.volumes.snapshots import Snapshots
from karri.cloud.volumes.targets import VolumeExports
from karri.cloud.volumes.worker import EbsWorker
from karri.config import ADMIN_ACCOUNT, Settings
from karri.db.engine import Database
from karri.db.leader_lock import on_postgres
from karri.db.push_notify import PgNotify, PushListener, listen_connection
from karri.node import IdentityKey, Node, NodeSettings
from karri.node.fake import FakeNode
from karri.node.identity import IdentitySigner
from karri.node.publicnat import PublicPool
from karri.storage import open_storage
from karri.walrus import Walrus, blob_store

log = logging.getLogger("karri")


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
        # on PostgreSQL, another front end may lead: the changes made here are told to it
        self.standby_pushes: PushRequests = (
            NotifiedPushes(PgNotify(db.engine)) if on_postgres(settings.database_url) else NO_PUSHES
        )
        self._push_listener: PushListener | None = None  # the leader's: hear_pushes()
        self._push_dispatcher: PushDispatcher | None = None
        self.volume_exports: VolumeExports | None = None  # with the node gateway only
        self.geography = Geography(settings)
        self.vpcs = Vpcs(db, tags, self.geography)
        self.groups = groups = SecurityGroups(
            db, tags, vpcs=self.vpcs, on_change=self._groups_changed
        )
        self.vpc_changes = VpcChanges(
            db,
            tags,
            self.geography,
            self.vpcs,
            groups,
            lambda account_id: default_group(account_id).group_id,
            dns_changed=self._dhcp_changed,
        )
        self.subnet_changes = SubnetChanges(db, tags, self.geography, self.vpcs)
        self.vpc_ranges = VpcRanges(db, self._dhcp_changed)
        self.gateways = InternetGateways(db, tags, self.vpcs, mapped_in, self._routes_changed)
        self.route_tables = RouteTables(db, tags, self.vpcs, self._routes_changed)
        self.nat_gateways = NatGateways(db, tags, self.vpcs, self._nat_gateways_changed)
        self.nat_gateways.register()
        self.nat_gateways.hosted = settings.local_node
        self.network_acls = NetworkAcls(db, tags, self.vpcs, self._acls_changed)
        self.dhcp_options = DhcpOptionSets(
            db, tags, self.vpcs, self._dhcp_changed, public_pool=settings.public_pool
        )
        self.accounts = Accounts(db, on_created=self._account_created)
        self.iam = Iam(db, iam_counter(settings.data_dir))
        self.keypairs = KeyPairs(db, tags)
        self.vmtypes = VmTypes(db)
        walrus_dir = settings.data_dir / "walrus"
        blobs = blob_store(
            walrus_dir, settings.walrus_backend, settings.ceph_conf, settings.ceph_user,
            settings.rados_pool,
        )  # fmt: skip
        self.walrus = Walrus(db, walrus_dir, blobs)
        self.lifecycle = LifecycleJob(self.walrus.apply_lifecycle)
        # Stores shared by several front ends (RADOS) are swept of orphans while serving.
        self.blob_sweeps = LifecycleJob(lambda _now: self.walrus.sweep_while_serving())
        self.certificate = CloudCertificate(settings.data_dir, settings.region)
        self.nodes = Nodes(db, NodeCA(settings.data_dir), [z.name for z in self.geography.zones])
        wakeup = threading.Event()  # the EBS worker's: every EBS call that leaves work sets it
        storage = open_storage(
            settings.data_dir, settings.ebs_backend, settings.ceph_conf, settings.ceph_user,
            settings.rbd_pool,
        )  # fmt: skip
        keys = EbsKeys(db, MasterKey(settings.data_dir / MASTER_KEY), settings.region)
        snapshots = Snapshots(settings, db, tags, storage, wakeup.set, snapshot_users, keys)
        volumes = Volumes(settings, db, tags, self.geography, snapshots, wakeup.set, keys)
        block_devices = BlockDevices(db, tags, storage, volumes, snapshots)
        intents = CaptureIntents(db, wakeup.set)
        self.system_key = SystemKey.load(settings.data_dir)
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
            urls=SystemUrls(self.system_key, settings.s3_url, settings.region),
        )
        self.profiles = InstanceProfiles(db, self.iam.roles, self.iam.sessions)
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
            profiles=self.profiles,
            scheduler=Scheduler(settings.scheduler),
        )
        self.nat_gateways.allocation = instances.allocation_lock
        self.addresses = Addresses(
            db,
            tags,
            settings.region,
            # the node's order of the pool (the same seed): the address chosen is the one
            # the node would have tried first
            PublicPool(settings.public_pool, str(settings.data_dir.resolve()), tries=1 << 16),
            on_change=self._addresses_changed,
            masquerade_enabled=settings.public_interface is not None,
        )
        self.interfaces = Interfaces(db, tags, self.geography, interface_facts(settings.region))
        self.interface_changes = InterfaceChanges(
            self.interfaces, groups, attach_target, instances.set_groups
        )
        self.interface_changes.allocation = instances.allocation_lock
        self.interface_changes.changed = self._interfaces_changed
        self.interface_changes.routes_changed = instances.routes_changed = self._routes_changed
        self.addresses.routes_changed = self._routes_changed
        worker = EbsWorker(
            db,
            storage,
            SnapshotObjects(self.walrus),
            tags,
            keys,
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
            keys=keys,
            scratch=settings.data_dir / "volumes" / "tmp",
        )

    def _pushes(self) -> PushRequests:
        """Who tells the nodes of a committed network change: this front end's reconciler
        once it runs (it leads); before, the leader (``standby_pushes``)."""
        return self._reconciler or self.standby_pushes

    def _account_created(self, account_id: str) -> None:
        """A new account's default VPC and its default security group."""
        self.vpcs.ensure_default(account_id)
        self.groups.ensure_default(account_id)

    def _groups_changed(self, vpc_id: str) -> None:
        """Security groups changed (committed): in force on the node when this returns."""
        self._pushes().groups_changed(vpc_id)

    def _routes_changed(self, vpc_id: str) -> None:
        """Which subnets of the VPC reach outside may have changed (committed)."""
        self._pushes().routes_changed(vpc_id)

    def _interfaces_changed(self, instance_id: str) -> None:
        self._pushes().interfaces_changed(instance_id)

    def _nat_gateways_changed(self, vpc_id: str) -> None:
        """A NAT gateway of the VPC came or is going (committed): the node is told in the
        background, and what it reports becomes the gateway's state."""
        self._pushes().nat_gateways_changed(vpc_id)

    def _acls_changed(self, vpc_id: str) -> None:
        """What a subnet's network ACL lets through may have changed (committed)."""
        self._pushes().acls_changed(vpc_id)

    def _dhcp_changed(self, vpc_id: str) -> None:
        """The VPC's DHCP option set, or its DNS, changed (committed)."""
        self._pushes().dhcp_changed(vpc_id)

    def _addresses_changed(self, instance_ids: Sequence[str]) -> None:
        """Public addresses moved (committed): mapped on the node when this returns."""
        self._pushes().addresses_changed(instance_ids)

    def _forget_image(self, image_id: str) -> None:
        """A deregistered image: the node frees its cached copy once unused."""
        if self._reconciler is not None and self._reconciler.node is not None:
            self._reconciler.node.forget_image(image_id)

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
        self.lifecycle.start()
        self.blob_sweeps.start()
        self.images.start(
            self.accounts.credentials(ADMIN_ACCOUNT).account_id,
            default_set=self.settings.default_images,
            scratch=self.settings.data_dir / "images" / "tmp",
        )
        if self.settings.default_images:
            admin = self.accounts.credentials(ADMIN_ACCOUNT).account_id
            self.ebs.install_default_image(self.images, admin)

    def node_reports(self) -> NodeReports:
        """What the node gateway hands nodes' reports to: the reconciler, once it runs;
        before, on a front end with no node of its own (which may stand by while another
        leads), what records them for the leader (``standby.StandbyHearer``)."""
        standby = (
            None
            if self.settings.local_node
            else StandbyHearer(self.db, self.settings.region, self.profiles)
        )
        return NodeReports(InstanceNodes(self.db), lambda: self._reconciler or standby)

    def identity_signing(self) -> IdentitySigning:
        """What signs the identity documents of joined nodes' instances (their gateway)."""
        return IdentitySigning(
            InstanceNodes(self.db),
            InstanceRecords(self.db, self.settings.region),
            IdentitySigner(self._identity_key()),
        )

    def _identity_key(self) -> IdentityKey:
        return IdentityKey(
            self.certificate.key_path.read_bytes(), self.certificate.cert_path.read_bytes()
        )

    def node_runtime(self, resync_every: float | None = None) -> Reconciler:
        """The node of this host (none with ``local_node`` False) and the reconciler that
        drives it and the joined nodes (`karri up` only, its leader: ``up.py``)."""
        s = self.settings
        node_settings = NodeSettings(
            public_ip_pool=s.public_pool,
            public_interface=s.public_interface,
            dhcp_lease_seconds=s.dhcp_lease_seconds,
            accelerator=s.accelerator,
            cpu_overcommit=s.cpu_overcommit,
            memory_overcommit=s.memory_overcommit,
            identity_key=self._identity_key(),
            cloud_walrus=s.data_dir / "walrus",  # the node shares this data dir: hard links
            qemu_in_host_namespace=s.ebs_backend == "rbd",  # QEMU reaches Ceph's monitors
        )
        self.images.deregistered_hooks.append(self._forget_image)
        if s.node_port:  # volumes for nodes on other hosts: NBD exports from this host
            self.volume_exports = VolumeExports(
                self.ebs.block_devices.storage, self.nodes.ca, s.data_dir / "nbd", s.host
            )
        disks = ImageDisks(self.images.image_ref, self.ebs.block_devices, self.volume_exports)
        self._reconciler = Reconciler(
            self.db,
            self.instances,
            disks,
            s.region,
            (
                lambda lookup, on_exit, on_recovery: (
                    FakeNode(on_exit=on_exit, on_recovery=on_recovery)
                    if s.node_driver == "fake"
                    else Node(
                        s.data_dir,
                        node_settings,
                        metadata=lookup,
                        on_exit=on_exit,
                        on_recovery=on_recovery,
                        volume_key=self.ebs.block_devices.passphrase_of,
                    )
                )
            )
            if s.local_node
            else None,
            groups=self.groups,
            addresses=self.addresses,
            routing=self.route_tables,
            nat_gateways=self.nat_gateways,
            profiles=self.profiles,
            acls=self.network_acls,
            dhcp=self.dhcp_options,
            zone=s.zone,
            directory=(  # nodes on other hosts reach the cloud only through its gateway
                RegistryDirectory(self.nodes, s.data_dir, s.cpu_overcommit, s.memory_overcommit)
                if s.node_port
                else None
            ),
            node_address=s.host if s.node_port else None,  # what joined nodes reach it at
            resync_every=resync_every,
        )
        return self._reconciler

    def hear_pushes(self, wait: float = 5.0) -> None:
        """On PostgreSQL, the leader (once ``node_runtime`` made its reconciler): the
        push requests of the other front ends heard and made on the reconciler. Called
        before the reconciler's start (which tells every VPC its state), it returns once
        listening (or after ``wait`` seconds: it keeps trying)."""
        reconciler = self._reconciler
        if reconciler is None or not on_postgres(self.settings.database_url):
            return
        self._push_dispatcher = dispatcher = PushDispatcher(reconciler)
        self._push_listener = PushListener(
            listen_connection(self.settings.database_url), dispatcher.heard, reconciler.resync
        )
        self._push_listener.start()
        if not self._push_listener.listening.wait(wait):
            log.warning("not yet listening for the other front ends' push requests")

    def stop(self) -> None:
        if self._push_listener is not None:
            self._push_listener.stop()
        if self._push_dispatcher is not None:
            self._push_dispatcher.close()
        self.lifecycle.stop()
        self.blob_sweeps.stop()
        self.ebs.stop()
