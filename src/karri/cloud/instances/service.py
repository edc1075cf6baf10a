"""The EC2 instance calls: record intent in the database, let the reconciler act on it."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from karri.cloud.filters import Page, paginate
from karri.cloud.images.views import LaunchImage
from karri.cloud.instances import failover, launch_interfaces, states
from karri.cloud.instances.addresses import public_dns_name
from karri.cloud.instances.filters import (
    FILTERS,
    INTERFACE_TAG_FILTERS,
    VOLUME_FILTERS,
    InstanceFacts,
)
from karri.cloud.instances.groups import SecurityGroup, groups_of, stored
from karri.cloud.instances.listing import InstanceListing
from karri.cloud.instances.models import Instance, Reservation
from karri.cloud.instances.options import (
    check_client_token,
    check_launch_options,
    idempotency_mismatch,
)
from karri.cloud.instances.placement import (
    Demand,
    NodeName,
    NodeSlot,
    NoRoom,
    Scheduler,
    used_by_node,
    zone_room,
)
from karri.cloud.instances.profiles import NoProfiles, Profile
from karri.cloud.instances.requests import (
    RESETTABLE,
    AttributeChange,
    AttributeRequest,
    ProfileRef,
    RunRequest,
)
from karri.cloud.instances.status import FILTERS as STATUS_FILTERS
from karri.cloud.instances.status import InstanceStatus, status_of
from karri.cloud.keypairs import KeyPairs
from karri.cloud.network import interface_rules
from karri.cloud.network import interfaces as network_interfaces
from karri.cloud.network.address_models import ElasticIp, associated
from karri.cloud.network.addressing import free_private_ips, requested_private_ip
from karri.cloud.network.dns import public_name_vpcs
from karri.cloud.network.group_members import vpc_of
from karri.cloud.network.interface_routes import source_dest_check
from karri.cloud.network.models import NetworkInterface, Subnet
from karri.cloud.regions import Geography
from karri.cloud.tags import Taggable, Tags, owned_ids
from karri.cloud.vmtypes import VmTypes
from karri.cloud.volumes.mappings import BlockDeviceMapping
from karri.cloud.volumes.models import VolumeAttachment
from karri.config import Settings
from karri.db.engine import Database
from karri.db.reads import read_records
from karri.errors import (
    CloudError,
    invalid_combination,
    invalid_value,
    missing_parameter,
    unsupported,
)
from karri.ids import is_valid_id, new_id, new_ids
from karri.node import InstanceHealth

MAX_USER_DATA = 16 * 1024
NO_OTHERS = network_interfaces.InstanceInterfaces()
LISTED_COLUMNS = [c for c in Instance.__table__.c if c.key not in ("user_data", "public_key")]
"""What Describe calls read of each instance: not its user data or public key, which they
never show and which are the largest values of a row."""
DEFAULT_INSTANCE_TYPE = "m1.small"


class ImageCatalog(Protocol):
    """The images service, as a launch sees it."""

    def for_launch(
        self, account_id: str, image_id: str, kernel_id: str | None, ramdisk_id: str | None
    ) -> LaunchImage: ...
    def check_launchable(self, account_id: str, image_id: str, kind: str) -> None: ...


class LaunchVolumes(Protocol):
    """EBS (``cloud.ebs.block_devices``) as the service sees it: the volumes of a launch,
    the mappings of instances."""

    def create_for_launch(
        self,
        session: Session,
        account_id: str,
        instances: Sequence[Instance],
        image_mappings: Sequence[BlockDeviceMapping],
        request_mappings: Sequence[BlockDeviceMapping] | None,
        *,
        ebs_root: bool,
        tags: Mapping[str, str] | None = None,
    ) -> list[BlockDeviceMapping]: ...
    def instance_mappings(
        self, instance_ids: Sequence[str]
    ) -> dict[str, list[VolumeAttachment]]: ...
    def set_delete_on_termination(
        self, account_id: str, instance_id: str, device: str, value: bool
    ) -> None: ...
    def release_terminated(self, session: Session, instance_ids: Sequence[str]) -> None: ...
    def settle_stopped(self, session: Session, instance_id: str) -> None: ...


class LaunchSubnets(Protocol):
    """The VPCs (``cloud.network.vpcs.Vpcs``) as a launch sees them."""

    def launch_subnet(
        self, session: Session, account_id: str, subnet_id: str | None, zone: str | None
    ) -> Subnet: ...


class GroupResolver(Protocol):
    """The security groups service (``cloud/network/groups.py``) as instances see it."""

    def resolve(
        self,
        account_id: str,
        vpc_id: str | None,
        names: Sequence[str],
        ids: Sequence[str],
        subnet_id: str = "",
    ) -> list[SecurityGroup]:
        """The account's groups of the VPC (None: its default VPC) by name or id; none
        given: the VPC's ``default`` group."""
        ...

    def members_changed(self, vpc_id: str) -> None:
        """Told after a committed change of which instances are in which groups."""
        ...


class InstanceDriver(Protocol):
    """The reconciler as the service sees it (``node``: the instance's, None the cloud's
    own)."""

    def wake(self) -> None: ...
    def reboot(self, instance_id: str, node: NodeName) -> None: ...
    def console_output(self, instance_id: str, node: NodeName) -> bytes: ...
    def slots(self) -> list[NodeSlot]:
        """The nodes that may take instances now (the cloud's own first)."""
        ...

    def health(self, instance_id: str, node: NodeName) -> InstanceHealth | str:
        """What the node observed of a running instance, or why nothing is known."""
        ...

    def node_broken(self, node: NodeName) -> bool:
        """Whether the node is BROKEN (its heartbeats missed; never the cloud's own)."""
        ...


