"""A VPC's secondary IPv4 ranges: AssociateVpcCidrBlock, DisassociateVpcCidrBlock. Every
route table of the VPC has a local route for each range; a range with subnets in it
cannot go (``InvalidCidrBlock.InUse``), nor can the primary one."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Network

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from karri.cloud.network.cidrs import secondary_cidr
from karri.cloud.network.models import Route, RouteTable, Subnet, Vpc, VpcCidrBlock
from karri.cloud.network.vpc_changes import owned_vpc
from karri.db.engine import Database
from karri.errors import CloudError, invalid_value, missing_parameter
from karri.ids import new_id

LOCAL = "local"


def vpc_blocks(session: Session, vpc: Vpc) -> list[str]:
    """The VPC's IPv4 ranges, the primary first."""
    secondary = session.scalars(
        select(VpcCidrBlock.cidr_block)
        .where(VpcCidrBlock.vpc_id == vpc.id)
        .order_by(VpcCidrBlock.association_id)
    )
    return [vpc.cidr_block, *secondary]


def add_local_routes(session: Session, table_id: str, blocks: list[str]) -> None:
    for block in blocks:
        session.add(
            Route(
                route_table_id=table_id,
                destination_cidr=block,
                gateway_id=LOCAL,
                origin="CreateRouteTable",
            )
        )


def _association_not_found(association_id: str) -> CloudError:
    return CloudError(
        "InvalidVpcCidrBlockAssociationID.NotFound",
        f"The vpc CIDR block association ID '{association_id}' does not exist",
    )


class VpcRanges:
    def __init__(self, db: Database, on_change: Callable[[str], None] = lambda _v: None) -> None:
        """``on_change`` is told the VPC id once its ranges changed (its resolver's names)."""
        self.db = db
        self.on_change = on_change

    def associate(
        self, account_id: str, vpc_id: str | None, cidr_block: str | None, *, ipv6: bool = False
    ) -> tuple[str, str, str]:
        """The new range's association id, the range and the VPC id."""
        if ipv6:
            raise invalid_value(
                "Amazon-provided IPv6 CIDR blocks are not available in this region."
            )
        if not cidr_block:
            raise missing_parameter("CidrBlock")
        with self.db.write_session() as session:
            vpc = owned_vpc(session, account_id, vpc_id)
            network = secondary_cidr(cidr_block, vpc.id, vpc_blocks(session, vpc))
            association_id = new_id(
                "vpc-cidr-assoc", lambda i: session.get(VpcCidrBlock, i) is not None
            )
            session.add(
                VpcCidrBlock(association_id=association_id, vpc_id=vpc.id, cidr_block=str(network))
            )
            tables = session.scalars(select(RouteTable.id).where(RouteTable.vpc_id == vpc.id))
            for table_id in list(tables):
                add_local_routes(session, table_id, [str(network)])
            vpc_id = vpc.id
        self.on_change(vpc_id)
        return association_id, str(network), vpc_id

    def disassociate(self, account_id: str, association_id: str | None) -> tuple[str, str, str]:
        if not association_id:
            raise missing_parameter("AssociationId")
        with self.db.write_session() as session:
            block = session.get(VpcCidrBlock, association_id)
            vpc = session.get(Vpc, block.vpc_id) if block is not None else None
            if block is None or vpc is None or vpc.account_id != account_id:
                primary = session.scalar(
                    select(Vpc).where(
                        Vpc.cidr_association_id == association_id, Vpc.account_id == account_id
                    )
                )
                if primary is not None:
                    raise invalid_value(
                        f"The vpc CIDR block with association ID {association_id} may not be "
                        "disassociated. It is the primary IPv4 CIDR block of the VPC"
                    )
                raise _association_not_found(association_id)
            network = IPv4Network(block.cidr_block)
            subnets = session.scalars(select(Subnet.cidr_block).where(Subnet.vpc_id == vpc.id))
            if any(IPv4Network(s).subnet_of(network) for s in subnets):
                raise CloudError(
                    "InvalidCidrBlock.InUse",
                    f"The vpc CIDR block {block.cidr_block} has subnets in it and cannot be "
                    "disassociated.",
                )
            tables = select(RouteTable.id).where(RouteTable.vpc_id == vpc.id)
            session.execute(
                delete(Route).where(
                    Route.route_table_id.in_(tables),
                    Route.destination_cidr == block.cidr_block,
                    Route.gateway_id == LOCAL,
                )
            )
            session.delete(block)
            cidr_block, vpc_id = block.cidr_block, vpc.id
        self.on_change(vpc_id)
        return association_id, cidr_block, vpc_id
