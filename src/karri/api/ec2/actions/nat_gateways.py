"""CreateNatGateway, DeleteNatGateway, DescribeNatGateways."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.actions.keypairs import tag_list
from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.tagging import specified_tags
from karri.cloud.network.nat_gateways import AVAILABLE, DELETING, PENDING, NatGatewayView
from karri.errors import CloudError

UNSUPPORTED = (
    "AvailabilityMode",
    "VpcId",
    "AvailabilityZoneAddresses",
    "PrivateIpAddress",
    "SecondaryAllocationIds",
    "SecondaryPrivateIpAddresses",
    "SecondaryPrivateIpAddressCount",
)
ADDRESS_STATUS = {PENDING: "associating", AVAILABLE: "succeeded", DELETING: "disassociating"}


def nat_gateway_info(view: NatGatewayView) -> dict[str, Any]:
    g = view.gateway
    address: dict[str, Any] = {
        "NetworkInterfaceId": g.network_interface_id,
        "PrivateIp": g.private_ip,
        "IsPrimary": True,
        "Status": ADDRESS_STATUS.get(g.state, "succeeded" if g.private_ip else "failed"),
    }
    if g.allocation_id:
        address |= {"AllocationId": g.allocation_id, "PublicIp": g.public_ip}
        address["AssociationId"] = g.association_id
    return {
        "CreateTime": g.created_at,
        "DeleteTime": g.deleted_at,
        "FailureCode": g.failure_code,
        "FailureMessage": g.failure_message,
        "NatGatewayAddresses": [address],
        "NatGatewayId": g.id,
        "State": g.state,
        "SubnetId": g.subnet_id,
        "VpcId": g.vpc_id,
        "Tags": tag_list(view.tags),
        "ConnectivityType": g.connectivity_type,
        "AvailabilityMode": "zonal",
    }


@action("CreateNatGateway")
def create_nat_gateway(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    for name in UNSUPPORTED:
        if params.get(name):
            raise CloudError("UnsupportedOperation", f"The parameter {name} is not supported.")
    view = ctx.cloud.nat_gateways.create(
        ctx.account_id,
        params.get("SubnetId"),
        params.get("AllocationId"),
        params.get("ConnectivityType"),
        params.get("ClientToken"),
        specified_tags(params.get("TagSpecifications"), "natgateway"),
    )
    return {"NatGateway": nat_gateway_info(view), "ClientToken": params.get("ClientToken")}


@action("DeleteNatGateway")
def delete_nat_gateway(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    gateway_id = ctx.cloud.nat_gateways.delete(ctx.account_id, params.get("NatGatewayId"))
    return {"NatGatewayId": gateway_id}


@action("DescribeNatGateways", read_only=True)
def describe_nat_gateways(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    page = ctx.cloud.nat_gateways.describe(
        ctx.account_id,
        params.get("NatGatewayIds"),
        params.get("Filter"),
        params.get("MaxResults"),
        params.get("NextToken"),
    )
    return {"NatGateways": [nat_gateway_info(v) for v in page.items], "NextToken": page.next_token}
