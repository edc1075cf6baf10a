"""From an instance row to what the node needs: its disks, its spec, its metadata."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from karri.cloud.instances import states
from karri.cloud.instances.addresses import private_dns_name, public_dns_name
from karri.cloud.instances.coalesce import Batched
from karri.cloud.instances.groups import groups_of
from karri.cloud.instances.models import Instance
from karri.cloud.instances.nic_settling import (
    card,
    extra_interfaces,
    interfaces_metadata,
    secondaries_of,
)
from karri.cloud.network.models import NetworkInterface, Subnet, Vpc
from karri.cloud.volumes.launch import BlockDevices, BootVolume
from karri.cloud.volumes.nodehost import NodeTargets
from karri.node import (
    ImageRef,
    ImageRoot,
    InstanceMetadata,
    InstanceSpec,
    InterfaceMetadata,
    KernelBoot,
    NetworkCard,
)

# The default image's init and most kernels want these; EMIs that boot through their own
# boot loader ignore them.
KERNEL_CMDLINE = "console=ttyS0 root=/dev/vda rw quiet"
BOOT_POLL = 0.5  # seconds between two looks at boot volumes not ready yet
READ_BATCH = 500  # launches whose reads are made together, at most

T = TypeVar("T")


class ImageDisks:
    """An instance's disks as the node gets them: references to its image (and EKI/ERI),
    which the node's image cache fetches; its EBS volumes. The launches of a wave read
    them together (``Batched``): each image's reference made once for the launches that
    asked for it at the same time, the boot volumes of all of them in one read."""

    def __init__(
        self,
        refs: Callable[[str], ImageRef],
        volumes: BlockDevices | None = None,
        targets: NodeTargets | None = None,
    ) -> None:
        self.refs = refs  # an image's reference (blocking: made off the loop)
        self.volumes = volumes  # EBS: the root volume and the volumes attached at start
        self.targets = targets  # where a node on another host opens them (NBD)
        self._refs: Batched[str, ImageRef] = Batched(
            partial(_off_loop, self._refs_of), self._ref_of, READ_BATCH
        )
        self._boot: Batched[str, list[BootVolume] | None] = Batched(
            partial(_off_loop, self._boot_volumes), self._boot_volumes_of, READ_BATCH
        )

    def _refs_of(self, image_ids: list[str]) -> list[ImageRef]:
        made = {image_id: self.refs(image_id) for image_id in dict.fromkeys(image_ids)}
        return [made[image_id] for image_id in image_ids]

    async def _ref_of(self, image_id: str) -> ImageRef:
        return await asyncio.to_thread(self.refs, image_id)

    def _boot_volumes(self, instance_ids: list[str]) -> list[list[BootVolume] | None]:
        if self.volumes is None:
            return [[] for _ in instance_ids]
        found = self.volumes.boot_volumes(sorted(set(instance_ids)))
        return [found[instance_id] for instance_id in instance_ids]

    async def _boot_volumes_of(self, instance_id: str) -> list[BootVolume] | None:
        return (await _off_loop(self._boot_volumes, [instance_id]))[0]

    async def _wait_boot_volumes(self, instance_id: str) -> list[BootVolume]:
        """The instance's boot volumes once they are all ready (a root volume may still
        be restored from its snapshot)."""
        while (volumes := await self._boot(instance_id)) is None:
            await asyncio.sleep(BOOT_POLL)
        return volumes

    async def release(self, instance_id: str) -> None:
        """The instance stopped, ended or left a failed node: the exports of its volumes
        to it end (were a failed node to come back, it could not write them any more)."""
        if self.volumes is None or self.targets is None:
            return
        for volume_id in await asyncio.to_thread(self.volumes.volume_ids, instance_id):
            await asyncio.to_thread(self.targets.release, volume_id)

    async def spec(self, instance: Instance, placement: Placement) -> InstanceSpec:
        attached = await self._wait_boot_volumes(instance.id) if self.volumes else []
        disks = {v.volume_id: v.disk for v in attached}
        if instance.node is not None and disks:  # on another host: NBD exports for it
            if self.targets is None:
                raise RuntimeError(f"no NBD exports for node {instance.node}")
            targets = self.targets
            for volume_id, disk in list(disks.items()):
                where = await asyncio.to_thread(targets.target, volume_id, instance.node)
                disks[volume_id] = dataclasses.replace(disk, target=where)
        ebs_root = next((disks.pop(v.volume_id) for v in attached if v.root), None)
        images = [None if ebs_root else instance.image_id, instance.kernel_id, instance.ramdisk_id]
        root, kernel, ramdisk = await asyncio.gather(
            *(self._refs(i) if i else _none() for i in images)
        )
        boot = KernelBoot(kernel, ramdisk, KERNEL_CMDLINE) if kernel else None
        return InstanceSpec(
            instance_id=instance.id,
            vcpus=instance.vcpus,
            memory_mib=instance.memory_mib,
            root=ebs_root or ImageRoot(root, "raw", instance.disk_gib * 1024**3),
            volumes=tuple(disks.values()),
            mac=instance.mac or "",
            private_ip=instance.private_ip or "",
            kernel=boot,
            public_ip=instance.public_ip or False,  # the cloud chooses every address
            vpc_id=placement.vpc_id,
            subnet=placement.subnet_cidr_block,
            security_groups=tuple(g.group_id for g in groups_of(instance)),
            cards=placement.cards,
            secondary_ips=placement.secondary_ipv4s,
        )


async def _none() -> None:
    return None


async def _off_loop(read: Callable[[list[str]], list[T]], keys: list[str]) -> list[T]:
    return await asyncio.to_thread(read, keys)


@dataclass(frozen=True)
class Placement:
    """Where an instance's primary interface is: what its metadata says of its VPC."""

    interface_id: str
    vpc_id: str
    vpc_cidr_blocks: tuple[str, ...]
    subnet_id: str
    subnet_cidr_block: str
    cards: tuple[NetworkCard, ...] = ()
    """Its other interfaces (``nic_settling.card``)."""
    secondary_ipv4s: tuple[str, ...] = ()
    other_interfaces: tuple[InterfaceMetadata, ...] = ()
    """What the metadata says of its interfaces (``nic_settling.interfaces_metadata``)."""
    public_names: bool = True
    """Its VPC gives public DNS names (``enableDnsHostnames``)."""