@dataclass(frozen=True)
class InstanceView:
    instance: Instance
    tags: dict[str, str]
    interface: NetworkInterface | None = None
    """Its primary network interface (None once it is terminated)."""
    elastic_ip: ElasticIp | None = None
    """The elastic IP associated with it, if any."""
    profile: Profile | None = None
    """The IAM instance profile it holds, if any."""
    others: network_interfaces.InstanceInterfaces = NO_OTHERS
    """Its other interfaces and the secondary addresses of all of them."""
    public_names: bool = True
    """Whether its VPC gives public DNS names (``enableDnsHostnames``)."""


@dataclass(frozen=True)
class ReservationView:
    reservation: Reservation
    instances: list[InstanceView]


@dataclass(frozen=True)
class _Related:
    """What DescribeInstances reads beside the instances' rows, by instance id (the
    reservations by their id; ``named``: the VPCs that give public DNS names)."""

    tags: Mapping[str, dict[str, str]]
    interfaces: Mapping[str, NetworkInterface]
    others: Mapping[str, network_interfaces.InstanceInterfaces]
    elastic: Mapping[str, ElasticIp]
    profiles: Mapping[str, Profile]
    named: frozenset[str]
    reservations: Mapping[str, Any]


AttributeValue = str | bool | bytes | None | list[SecurityGroup] | list[dict[str, Any]]
"""What DescribeInstanceAttribute reads: a plain value, the groups, or EBS's mappings."""


class LaunchProfiles(Protocol):
    """IAM instance profiles (``profiles.InstanceProfiles``)."""

    def resolve(self, account_id: str, ref: ProfileRef | None) -> Profile: ...

    def attach(
        self, session: Session, account_id: str, instance_ids: Sequence[str], profile: Profile
    ) -> None: ...

    def of_instances(self, session: Session, instance_ids: Sequence[str]) -> dict[str, Profile]: ...


def check_ids(ids: Sequence[str] | None, prefix: str, code: str) -> list[str]:
    for value in ids or ():
        if not is_valid_id(value, prefix):
            raise CloudError(code, f'Invalid id: "{value}"')
    return list(ids or ())


