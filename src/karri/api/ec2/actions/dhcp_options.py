"""CreateDhcpOptions, DeleteDhcpOptions, AssociateDhcpOptions."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.actions.vpcs import dhcp_options_info
from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.tagging import specified_tags


@action("CreateDhcpOptions")
def create_dhcp_options(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.dhcp_options.create(
        ctx.account_id,
        params.get("DhcpConfigurations"),
        specified_tags(params.get("TagSpecifications"), "dhcp-options"),
    )
    return {"DhcpOptions": dhcp_options_info(view)}


@action("DeleteDhcpOptions")
def delete_dhcp_options(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.dhcp_options.delete(ctx.account_id, params.get("DhcpOptionsId"))
    return {}


@action("AssociateDhcpOptions")
def associate_dhcp_options(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.dhcp_options.associate(
        ctx.account_id, params.get("DhcpOptionsId"), params.get("VpcId")
    )
    return {}
