"""Internet gateways: CreateInternetGateway, AttachInternetGateway, DetachInternetGateway,
DeleteInternetGateway. A gateway is attached to at most one VPC and a VPC has at most one
(``Resource.AlreadyAssociated``); it cannot be detached while the VPC has public
addresses mapped, nor deleted while attached (``DependencyViolation``), as on AWS. Routes
to a gateway are ``blackhole`` while it is not attached to their VPC, ``active`` again
once it is."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from karri.cloud.network.models import InternetGateway, Route, RouteTable
from karri.cloud.network.views import GatewayView
from karri.cloud.network.vpc_changes import dependency, owned, owned_vpc
from karri.cloud.network.vpcs import GATEWAY, Vpcs
from karri.cloud.tags import Tags
from karri.db.engine import Database
from karri.errors import CloudError
from karri.ids import new_id

ATTACHED = "available"  # AWS's attachment state of an attached internet gateway
ACTIVE, BLACKHOLE = "active", "blackhole"

MappedAddresses = Callable[[Session, str], bool]
"""Whether a VPC has public addresses mapped (``addresses.mapped_in``)."""


def attached_gateway(session: Session, vpc_id: str) -> str | None:
    """The id of the internet gateway attached to the VPC, if any."""
    return session.scalar(
        select(InternetGateway.id).where(
            InternetGateway.vpc_id == vpc_id, InternetGateway.attachment_state == ATTACHED
        )
    )


def _route_states(session: Session, gateway_id: str, vpc_id: str, state: str) -> None:
    tables = select(RouteTable.id).where(RouteTable.vpc_id == vpc_id)
    session.execute(
        update(Route)
        .where(Route.gateway_id == gateway_id, Route.route_table_id.in_(tables))
        .values(state=state)
    )


class InternetGateways:
    def __init__(
        self,
        db: Database,
        tags: Tags,
        vpcs: Vpcs,
        mapped: MappedAddresses,
        on_change: Callable[[str], None] = lambda _vpc_id: None,
    ) -> None:
        """``on_change``: the VPC whose gateway came or went (committed)."""
        self.db = db
        self.tags = tags
        self.vpcs = vpcs
        self.mapped = mapped
        self.on_change = on_change

    def create(self, account_id: str, tags: Mapping[str, str] | None = None) -> GatewayView:
        with self.db.write_session() as session:
            gateway_id = new_id("igw", lambda i: session.get(InternetGateway, i) is not None)
            session.add(InternetGateway(id=gateway_id, account_id=account_id))
            session.flush()
            if tags:
                self.tags.put(session, account_id, [gateway_id], dict(tags))
        return self.vpcs.describe_internet_gateways(account_id, [gateway_id]).items[0]

    def attach(self, account_id: str, gateway_id: str | None, vpc_id: str | None) -> None:
        with self.db.write_session() as session:
            gateway = owned(session, GATEWAY, account_id, gateway_id)
            vpc = owned_vpc(session, account_id, vpc_id)
            if gateway.vpc_id is not None:
                raise CloudError(
                    "Resource.AlreadyAssociated",
                    f"resource {gateway.id} is already attached to network {gateway.vpc_id}",
                )
            if attached_gateway(session, vpc.id) is not None:
                raise CloudError(
                    "Resource.AlreadyAssociated",
                    f"resource {vpc.id} already has an internet gateway attached",
                )
            gateway.vpc_id, gateway.attachment_state = vpc.id, ATTACHED
            _route_states(session, gateway.id, vpc.id, ACTIVE)
            changed = vpc.id
        self.on_change(changed)

    def detach(self, account_id: str, gateway_id: str | None, vpc_id: str | None) -> None:
        with self.db.write_session() as session:
            gateway = owned(session, GATEWAY, account_id, gateway_id)
            vpc = owned_vpc(session, account_id, vpc_id)
            if gateway.vpc_id != vpc.id:
                raise CloudError(
                    "Gateway.NotAttached",
                    f"resource {gateway.id} is not attached to network {vpc.id}",
                )
            if self.mapped(session, vpc.id):
                raise CloudError(
                    "DependencyViolation",
                    f"Network {vpc.id} has some mapped public address(es). Please unmap "
                    "those public address(es) before detaching the gateway.",
                )
            gateway.vpc_id, gateway.attachment_state = None, None
            _route_states(session, gateway.id, vpc.id, BLACKHOLE)
            changed = vpc.id
        self.on_change(changed)

    def delete(self, account_id: str, gateway_id: str | None) -> None:
        with self.db.write_session() as session:
            gateway = owned(session, GATEWAY, account_id, gateway_id)
            if gateway.vpc_id is not None:
                raise dependency("internetGateway", gateway.id)
            self.tags.forget(session, [gateway.id])
            session.delete(gateway)
