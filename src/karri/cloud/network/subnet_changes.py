"""The subnets an account makes and deletes: CreateSubnet, DeleteSubnet,
ModifySubnetAttribute, CreateDefaultSubnet. A new subnet is associated with its VPC's
default network ACL and (implicitly, with no row) its main route table; DeleteSubnet
refuses (``DependencyViolation``) while a network interface is in it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from karri.cloud.network.cidrs import subnet_cidr
from karri.cloud.network.defaults import default_part_id, default_subnet_cidr, default_vpc_id
from karri.cloud.network.layout import default_subnet_id
from karri.cloud.network.models import (
    DefaultPartDeletion,
    NetworkAcl,
    NetworkAclAssociation,
    NetworkInterface,
    RouteTableAssociation,
    Subnet,
    Vpc,
)
from karri.cloud.network.views import SubnetView
from karri.cloud.network.vpc_changes import dependency, owned, owned_vpc
from karri.cloud.network.vpc_ranges import vpc_blocks
from karri.cloud.network.vpcs import SUBNET, Vpcs
from karri.cloud.regions import Geography
from karri.cloud.tags import Tags
from karri.db.engine import Database
from karri.errors import (
    CloudError,
    invalid_combination,
    invalid_value,
    missing_parameter,
    unsupported,
)
from karri.ids import new_id
from karri.node.overlay import vni_of

MAX_SUBNETS_PER_VPC = 200


class SubnetChanges:
    def __init__(self, db: Database, tags: Tags, geography: Geography, vpcs: Vpcs) -> None:
        self.db = db
        self.tags = tags
        self.geography = geography
        self.vpcs = vpcs

    def zone(self, name: str | None, zone_id: str | None, *, required: bool = False) -> str:
        """The zone named by ``AvailabilityZone`` or ``AvailabilityZoneId`` (not both);
        neither: the region's first (or MissingParameter when ``required``)."""
        zones = self.geography.zones
        if name and zone_id:
            raise invalid_combination(
                "Only one of availabilityZone or availabilityZoneId may be specified"
            )
        if name:
            match = [z for z in zones if z.name == name]
            parameter, value = "availabilityZone", name
        elif zone_id:
            match = [z for z in zones if z.zone_id == zone_id]
            parameter, value = "availabilityZoneId", zone_id
        elif required:
            raise missing_parameter("AvailabilityZone")
        else:
            return zones[0].name
        if not match:
            raise invalid_value(
                f"Value ({value}) for parameter {parameter} is invalid. Subnets can currently "
                "only be created in the following availability zones: "
                + ", ".join(z.name for z in zones)
                + "."
            )
        return match[0].name

    def create_subnet(
        self,
        account_id: str,
        vpc_id: str | None,
        cidr_block: str | None,
        *,
        zone: str | None = None,
        zone_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> SubnetView:
        if not cidr_block:
            raise missing_parameter("CidrBlock")
        zone_name = self.zone(zone, zone_id)
        with self.db.write_session() as session:
            vpc = owned_vpc(session, account_id, vpc_id)
            siblings = list(
                session.scalars(select(Subnet.cidr_block).where(Subnet.vpc_id == vpc.id))
            )
            network = subnet_cidr(cidr_block, vpc_blocks(session, vpc), siblings)
            if len(siblings) >= MAX_SUBNETS_PER_VPC:
                raise CloudError(
                    "SubnetLimitExceeded", "The maximum number of subnets has been reached."
                )
            vnis = {vni_of(i) for i in session.scalars(select(Subnet.id))}
            # its VNI (node/overlay.py) is free too: unique in the cloud
            subnet_id = new_id(
                "subnet", lambda i: vni_of(i) in vnis or bool(session.get(Subnet, i))
            )
            self._add(session, vpc, subnet_id, str(network), zone_name, default=False)
            if tags:
                self.tags.put(session, account_id, [subnet_id], dict(tags))
        return self.vpcs.describe_subnets(account_id, [subnet_id]).items[0]

    def create_default_subnet(
        self, account_id: str, zone: str | None, zone_id: str | None
    ) -> SubnetView:
        """A zone's default subnet again (its /20 of 172.31.0.0/16, as the zone's index
        gives it), after the account deleted it."""
        zone_name = self.zone(zone, zone_id, required=True)
        index = [z.name for z in self.geography.zones].index(zone_name)
        with self.db.write_session() as session:
            vpc = session.get(Vpc, default_vpc_id(account_id))
            if vpc is None:
                raise CloudError(
                    "DefaultVpcDoesNotExist", "No default VPC exists for this account."
                )
            if session.scalar(
                select(Subnet.id).where(
                    Subnet.vpc_id == vpc.id, Subnet.zone == zone_name, Subnet.default_for_az
                )
            ):
                raise CloudError(
                    "DefaultSubnetAlreadyExistsInAvailabilityZone",
                    f"Default subnet already exists in availability zone {zone_name}.",
                )
            siblings = list(
                session.scalars(select(Subnet.cidr_block).where(Subnet.vpc_id == vpc.id))
            )
            cidr = default_subnet_cidr(index)
            subnet_cidr(cidr, [vpc.cidr_block], siblings)  # a subnet of the account's own took it
            subnet_id = default_subnet_id(account_id, index)
            session.execute(
                delete(DefaultPartDeletion).where(DefaultPartDeletion.resource_id == subnet_id)
            )
            association = default_part_id("aclassoc", account_id, f"subnet-{index}")
            self._add(
                session, vpc, subnet_id, cidr, zone_name, default=True, association=association
            )
        return self.vpcs.describe_subnets(account_id, [subnet_id]).items[0]

    def delete_subnet(self, account_id: str, subnet_id: str | None) -> None:
        with self.db.write_session() as session:
            subnet = owned(session, SUBNET, account_id, subnet_id)
            if session.scalar(
                select(NetworkInterface.id).where(NetworkInterface.subnet_id == subnet.id)
            ):
                raise dependency("subnet", subnet.id)
            session.execute(
                delete(NetworkAclAssociation).where(NetworkAclAssociation.subnet_id == subnet.id)
            )
            session.execute(
                delete(RouteTableAssociation).where(RouteTableAssociation.subnet_id == subnet.id)
            )
            self.tags.forget(session, [subnet.id])
            if subnet.default_for_az:  # not made again at the next start
                session.add(DefaultPartDeletion(resource_id=subnet.id, account_id=account_id))
            session.delete(subnet)

    def modify_subnet_attribute(
        self, account_id: str, subnet_id: str | None, values: Mapping[str, Any]
    ) -> None:
        """``MapPublicIpOnLaunch`` (one attribute per call); the IPv6 and customer-owned
        ones karri does not have."""
        given = {k: v for k, v in values.items() if v is not None}
        if len(given) > 1:
            raise invalid_combination("Only one attribute may be modified at a time.")
        if not given:
            raise missing_parameter("MapPublicIpOnLaunch")
        ((name, value),) = given.items()
        if name != "MapPublicIpOnLaunch":
            raise unsupported(f"The attribute {name} is not supported in this region.")
        if not isinstance(value, bool):
            raise invalid_value(f"Value ({value}) for parameter {name} is invalid.")
        with self.db.write_session() as session:
            owned(session, SUBNET, account_id, subnet_id).map_public_ip_on_launch = value

    @staticmethod
    def _add(
        session: Session,
        vpc: Vpc,
        subnet_id: str,
        cidr: str,
        zone: str,
        *,
        default: bool,
        association: str | None = None,
    ) -> None:
        """The subnet, associated with its VPC's default network ACL (``association``: the
        derived id a default subnet's association has, see ``layout``)."""
        session.add(
            Subnet(
                id=subnet_id,
                account_id=vpc.account_id,
                vpc_id=vpc.id,
                cidr_block=cidr,
                zone=zone,
                default_for_az=default,
                map_public_ip_on_launch=default,
            )
        )
        session.flush()
        acl = session.scalar(
            select(NetworkAcl.id).where(NetworkAcl.vpc_id == vpc.id, NetworkAcl.is_default)
        )
        if acl is not None:
            session.add(
                NetworkAclAssociation(
                    id=association or new_id("aclassoc"), network_acl_id=acl, subnet_id=subnet_id
                )
            )
