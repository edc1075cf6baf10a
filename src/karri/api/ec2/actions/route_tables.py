"""CreateRouteTable, DeleteRouteTable, AssociateRouteTable, DisassociateRouteTable,
ReplaceRouteTableAssociation, CreateRoute, ReplaceRoute, DeleteRoute."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.actions.vpcs import route_table_info
from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.tagging import specified_tags
from karri.cloud.network.route_tables import UNSUPPORTED_TARGETS

TARGETS = ("GatewayId", "InstanceId", "NetworkInterfaceId", "NatGatewayId", *UNSUPPORTED_TARGETS)
ASSOCIATED = {"State": "associated"}


def _targets(params: dict[str, Any]) -> dict[str, Any]:
    return {name: params.get(name) for name in TARGETS}


@action("CreateRouteTable")
def create_route_table(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.route_tables.create(
        ctx.account_id,
        params.get("VpcId"),
        specified_tags(params.get("TagSpecifications"), "route-table"),
    )
    return {"RouteTable": route_table_info(view), "ClientToken": params.get("ClientToken")}


@action("DeleteRouteTable")
def delete_route_table(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.route_tables.delete(ctx.account_id, params.get("RouteTableId"))
    return {}


@action("AssociateRouteTable")
def associate_route_table(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    association_id = ctx.cloud.route_tables.associate(
        ctx.account_id, params.get("RouteTableId"), params.get("SubnetId")
    )
    return {"AssociationId": association_id, "AssociationState": ASSOCIATED}


@action("DisassociateRouteTable")
def disassociate_route_table(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.route_tables.disassociate(ctx.account_id, params.get("AssociationId"))
    return {}


@action("ReplaceRouteTableAssociation")
def replace_route_table_association(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    association_id = ctx.cloud.route_tables.replace_association(
        ctx.account_id, params.get("AssociationId"), params.get("RouteTableId")
    )
    return {"NewAssociationId": association_id, "AssociationState": ASSOCIATED}


@action("CreateRoute")
def create_route(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.route_tables.create_route(
        ctx.account_id,
        params.get("RouteTableId"),
        params.get("DestinationCidrBlock"),
        _targets(params),
    )
    return {"Return": True}


@action("ReplaceRoute")
def replace_route(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.route_tables.replace_route(
        ctx.account_id,
        params.get("RouteTableId"),
        params.get("DestinationCidrBlock"),
        _targets(params),
    )
    return {}


@action("DeleteRoute")
def delete_route(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.route_tables.delete_route(
        ctx.account_id, params.get("RouteTableId"), params.get("DestinationCidrBlock")
    )
    return {}
