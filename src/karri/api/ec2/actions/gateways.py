"""CreateInternetGateway, AttachInternetGateway, DetachInternetGateway,
DeleteInternetGateway."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.actions.vpcs import gateway_info
from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.tagging import specified_tags


@action("CreateInternetGateway")
def create_internet_gateway(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    tags = specified_tags(params.get("TagSpecifications"), "internet-gateway")
    return {"InternetGateway": gateway_info(ctx.cloud.gateways.create(ctx.account_id, tags))}


@action("AttachInternetGateway")
def attach_internet_gateway(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.gateways.attach(ctx.account_id, params.get("InternetGatewayId"), params.get("VpcId"))
    return {}


@action("DetachInternetGateway")
def detach_internet_gateway(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.gateways.detach(ctx.account_id, params.get("InternetGatewayId"), params.get("VpcId"))
    return {}


@action("DeleteInternetGateway")
def delete_internet_gateway(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.gateways.delete(ctx.account_id, params.get("InternetGatewayId"))
    return {}
