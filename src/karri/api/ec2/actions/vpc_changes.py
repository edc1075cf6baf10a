"""CreateVpc, DeleteVpc, ModifyVpcAttribute, CreateDefaultVpc, Associate/
DisassociateVpcCidrBlock, CreateSubnet, DeleteSubnet, ModifySubnetAttribute,
CreateDefaultSubnet: the wire of the VPCs an account makes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from karri.api.ec2.actions.vpcs import cidr_association, subnet_info, vpc_info
from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.tagging import specified_tags


def _values(params: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Each ``AttributeBooleanValue`` member given, by name, to its ``Value`` (None when
    the member came without one)."""
    return {n: (params[n] or {}).get("Value") for n in names if n in params}


@action("CreateVpc")
def create_vpc(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.vpc_changes.create_vpc(
        ctx.account_id,
        params.get("CidrBlock"),
        tenancy=params.get("InstanceTenancy"),
        ipv6=bool(
            params.get("AmazonProvidedIpv6CidrBlock")
            or params.get("Ipv6CidrBlock")
            or params.get("Ipv6Pool")
        ),
        tags=specified_tags(params.get("TagSpecifications"), "vpc"),
    )
    return {"Vpc": vpc_info(view)}


@action("CreateDefaultVpc")
def create_default_vpc(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"Vpc": vpc_info(ctx.cloud.vpc_changes.create_default_vpc(ctx.account_id))}


@action("DeleteVpc")
def delete_vpc(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.vpc_changes.delete_vpc(ctx.account_id, params.get("VpcId"))
    return {}


@action("ModifyVpcAttribute")
def modify_vpc_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.vpc_changes.modify_vpc_attribute(
        ctx.account_id,
        params.get("VpcId"),
        _values(
            params, ("EnableDnsSupport", "EnableDnsHostnames", "EnableNetworkAddressUsageMetrics")
        ),
    )
    return {}


@action("CreateSubnet")
def create_subnet(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.subnet_changes.create_subnet(
        ctx.account_id,
        params.get("VpcId"),
        params.get("CidrBlock"),
        zone=params.get("AvailabilityZone"),
        zone_id=params.get("AvailabilityZoneId"),
        tags=specified_tags(params.get("TagSpecifications"), "subnet"),
    )
    return {"Subnet": subnet_info(view)}


@action("CreateDefaultSubnet")
def create_default_subnet(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.subnet_changes.create_default_subnet(
        ctx.account_id, params.get("AvailabilityZone"), params.get("AvailabilityZoneId")
    )
    return {"Subnet": subnet_info(view)}


@action("DeleteSubnet")
def delete_subnet(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.subnet_changes.delete_subnet(ctx.account_id, params.get("SubnetId"))
    return {}


@action("ModifySubnetAttribute")
def modify_subnet_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    names = (
        "MapPublicIpOnLaunch",
        "AssignIpv6AddressOnCreation",
        "MapCustomerOwnedIpOnLaunch",
        "EnableDns64",
        "EnableResourceNameDnsARecordOnLaunch",
        "EnableResourceNameDnsAAAARecordOnLaunch",
        "DisableLniAtDeviceIndex",
    )
    values = _values(params, names)
    for scalar in ("CustomerOwnedIpv4Pool", "PrivateDnsHostnameTypeOnLaunch"):
        if params.get(scalar) is not None:
            values[scalar] = params[scalar]
    ctx.cloud.subnet_changes.modify_subnet_attribute(ctx.account_id, params.get("SubnetId"), values)
    return {}


@action("AssociateVpcCidrBlock")
def associate_vpc_cidr_block(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    association_id, cidr, vpc_id = ctx.cloud.vpc_ranges.associate(
        ctx.account_id,
        params.get("VpcId"),
        params.get("CidrBlock"),
        ipv6=bool(params.get("AmazonProvidedIpv6CidrBlock") or params.get("Ipv6CidrBlock")),
    )
    return {
        "CidrBlockAssociation": cidr_association(association_id, cidr, "associated"),
        "VpcId": vpc_id,
    }


@action("DisassociateVpcCidrBlock")
def disassociate_vpc_cidr_block(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    association_id, cidr, vpc_id = ctx.cloud.vpc_ranges.disassociate(
        ctx.account_id, params.get("AssociationId")
    )
    return {
        "CidrBlockAssociation": cidr_association(association_id, cidr, "disassociated"),
        "VpcId": vpc_id,
    }