class Instances:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        tags: Tags,
        vmtypes: VmTypes,
        keypairs: KeyPairs,
        geography: Geography,
        *,
        images: ImageCatalog,
        block_devices: LaunchVolumes,
        subnets: LaunchSubnets,
        groups: GroupResolver,
        user_stopped: Callable[[list[str]], None] = lambda _ids: None,
        driver: InstanceDriver | None = None,
        profiles: LaunchProfiles | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        """``user_stopped`` is told the ids of each StopInstances (CreateImage then does
        not start them again); ``driver`` is the reconciler, which sets itself here once
        the node is up (until then nothing runs, and capacity is not counted)."""
        self.settings = settings
        self.db = db
        self.tags = tags
        self.vmtypes = vmtypes
        self.keypairs = keypairs
        self.geography = geography
        self.images = images
        self.block_devices = block_devices
        self.subnets = subnets
        self.groups = groups
        self.user_stopped = user_stopped
        self.driver = driver
        self.scheduler = scheduler or Scheduler()
        self.profiles: LaunchProfiles = profiles or NoProfiles()
        self.listing = InstanceListing(db)
        """DescribeInstances' pages by id and version only (``listing.py``)."""
        self._allocation = threading.Lock()
        self.allocation_lock = self._allocation
        """Held while private addresses are chosen and written (others that take one
        of a subnet, NAT gateways, hold it too)."""
        self.routes_changed: Callable[[str], None] = lambda _vpc_id: None
        """Told a VPC after a committed SourceDestCheck change of one of its instances."""
        tags.register(
            Taggable(
                "i",
                "instance",
                "InvalidInstanceID.NotFound",
                "instance",
                owned_ids(Instance, Instance.state != states.TERMINATED),
            )
        )

    # -- RunInstances -----------------------------------------------------------------

    def run(self, account_id: str, request: RunRequest) -> ReservationView:
        min_count, max_count = self._counts(request)
        check_launch_options(request.options, request.network_interfaces)
        primary_spec, extra_specs = launch_interfaces.split(
            request.network_interfaces,
            max_count,
            request.instance_type or DEFAULT_INSTANCE_TYPE,
        )
        request_hash = _request_hash(request)
        given_eni = primary_spec.interface_id if primary_spec else None
        if primary_spec and given_eni:  # its subnet and groups are the instance's
            with self.db.session() as session:
                primary_spec = launch_interfaces.existing_primary(session, account_id, primary_spec)
        request = dataclasses.replace(
            request, network_interfaces=(primary_spec,) if primary_spec else ()
        )
        wanted_ip = self._wanted_ip(request, max_count)
        zone = self._zone(request.zone) if request.zone else None
        subnet_id = self._subnet_id(request)
        associate = self._associate_public_ip(request)
        with self.db.session() as session:  # the subnet and address, before anything else
            subnet = self.subnets.launch_subnet(session, account_id, subnet_id, zone)
            vpc_id, launch_subnet_id = subnet.vpc_id, subnet.id
            if wanted_ip:
                wanted_ip = requested_private_ip(subnet.cidr_block, wanted_ip)
        token = request.client_token
        if token:
            check_client_token(token)
            with self.db.session() as session:
                existing = self._by_token(session, account_id, token, request_hash)
            if existing:
                return existing
        if not request.image_id:
            raise missing_parameter("ImageId")
        image = self.images.for_launch(
            account_id, request.image_id, request.kernel_id, request.ramdisk_id
        )
        vm_type = self._vm_type(request.instance_type or DEFAULT_INSTANCE_TYPE)
        key_name, public_key = self._key(account_id, request.key_name)
        user_data = decode_user_data(request.user_data)
        groups = self._groups(account_id, vpc_id, launch_subnet_id, request)
        extras = [
            launch_interfaces.Extra(
                spec,
                tuple(self.groups.resolve(account_id, vpc_id, (), spec.groups, launch_subnet_id))
                if not spec.interface_id
                else (),
            )
            for spec in extra_specs
        ]
        behavior = request.shutdown_behavior or (
            "stop" if image.root_device_type == "ebs" else "terminate"
        )
        if behavior not in ("stop", "terminate"):
            raise invalid_value(
                f"Value ({behavior}) for parameter InstanceInitiatedShutdownBehavior is invalid."
            )
        instance_tags = request.instance_tags
        asked = request.options.instance_profile
        profile = self.profiles.resolve(account_id, asked) if asked else None
        with self._allocation, self.db.write_session() as session:
            if token:  # again, under the lock: a racing call with the token may have won
                existing = self._by_token(session, account_id, token, request_hash)
                if existing:
                    return existing
            subnet = self.subnets.launch_subnet(session, account_id, subnet_id, zone)
            demand = Demand(vm_type.cpu, vm_type.memory_mib)
            nodes = self._place(session, subnet.zone, [demand] * max_count, min_count)
            count = max_count if nodes is None else len(nodes)
            taken = network_interfaces.taken_ips(session, subnet.vpc_id)
            if wanted_ip in taken:
                raise CloudError("InvalidIPAddress.InUse", f"Address {wanted_ip} is in use.")
            addresses = (
                [wanted_ip] if wanted_ip else free_private_ips(subnet.cidr_block, taken, count)
            )
            if given_eni:  # the interface's own address
                addresses = [launch_interfaces.address_of(session, given_eni)]
            if len(addresses) < min_count:
                raise _no_capacity(f"your request for {min_count} instance(s): no free addresses")
            count = min(count, len(addresses))
            reservation = Reservation(
                id=new_id("r", lambda i: session.get(Reservation, i) is not None),
                account_id=account_id,
                client_token=token,
                request_hash=request_hash,
            )
            session.add(reservation)
            session.flush()  # the reservation row first: instances refer to it
            instances = []
            instance_ids = new_ids(
                "i",
                count,
                lambda ids: set(session.scalars(select(Instance.id).where(Instance.id.in_(ids)))),
            )
            for index, (instance_id, ip) in enumerate(
                zip(instance_ids, addresses[:count], strict=True)
            ):
                instance = Instance(
                    id=instance_id,
                    reservation_id=reservation.id,
                    account_id=account_id,
                    launch_index=index,
                    image_id=image.image_id,
                    kernel_id=image.kernel_id,
                    ramdisk_id=image.ramdisk_id,
                    instance_type=vm_type.name,
                    vcpus=vm_type.cpu,
                    memory_mib=vm_type.memory_mib,
                    disk_gib=vm_type.disk_gib,
                    key_name=key_name,
                    public_key=public_key,
                    user_data=user_data,
                    zone=subnet.zone,
                    vpc_id=subnet.vpc_id,
                    subnet_id=subnet.id,
                    associate_public_ip=(
                        subnet.map_public_ip_on_launch if associate is None else associate
                    ),
                    security_groups=stored(groups),
                    root_device_type=image.root_device_type,
                    root_device_name=image.root_device_name,
                    architecture=image.architecture,
                    shutdown_behavior=behavior,
                    disable_api_termination=request.disable_api_termination,
                    disable_api_stop=request.disable_api_stop,
                    private_ip=ip,
                    node=None if nodes is None else nodes[index],
                )
                session.add(instance)
                instances.append(instance)
            session.flush()
            made = (
                [launch_interfaces.take_primary(session, account_id, given_eni, instances[0].id)]
                if given_eni
                else network_interfaces.create_primary(
                    session, subnet, [(i.id, i.private_ip or "") for i in instances]
                )
            )
            for instance, interface in zip(instances, made, strict=True):
                instance.mac = interface.mac
                launch_interfaces.primary_extras(
                    session, interface, primary_spec, subnet.cidr_block, vm_type.name
                )
            if extras:
                session.flush()
                launch_interfaces.attach_extras(
                    session,
                    account_id,
                    attach_target(session, account_id, instances[0].id),
                    extras,
                    lambda subnet_id: self.subnets.launch_subnet(
                        session, account_id, subnet_id, subnet.zone
                    ),
                )
            self.block_devices.create_for_launch(
                session,
                account_id,
                instances,
                image.block_device_mappings,
                request.block_device_mappings,
                ebs_root=image.root_device_type == "ebs",
                tags=request.volume_tags,
            )
            if instance_tags:
                self.tags.put(session, account_id, [i.id for i in instances], instance_tags)
            if profile:
                self.profiles.attach(session, account_id, [i.id for i in instances], profile)
            others = network_interfaces.others_of(session, [i.id for i in instances])
            named = public_name_vpcs(session, [vpc_id])
            view = ReservationView(
                reservation,
                [
                    InstanceView(
                        i,
                        dict(instance_tags),
                        interface,
                        profile=profile,
                        others=others.get(i.id, NO_OTHERS),
                        public_names=vpc_id in named,
                    )
                    for i, interface in zip(instances, made, strict=True)
                ],
            )
        # No push of the VPC's groups here: the new members are pending, and the launch of
        # each pushes its VPC's state before its node runs it. Waiting for a push after
        # the commit could only delay the answer (past a client's read timeout, under a
        # wave of launches) or fail a call whose instances exist.
        self._wake()
        return view

    @staticmethod
    def _counts(request: RunRequest) -> tuple[int, int]:
        min_count, max_count = request.min_count, request.max_count
        if min_count is None:
            raise missing_parameter("MinCount")
        if max_count is None:
            raise missing_parameter("MaxCount")
        for name, value in (("MinCount", min_count), ("MaxCount", max_count)):
            if value < 1:
                raise invalid_value(
                    f"Value ({value}) for parameter {name} is invalid. Expected a positive integer."
                )
        if min_count > max_count:
            raise invalid_value(
                f"Value ({min_count}) for parameter MinCount is invalid. "
                "MinCount must not be greater than MaxCount."
            )
        return min_count, max_count

    @staticmethod
    def _subnet_id(request: RunRequest) -> str | None:
        """The subnet asked for, on the instance or its (one, primary) interface."""
        interfaces = request.network_interfaces
        on_interface = next((i.subnet_id for i in interfaces if i.subnet_id), None)
        if on_interface and request.options.subnet_id:
            raise invalid_combination(
                "Network interfaces and an instance-level subnet ID may not be specified on "
                "the same request"
            )
        return on_interface or request.options.subnet_id

    @staticmethod
    def _associate_public_ip(request: RunRequest) -> bool | None:
        """AssociatePublicIpAddress of the primary interface (None: the subnet decides)."""
        return next(
            (
                i.associate_public_ip
                for i in request.network_interfaces
                if i.associate_public_ip is not None
            ),
            None,
        )

    def _wanted_ip(self, request: RunRequest, max_count: int) -> str | None:
        """The private address asked for, on the instance or its first interface (checked
        against its subnet once that is known)."""
        on_interface = next(
            (i.private_ip for i in request.network_interfaces if i.private_ip), None
        )
        wanted = request.private_ip
        if wanted and on_interface:
            raise invalid_combination(
                "Network interfaces and an instance-level private IP address should not be "
                "specified on the same request"
            )
        wanted = wanted or on_interface
        if not wanted:
            return None
        if max_count > 1:
            raise invalid_combination(
                "A private IP address cannot be given when launching more than one instance"
            )
        return wanted

    def _by_token(
        self, session: Session, account_id: str, token: str, request_hash: str
    ) -> ReservationView | None:
        reservation = session.scalar(
            select(Reservation).where(
                Reservation.account_id == account_id, Reservation.client_token == token
            )
        )
        if reservation is None:
            return None
        if reservation.request_hash != request_hash:
            raise idempotency_mismatch()
        instances = list(
            session.scalars(
                select(Instance)
                .where(Instance.reservation_id == reservation.id)
                .order_by(Instance.launch_index)
            )
        )
        tags = self.tags.of(session, [i.id for i in instances], account_id)
        interfaces = network_interfaces.of_instances(session, [i.id for i in instances])
        profiles = self.profiles.of_instances(session, [i.id for i in instances])
        named = public_name_vpcs(session, (i.vpc_id for i in instances))
        return ReservationView(
            reservation,
            [
                InstanceView(
                    i,
                    tags[i.id],
                    interfaces.get(i.id),
                    profile=profiles.get(i.id),
                    public_names=i.vpc_id in named,
                )
                for i in instances
            ],
        )

    def _vm_type(self, name: str):
        try:
            return self.vmtypes.get(name)
        except CloudError:
            raise invalid_value(f"Invalid value '{name}' for InstanceType.") from None

    def _zone(self, wanted: str | None) -> str:
        zones = [z.name for z in self.geography.zones]
        zone = wanted or zones[0]
        if zone not in zones:
            raise invalid_value(f"Invalid availability zone: [{zone}]")
        return zone

    def _key(self, account_id: str, key_name: str | None) -> tuple[str | None, str | None]:
        if not key_name:
            return None, None
        public = self.keypairs.public_key(account_id, key_name)
        if public is None:
            raise CloudError("InvalidKeyPair.NotFound", f"The key pair '{key_name}' does not exist")
        return key_name, f"{public} {key_name}"

    def _groups(
        self, account_id: str, vpc_id: str, subnet_id: str, request: RunRequest
    ) -> list[SecurityGroup]:
        """The launch's groups, of its subnet's VPC: SecurityGroups (names) and
        SecurityGroupIds, or those of its first network interface; none given: the VPC's
        ``default``."""
        names, ids = request.security_groups, request.security_group_ids
        on_interface = next((i.groups for i in request.network_interfaces if i.groups), ())
        if on_interface and (names or ids):
            raise invalid_combination(
                "Network interfaces and an instance-level security groups may not be "
                "specified on the same request"
            )
        return self.groups.resolve(account_id, vpc_id, names, ids or on_interface, subnet_id)

    def _place(
        self, session: Session, zone: str, demands: Sequence[Demand], min_count: int
    ) -> list[NodeName] | None:
        """A node of ``zone`` for each demand that fits, all or nothing at ``min_count``
        (``placement.Scheduler``); None while no node has started (nothing is counted)."""
        if self.driver is None:
            return None
        slots = [s for s in self.driver.slots() if s.zone == zone]
        try:
            return self.scheduler.place(slots, used_by_node(session), demands, min_count)
        except NoRoom:
            raise _no_capacity(f"your request for {min_count} instance(s) of this type") from None

    def room(self, zone: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """The zone's nodes' (vCPUs, MiB): their totals (after over-commit) and what is
        free of them; None until the node has started (nothing is known of it)."""
        if self.driver is None:
            return None
        slots = self.driver.slots()
        with self.db.session() as session:
            return zone_room(slots, used_by_node(session), zone)

    # -- Describe ---------------------------------------------------------------------

    def describe(
        self,
        account_id: str,
        ids: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> tuple[list[ReservationView], str | None]:
        ids = check_ids(ids, "i", "InvalidInstanceID.Malformed")

        def listing(items: Sequence[Any]) -> Page[Any]:
            return paginate(
                items,
                lambda i: i.id,
                max_results,
                next_token,
                kind="instances",
                ids_given=bool(ids),
            )

        with self.db.session() as session:
            rows = self._named_rows(session, account_id, ids)
            # without filters, only the page's instances need their tags, interfaces, …
            page = None if filters else listing(rows)
            related = self._related(session, account_id, page.items if page else rows)
        if page is None:
            page = listing(self._filtered(account_id, rows, filters, related))
        grouped: dict[str, list[InstanceView]] = {}
        for instance in sorted(page.items, key=lambda i: (i.reservation_id, i.launch_index)):
            grouped.setdefault(instance.reservation_id, []).append(
                InstanceView(
                    instance,
                    related.tags[instance.id],
                    related.interfaces.get(instance.id),
                    related.elastic.get(instance.id),
                    related.profiles.get(instance.id),
                    related.others.get(instance.id, NO_OTHERS),
                    instance.vpc_id in related.named,
                )
            )
        reservations = related.reservations
        views = [ReservationView(reservations[rid], items) for rid, items in grouped.items()]
        return views, page.next_token

    def _related(self, session: Session, account_id: str, rows: Sequence[Any]) -> _Related:
        """What DescribeInstances shows of these instances beside their rows: one query
        per table, whatever their number."""
        ids = [i.id for i in rows]
        attached = network_interfaces.attached_to(session, ids)
        wanted = {i.reservation_id for i in rows}
        reservations = select(*Reservation.__table__.c).where(Reservation.id.in_(wanted))
        return _Related(
            tags=self.tags.of(session, ids, account_id),
            interfaces=attached.primary,
            others=attached.others,
            elastic=associated(session, ids),
            profiles=self.profiles.of_instances(session, ids),
            named=public_name_vpcs(session, (i.vpc_id for i in rows)),
            reservations={r.id: r for r in read_records(session, reservations)},
        )

    def _filtered(
        self,
        account_id: str,
        rows: list[Instance],
        filters: Sequence[Mapping[str, Any]],
        related: _Related,
    ) -> list[Instance]:
        """The rows that pass DescribeInstances' filters (``cloud/instances/filters.py``);
        volumes and interface tags are read only when a filter asks for them."""
        names = {f.get("Name") for f in filters}
        volumes = (
            self.block_devices.instance_mappings([i.id for i in rows])
            if names & VOLUME_FILTERS
            else {}
        )
        interfaces, tags = related.interfaces, related.tags
        interface_tags: Mapping[str, Mapping[str, str]] = {}
        if names & INTERFACE_TAG_FILTERS:
            with self.db.session() as session:
                interface_tags = self.tags.of(
                    session, [n.id for n in interfaces.values()], account_id
                )
        zone_ids = {z.name: z.zone_id for z in self.geography.zones}
        region = self.settings.region
        facts = [
            InstanceFacts(
                i,
                region,
                interface=(eni := interfaces.get(i.id)),
                interface_tags=interface_tags.get(eni.id, {}) if eni is not None else {},
                elastic_ip=related.elastic.get(i.id),
                volumes=volumes.get(i.id, ()),
                client_token=related.reservations[i.reservation_id].client_token,
                zone_id=zone_ids.get(i.zone),
                profile=related.profiles.get(i.id),
                public_names=i.vpc_id in related.named,
            )
            for i in rows
        ]
        return [f.instance for f in FILTERS.apply(facts, filters, lambda f: tags[f.instance.id])]

    def status(
        self,
        account_id: str,
        ids: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        include_all: bool = False,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> tuple[list[InstanceStatus], str | None]:
        """DescribeInstanceStatus: the running instances (all with ``include_all``) and
        their status checks, as their node observed them."""
        ids = check_ids(ids, "i", "InvalidInstanceID.Malformed")
        with self.db.session() as session:
            rows = self._named_rows(session, account_id, ids)
        if not include_all:
            rows = [i for i in rows if i.state == states.RUNNING]
        statuses = STATUS_FILTERS.apply((status_of(i, self._health(i)) for i in rows), filters)
        page = paginate(
            statuses,
            lambda s: s.instance.id,
            max_results,
            next_token,
            kind="instance-status",
            ids_given=bool(ids),
        )
        return page.items, page.next_token

    def _named_rows(self, session: Session, account_id: str, ids: Sequence[str]) -> list[Any]:
        """The account's visible instances (those named, each of which must exist), as plain
        rows, not ORM objects: a Describe of thousands of instances stays cheap. They carry
        the same attribute names, so filters and views read them alike (all but
        ``LISTED_COLUMNS``' omissions)."""
        query = select(*LISTED_COLUMNS).where(Instance.account_id == account_id)
        if ids:
            query = query.where(Instance.id.in_(ids))
        rows = [i for i in read_records(session, query) if states.visible(i)]
        self._require(ids, rows)
        return rows

    def _health(self, instance: Instance) -> InstanceHealth | str | None:
        if instance.state != states.RUNNING:
            return None
        if self.driver is None:
            return "the node controller has not started yet"
        return self.driver.health(instance.id, instance.node)

    @staticmethod
    def _require(ids: Sequence[str], rows: Sequence[Instance]) -> None:
        found = {i.id for i in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise CloudError(
                "InvalidInstanceID.NotFound",
                f"The instance ID{'s' if len(missing) > 1 else ''} '{', '.join(missing)}' "
                f"do{'' if len(missing) > 1 else 'es'} not exist",
            )

    def _owned_instances(
        self, session: Session, account_id: str, ids: Sequence[str]
    ) -> list[Instance]:
        ids = check_ids(ids, "i", "InvalidInstanceID.Malformed")
        if not ids:
            raise missing_parameter("InstanceId")
        rows = [
            i
            for i in session.scalars(
                select(Instance).where(Instance.account_id == account_id, Instance.id.in_(ids))
            )
            if states.visible(i)
        ]
        self._require(ids, rows)
        order = {instance_id: n for n, instance_id in enumerate(ids)}
        return sorted(rows, key=lambda i: order[i.id])

    def get(self, account_id: str, instance_id: str) -> Instance:
        with self.db.session() as session:
            return self._owned_instances(session, account_id, [instance_id])[0]

    def types_of(self, account_id: str, ids: Sequence[str]) -> dict[str, str]:
        """The instance type of each of the account's instances among ``ids`` (the
        ``ec2:InstanceType`` authorization reads); others are left out."""
        with self.db.session() as session:
            rows = session.execute(
                select(Instance.id, Instance.instance_type).where(
                    Instance.account_id == account_id, Instance.id.in_(list(ids))
                )
            )
            return {instance_id: instance_type for instance_id, instance_type in rows}

    # -- State changes ----------------------------------------------------------------

    def terminate(self, account_id: str, ids: Sequence[str]) -> list[tuple[str, str, str]]:
        """Returns (instance id, previous state, current state) for each; idempotent."""
        changes = []
        with self.db.write_session() as session:
            instances = self._owned_instances(session, account_id, ids)
            protected = [i.id for i in instances if i.disable_api_termination]
            if protected:
                raise CloudError(
                    "OperationNotPermitted",
                    f"The instance '{protected[0]}' may not be terminated. Modify its "
                    "'disableApiTermination' instance attribute and try again.",
                )
            for instance in instances:
                previous = instance.state
                if instance.state not in (states.TERMINATED, states.SHUTTING_DOWN):
                    instance.state = (
                        states.SHUTTING_DOWN if previous != states.STOPPED else states.TERMINATED
                    )
                    instance.desired = states.TERMINATED
                    instance.state_reason_code, instance.state_reason_message = (
                        states.USER_INITIATED
                    )
                    instance.transition_reason = _transition("User initiated")
                    if instance.state == states.TERMINATED:
                        instance.terminated_at = datetime.now(UTC)
                        self.release_terminated(session, [instance.id])
                changes.append((instance.id, previous, instance.state))
        self._wake()
        return changes

    def stop(
        self, account_id: str, ids: Sequence[str], force: bool = False, by_user: bool = True
    ) -> list[tuple[str, str, str]]:
        """StopInstances (``by_user``: stop protection applies), or CreateImage's own
        stop of the instance it copies (AWS reboots it, whatever its protection)."""
        changes = []
        with self.db.write_session() as session:
            instances = self._owned_instances(session, account_id, ids)
            for instance in instances:
                _require_ebs_root(instance, "stopped")
                if instance.state in (states.SHUTTING_DOWN, states.TERMINATED):
                    raise CloudError(
                        "IncorrectInstanceState",
                        f"This instance '{instance.id}' is not in a state from which it can be "
                        "stopped.",
                    )
            protected = [i.id for i in instances if i.disable_api_stop]
            if by_user and protected:
                raise CloudError(
                    "OperationNotPermitted",
                    f"The instance '{protected[0]}' may not be stopped. Modify its "
                    "'disableApiStop' instance attribute and try again.",
                )
            for instance in instances:
                previous = instance.state
                if force and self._on_broken_node(instance):
                    failover.force_stop(instance)  # it stops without its node
                elif instance.state in (states.RUNNING, states.PENDING):
                    instance.state, instance.desired = states.STOPPING, states.STOPPED
                    instance.state_reason_code, instance.state_reason_message = (
                        states.USER_INITIATED
                    )
                    instance.transition_reason = _transition("User initiated")
                changes.append((instance.id, previous, instance.state))
        self.user_stopped([instance_id for instance_id, _previous, _state in changes])
        self._wake()
        return changes

    def _on_broken_node(self, instance: Instance) -> bool:
        return (
            instance.state in (states.RUNNING, states.PENDING, states.STOPPING)
            and self.driver is not None
            and self.driver.node_broken(instance.node)
        )

    def start(self, account_id: str, ids: Sequence[str]) -> list[tuple[str, str, str]]:
        changes = []
        with self._allocation, self.db.write_session() as session:
            instances = self._owned_instances(session, account_id, ids)
            for instance in instances:
                _require_ebs_root(instance, "started")
                if instance.state not in (states.STOPPED, states.RUNNING, states.PENDING):
                    raise CloudError(
                        "IncorrectInstanceState",
                        f"The instance '{instance.id}' is not in a state from which it can be "
                        "started.",
                    )
            starting = [i for i in instances if i.state == states.STOPPED]
            self._place_starting(session, starting)
            for instance in instances:
                previous = instance.state
                if instance.state == states.STOPPED:
                    instance.state, instance.desired = states.PENDING, states.RUNNING
                    instance.state_reason_code = instance.state_reason_message = None
                    instance.transition_reason = ""
                changes.append((instance.id, previous, instance.state))
        self._wake()
        return changes

    def _place_starting(self, session: Session, starting: Sequence[Instance]) -> None:
        """Stopped instances go back on any node of their zone that has room."""
        for zone in sorted({i.zone for i in starting}):
            mine = [i for i in starting if i.zone == zone]
            demands = [Demand(i.vcpus, i.memory_mib) for i in mine]
            try:
                nodes = self._place(session, zone, demands, len(mine))
            except CloudError:
                raise _no_capacity("starting the instance(s)") from None
            for instance, node in zip(mine, nodes or [], strict=False):
                instance.node = node

    def reboot(self, account_id: str, ids: Sequence[str]) -> None:
        with self.db.session() as session:
            instances = self._owned_instances(session, account_id, ids)
            for instance in instances:
                if instance.state in (states.TERMINATED, states.SHUTTING_DOWN):
                    raise CloudError(
                        "IncorrectInstanceState", f"The instance '{instance.id}' is not running."
                    )
        for instance in instances:
            if instance.state == states.RUNNING and self.driver:
                self.driver.reboot(instance.id, instance.node)

    def console_output(self, account_id: str, instance_id: str) -> bytes:
        instance = self.get(account_id, instance_id)
        if self.driver is None:
            return b""
        return self.driver.console_output(instance.id, instance.node)

    # -- Attributes -------------------------------------------------------------------

    def attribute(self, account_id: str, instance_id: str, name: str) -> AttributeValue:
        """One attribute DescribeInstanceAttribute names, as a plain value: ``userData``
        the data (or None), ``groupSet`` the groups, ``blockDeviceMapping`` EBS's mappings;
        the attributes karri has nothing behind are False."""
        instance = self.get(account_id, instance_id)
        readers: dict[str, Callable[[], AttributeValue]] = {
            "instanceType": lambda: instance.instance_type,
            "userData": lambda: instance.user_data,
            "disableApiTermination": lambda: instance.disable_api_termination,
            "instanceInitiatedShutdownBehavior": lambda: instance.shutdown_behavior,
            "kernel": lambda: instance.kernel_id,
            "ramdisk": lambda: instance.ramdisk_id,
            "rootDeviceName": lambda: instance.root_device_name,
            "disableApiStop": lambda: instance.disable_api_stop,
            "sourceDestCheck": lambda: instance.source_dest_check,
            "productCodes": lambda: None,
            "groupSet": lambda: groups_of(instance),
            "blockDeviceMapping": lambda: self.block_devices.instance_mappings([instance.id])[
                instance.id
            ],
            **dict.fromkeys(
                ("ebsOptimized", "enaSupport", "enclaveOptions", "sriovNetSupport"), lambda: False
            ),
        }
        if name not in readers:
            raise invalid_value(
                f"Value ({name}) for parameter attribute is invalid. Unknown attribute."
            )
        return readers[name]()

    def modify_attribute(
        self, account_id: str, instance_id: str, request: AttributeRequest
    ) -> None:
        changes = {change.name: change.value for change in request.changes}
        if request.groups:
            self.set_groups(account_id, instance_id, request.groups)
            return
        if request.devices:
            self.get(account_id, instance_id)
            for device in request.devices:
                if device.device_name and device.delete_on_termination is not None:
                    self.block_devices.set_delete_on_termination(
                        account_id, instance_id, device.device_name, device.delete_on_termination
                    )
            if not changes:
                return
        if not changes:
            raise missing_parameter("Attribute")
        for kind in ("kernel", "ramdisk"):
            wanted = changes.get(kind)
            if wanted:
                self.images.check_launchable(account_id, str(wanted), kind)
        with self.db.write_session() as session:
            instance = self._owned_instances(session, account_id, [instance_id])[0]
            if instance.state == states.TERMINATED:
                raise CloudError(
                    "IncorrectInstanceState", f"The instance '{instance.id}' is terminated."
                )
            for name, value in changes.items():
                if (
                    name in ("instanceType", "userData", "kernel", "ramdisk")
                    and instance.state != states.STOPPED
                ):
                    raise CloudError(
                        "IncorrectInstanceState",
                        f"The instance '{instance.id}' is not in the 'stopped' state.",
                    )
                if name == "instanceType":
                    vm_type = self._vm_type(value)
                    instance.instance_type = vm_type.name
                    instance.vcpus, instance.memory_mib, instance.disk_gib = (
                        vm_type.cpu,
                        vm_type.memory_mib,
                        vm_type.disk_gib,
                    )
                elif name == "userData":
                    instance.user_data = decode_user_data(value, already_decoded=True)
                elif name == "disableApiTermination":
                    instance.disable_api_termination = _boolean(value)
                elif name == "disableApiStop":
                    instance.disable_api_stop = _boolean(value)
                elif name == "sourceDestCheck":
                    source_dest_check(session, instance.id, None, _boolean(value))
                elif name == "instanceInitiatedShutdownBehavior":
                    if value not in ("stop", "terminate"):
                        raise invalid_value(
                            f"Value ({value}) for InstanceInitiatedShutdownBehavior is invalid."
                        )
                    instance.shutdown_behavior = value
                elif name == "kernel":
                    instance.kernel_id = value
                elif name == "ramdisk":
                    instance.ramdisk_id = value
            vpc_id = instance.vpc_id
        if "sourceDestCheck" in changes and vpc_id:
            self.routes_changed(vpc_id)  # it may forward now, or no longer

    def set_groups(self, account_id: str, instance_id: str, group_ids: Sequence[str]) -> None:
        """ModifyInstanceAttribute's Groups: the instance's groups replaced by these, which
        must be its VPC's; a running instance's filtering changes with them."""
        instance = self.get(account_id, instance_id)
        if instance.state in (states.TERMINATED, states.SHUTTING_DOWN):
            raise CloudError(
                "IncorrectInstanceState", f"The instance '{instance.id}' is not in a valid state."
            )
        vpc_id = vpc_of(instance)
        groups = self.groups.resolve(account_id, vpc_id, (), group_ids)
        with self.db.write_session() as session:
            row = self._owned_instances(session, account_id, [instance_id])[0]
            row.security_groups = stored(groups)
        self.groups.members_changed(vpc_id)

    def reset_attribute(self, account_id: str, instance_id: str, name: str) -> None:
        """ResetInstanceAttribute: the kernel or ramdisk back to the image's (the instance
        stopped, as for a change), or sourceDestCheck back on."""
        if name not in RESETTABLE:
            raise invalid_value(f"Value ({name}) for parameter attribute is invalid.")
        instance = self.get(account_id, instance_id)
        value: str | bool | None = True
        if name != "sourceDestCheck":
            image = self.images.for_launch(account_id, instance.image_id, None, None)
            value = image.kernel_id if name == "kernel" else image.ramdisk_id
        change = AttributeChange(name, value)  # type: ignore[arg-type]
        self.modify_attribute(account_id, instance_id, AttributeRequest(changes=(change,)))

    # -- Housekeeping -----------------------------------------------------------------

    def forget_expired(self) -> int:
        """Terminated instances disappear an hour after they end."""
        cutoff = datetime.now(UTC) - timedelta(seconds=states.TERMINATED_VISIBLE_SECONDS)
        with self.db.write_session() as session:
            expired = list(
                session.scalars(
                    select(Instance.id).where(
                        Instance.state == states.TERMINATED, Instance.terminated_at < cutoff
                    )
                )
            )
            if expired:
                self.release_interfaces(session, expired)
                self.tags.forget(session, expired)
                session.execute(delete(Instance).where(Instance.id.in_(expired)))
            return len(expired)

    def release_terminated(self, session: Session, instance_ids: Sequence[str]) -> None:
        """In the transaction that records their termination (the node holds nothing of
        theirs any more): interfaces, addresses and volumes come free together."""
        self.release_interfaces(session, instance_ids)
        self.block_devices.release_terminated(session, instance_ids)

    def settle_stopped(self, session: Session, instance_id: str) -> None:
        """In the transaction that records the stop (the guest is gone)."""
        self.block_devices.settle_stopped(session, instance_id)

    def release_interfaces(self, session: Session, instance_ids: Sequence[str]) -> None:
        """Terminated instances give their interfaces (and addresses) back; a primary
        interface that outlives its instance keeps the instance's groups."""
        kept = session.scalars(
            select(NetworkInterface).where(
                NetworkInterface.instance_id.in_(list(instance_ids)),
                NetworkInterface.device_index == 0,
                NetworkInterface.delete_on_termination.is_(False),
            )
        )
        for interface in kept:
            instance = session.get(Instance, interface.instance_id)
            if instance is not None:
                interface.security_groups = stored(groups_of(instance))
        network_interfaces.release(session, self.tags, instance_ids)

    def join_default_vpcs(self) -> int:
        """Move instances from before VPCs into their account's default VPC, the default
        subnet of their zone, each with a primary interface that keeps its private address
        and MAC (run at start-up, after every account has its default VPC). How many moved."""
        with self._allocation, self.db.write_session() as session:
            rows = list(session.scalars(select(Instance).where(Instance.vpc_id.is_(None))))
            for instance in rows:
                subnet = self.subnets.launch_subnet(
                    session, instance.account_id, None, self._known_zone(instance.zone)
                )
                instance.vpc_id, instance.subnet_id = subnet.vpc_id, subnet.id
                if instance.private_ip and instance.state != states.TERMINATED:
                    network_interfaces.create_primary(
                        session, subnet, [(instance.id, instance.private_ip)], mac=instance.mac
                    )
            return len(rows)

    def _known_zone(self, zone: str) -> str | None:
        return zone if zone in {z.name for z in self.geography.zones} else None

    def _wake(self) -> None:
        if self.driver is not None:
            self.driver.wake()


def _require_ebs_root(instance: Instance, verb: str) -> None:
    """Only EBS-backed instances stop and start; AWS answers the others this way."""
    if instance.root_device_type != "ebs":
        raise unsupported(
            f"The instance '{instance.id}' does not have an 'ebs' root device type "
            f"and cannot be {verb}."
        )


def _transition(reason: str) -> str:
    return f"{reason} ({datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S GMT')})"


def how_many(room: tuple[int, int], cpu: int, memory: int, most: int) -> int:
    """How many guests of ``cpu`` vCPUs and ``memory`` MiB fit in ``room`` (vCPUs, MiB),
    at most ``most``."""
    free_cpu, free_memory = room
    return min(
        free_cpu // cpu if cpu else most,
        free_memory // memory if memory else most,
        most,
    )


def _no_capacity(what: str) -> CloudError:
    """AWS's answer when the node is full: a server-side condition, so a 500."""
    return CloudError(
        "InsufficientInstanceCapacity", f"There is not enough capacity to fulfill {what}.", 500
    )


def _request_hash(request: RunRequest) -> str:
    """What makes two RunInstances with one client token the same request: all but the
    token."""
    if request.fingerprint:
        return request.fingerprint
    relevant = dataclasses.asdict(dataclasses.replace(request, client_token=None))
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def decode_user_data(value: str | bytes | None, *, already_decoded: bool = False) -> bytes | None:
    """RunInstances carries user data base64-encoded; at most 16 KiB once decoded."""
    if value is None or value == "":
        return None
    if already_decoded:
        data = value if isinstance(value, bytes) else value.encode()
    else:
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_value("Invalid BASE64 encoding of user data.") from None
    if len(data) > MAX_USER_DATA:
        raise invalid_value(f"User data is limited to {MAX_USER_DATA} bytes")
    return data


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid_value(f"Value ({value}) is not a boolean.")


def attach_target(
    session: Session, account_id: str, instance_id: str
) -> interface_rules.AttachTarget:
    """An instance as AttachNetworkInterface sees it (another account's does not exist)."""
    ids = check_ids([instance_id], "i", "InvalidInstanceID.Malformed")
    row = session.get(Instance, ids[0])
    if row is None or row.account_id != account_id or not states.visible(row):
        raise CloudError(
            "InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist"
        )
    return interface_rules.AttachTarget(row.id, row.state, row.instance_type, row.zone, vpc_of(row))


def interface_facts(region: str) -> network_interfaces.InstanceFacts:
    """What DescribeNetworkInterfaces shows of the instances interfaces are attached to:
    their security groups and public address."""

    def facts(
        session: Session, instance_ids: Sequence[str]
    ) -> dict[str, network_interfaces.AttachedFacts]:
        rows = session.execute(
            select(
                Instance.id, Instance.security_groups, Instance.public_ip, Instance.vpc_id
            ).where(Instance.id.in_(list(instance_ids)))
        ).all()
        elastic = associated(session, instance_ids)
        named = public_name_vpcs(session, (row.vpc_id for row in rows))
        return {
            row.id: network_interfaces.AttachedFacts(
                tuple((g.group_id, g.name) for g in groups_of(row)),
                row.public_ip,
                public_dns_name(row.public_ip, region)
                if row.public_ip and row.vpc_id in named
                else "",
                elastic.get(row.id),
            )
            for row in rows
        }

    return facts