def placement_of(session: Session, instance_id: str) -> Placement | None:
    return placements_of(session, [instance_id]).get(instance_id)


def placements_of(session: Session, instance_ids: Sequence[str]) -> dict[str, Placement]:
    """The placement of each of these instances that has a primary interface: three
    queries for a wave of launches."""
    rows = session.execute(
        select(
            NetworkInterface.instance_id,
            NetworkInterface.id,
            NetworkInterface.vpc_id,
            Vpc.cidr_block,
            Subnet.id,
            Subnet.cidr_block,
            Vpc.enable_dns_hostnames,
        )
        .join(Vpc, Vpc.id == NetworkInterface.vpc_id)
        .join(Subnet, Subnet.id == NetworkInterface.subnet_id)
        .where(
            NetworkInterface.instance_id.in_(list(instance_ids)),
            NetworkInterface.device_index == 0,
        )
    ).all()
    extra = extra_interfaces(session, [row[0] for row in rows])
    interface_ids = [row[1] for row in rows] + [i.id for e in extra.values() for i, _c in e]
    secondaries = secondaries_of(session, interface_ids) if interface_ids else {}
    placements: dict[str, Placement] = {}
    for instance_id, interface_id, vpc_id, vpc_cidr, subnet_id, subnet_cidr, names in rows:
        others = extra.get(instance_id, [])
        placements[instance_id] = Placement(
            interface_id,
            vpc_id,
            (vpc_cidr,),
            subnet_id,
            subnet_cidr,
            tuple(card(i, cidr, secondaries.get(i.id, ())) for i, cidr in others),
            tuple(secondaries.get(interface_id, ())),
            interfaces_metadata(others, secondaries),
            names,
        )
    return placements


def read_metadata(
    session: Session, instance_id: str, region: str
) -> tuple[InstanceMetadata | None, bool]:
    """The live instance's metadata (None: not live), and whether it runs (then it does
    not change until its interfaces do: it may be kept)."""
    instance = session.get(Instance, instance_id)
    if instance is None or instance.state not in states.ACTIVE:
        return None, False
    metadata = metadata_for(instance, region, placement_of(session, instance.id))
    return metadata, instance.state == states.RUNNING


def metadata_for(
    instance: Instance, region: str, placement: Placement | None = None
) -> InstanceMetadata:
    where = placement or Placement("", "", (), "", "")
    local_name = private_dns_name(instance.private_ip or "", region)
    return InstanceMetadata(
        instance_id=instance.id,
        account_id=instance.account_id,
        region=region,
        availability_zone=instance.zone,
        reservation_id=instance.reservation_id,
        ami_id=instance.image_id,
        instance_type=instance.instance_type,
        local_ipv4=instance.private_ip or "",
        mac=instance.mac or "",
        launch_time=instance.launch_time,
        hostname=local_name,
        local_hostname=local_name,
        ami_launch_index=instance.launch_index,
        block_device_mapping={"ami": "/dev/sda1", "root": instance.root_device_name},
        kernel_id=instance.kernel_id,
        ramdisk_id=instance.ramdisk_id,
        public_ipv4=instance.public_ip,
        public_hostname=public_dns_name(instance.public_ip, region)
        if instance.public_ip and where.public_names
        else None,
        public_keys=((instance.key_name, instance.public_key),) if instance.key_name else (),
        security_groups=tuple(g.name for g in groups_of(instance)),
        security_group_ids=tuple(g.group_id for g in groups_of(instance)),
        interface_id=where.interface_id,
        vpc_id=where.vpc_id,
        vpc_cidr_blocks=where.vpc_cidr_blocks,
        subnet_id=where.subnet_id,
        subnet_cidr_block=where.subnet_cidr_block,
        secondary_ipv4s=where.secondary_ipv4s,
        other_interfaces=where.other_interfaces,
        user_data=instance.user_data,
        architecture=instance.architecture,
    )
