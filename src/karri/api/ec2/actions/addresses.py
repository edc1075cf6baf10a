"""Elastic IPs: AllocateAddress, AssociateAddress, DisassociateAddress, ReleaseAddress,
DescribeAddresses, DescribeAddressesAttribute."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.actions.keypairs import tag_list
from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.tagging import specified_tags
from karri.cloud.network.addresses import AddressView

POOL = "amazon"


def address_info(view: AddressView) -> dict[str, Any]:
    a = view.address
    info: dict[str, Any] = {
        "AllocationId": a.id,
        "PublicIp": a.public_ip,
        "Domain": a.domain,
        "PublicIpv4Pool": POOL,
        "NetworkBorderGroup": a.network_border_group,
        "Tags": tag_list(view.tags),
    }
    if a.association_id:
        info |= {
            "AssociationId": a.association_id,
            "InstanceId": a.instance_id,
            "NetworkInterfaceId": a.network_interface_id,
            "NetworkInterfaceOwnerId": a.account_id,
            "PrivateIpAddress": a.private_ip,
        }
    return info


@action("AllocateAddress")
def allocate_address(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.addresses.allocate(
        ctx.account_id,
        params.get("Domain"),
        specified_tags(params.get("TagSpecifications"), "elastic-ip"),
    )
    info = address_info(view)
    return {k: info[k] for k in ("AllocationId", "PublicIp", "Domain", "PublicIpv4Pool",
                                 "NetworkBorderGroup")}  # fmt: skip


@action("AssociateAddress")
def associate_address(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    association_id = ctx.cloud.addresses.associate(
        ctx.account_id,
        params.get("AllocationId"),
        params.get("PublicIp"),
        params.get("InstanceId"),
        params.get("NetworkInterfaceId"),
        params.get("PrivateIpAddress"),
        bool(params.get("AllowReassociation")),
    )
    return {"AssociationId": association_id}


@action("DisassociateAddress")
def disassociate_address(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.addresses.disassociate(
        ctx.account_id, params.get("AssociationId"), params.get("PublicIp")
    )
    return {}


@action("ReleaseAddress")
def release_address(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.addresses.release(ctx.account_id, params.get("AllocationId"), params.get("PublicIp"))
    return {}


@action("DescribeAddresses", read_only=True)
def describe_addresses(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    views = ctx.cloud.addresses.describe(
        ctx.account_id, params.get("AllocationIds"), params.get("PublicIps"), params.get("Filters")
    )
    return {"Addresses": [address_info(v) for v in views]}


@action("DescribeAddressesAttribute", read_only=True)
def describe_addresses_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    views = ctx.cloud.addresses.attributes(
        ctx.account_id, params.get("AllocationIds"), params.get("Attribute")
    )
    return {
        "Addresses": [
            {"AllocationId": v.address.id, "PublicIp": v.address.public_ip} for v in views
        ]
    }
