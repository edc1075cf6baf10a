"""CreateNetworkInterface, DeleteNetworkInterface, Attach/DetachNetworkInterface,
Modify/Describe/ResetNetworkInterfaceAttribute, Assign/UnassignPrivateIpAddresses."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.actions.vpcs import attachment_info, groups_info, interface_info
from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.tagging import specified_tags
from karri.cloud.network.interface_changes import AttributeChange, CreateRequest
from karri.errors import CloudError

UNSUPPORTED = (
    "Ipv6Addresses",
    "Ipv6AddressCount",
    "Ipv4Prefixes",
    "Ipv4PrefixCount",
    "Ipv6Prefixes",
    "Ipv6PrefixCount",
    "EnablePrimaryIpv6",
)


def _refuse(params: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if params.get(name):
            raise CloudError("UnsupportedOperation", f"The parameter {name} is not supported.")


@action("CreateNetworkInterface")
def create_network_interface(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    _refuse(params, UNSUPPORTED)
    request = CreateRequest(
        subnet_id=params.get("SubnetId"),
        description=params.get("Description"),
        private_ip=params.get("PrivateIpAddress"),
        private_ips=tuple(
            (a.get("PrivateIpAddress") or "", bool(a.get("Primary")))
            for a in params.get("PrivateIpAddresses") or ()
        ),
        secondary_count=params.get("SecondaryPrivateIpAddressCount"),
        group_ids=tuple(params.get("Groups") or ()),
        interface_type=params.get("InterfaceType"),
        client_token=params.get("ClientToken"),
        tags=specified_tags(params.get("TagSpecifications"), "network-interface"),
    )
    view = ctx.cloud.interface_changes.create(ctx.account_id, request)
    return {"NetworkInterface": interface_info(view), "ClientToken": params.get("ClientToken")}


@action("DeleteNetworkInterface")
def delete_network_interface(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.interface_changes.delete(ctx.account_id, params.get("NetworkInterfaceId"))
    return {}


@action("AttachNetworkInterface")
def attach_network_interface(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    _refuse(params, ("EnaSrdSpecification",))
    if params.get("NetworkCardIndex") not in (None, 0):
        raise CloudError(
            "InvalidParameterValue", "The network card index must be 0 for this instance type."
        )
    attachment_id = ctx.cloud.interface_changes.attach(
        ctx.account_id,
        params.get("NetworkInterfaceId"),
        params.get("InstanceId"),
        params.get("DeviceIndex"),
    )
    return {"AttachmentId": attachment_id, "NetworkCardIndex": 0}


@action("DetachNetworkInterface")
def detach_network_interface(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.interface_changes.detach(
        ctx.account_id, params.get("AttachmentId"), bool(params.get("Force"))
    )
    return {}


@action("ModifyNetworkInterfaceAttribute")
def modify_network_interface_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    _refuse(
        params,
        (
            "EnaSrdSpecification",
            "EnablePrimaryIpv6",
            "ConnectionTrackingSpecification",
            "AssociatePublicIpAddress",
            "AssociatedSubnetIds",
        ),
    )
    attachment = params.get("Attachment")
    change = AttributeChange(
        description=(params.get("Description") or {}).get("Value")
        if "Description" in params
        else None,
        source_dest_check=(params.get("SourceDestCheck") or {}).get("Value")
        if "SourceDestCheck" in params
        else None,
        group_ids=tuple(params["Groups"]) if "Groups" in params else None,
        attachment=(attachment.get("AttachmentId"), attachment.get("DeleteOnTermination"))
        if attachment is not None
        else None,
    )
    ctx.cloud.interface_changes.modify_attribute(
        ctx.account_id, params.get("NetworkInterfaceId"), change
    )
    return {}


@action("DescribeNetworkInterfaceAttribute", read_only=True)
def describe_network_interface_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    name, view = ctx.cloud.interface_changes.describe_attribute(
        ctx.account_id, params.get("NetworkInterfaceId"), params.get("Attribute")
    )
    answer: dict[str, Any] = {"NetworkInterfaceId": view.interface.id}
    if name == "description":
        answer["Description"] = {"Value": view.interface.description}
    elif name == "sourceDestCheck":
        answer["SourceDestCheck"] = {"Value": view.interface.source_dest_check}
    elif name == "groupSet":
        answer["Groups"] = groups_info(view)
    elif view.interface.instance_id:  # attachment
        answer["Attachment"] = attachment_info(view)
    return answer


@action("ResetNetworkInterfaceAttribute")
def reset_network_interface_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.interface_changes.reset_attribute(
        ctx.account_id, params.get("NetworkInterfaceId"), params.get("SourceDestCheck")
    )
    return {}


@action("AssignPrivateIpAddresses")
def assign_private_ip_addresses(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    _refuse(params, ("Ipv4Prefixes", "Ipv4PrefixCount"))
    interface_id = params.get("NetworkInterfaceId")
    assigned = ctx.cloud.interface_changes.assign(
        ctx.account_id,
        interface_id,
        list(params.get("PrivateIpAddresses") or ()),
        params.get("SecondaryPrivateIpAddressCount"),
        bool(params.get("AllowReassignment")),
    )
    return {
        "NetworkInterfaceId": interface_id,
        "AssignedPrivateIpAddresses": [{"PrivateIpAddress": ip} for ip in assigned],
    }


@action("UnassignPrivateIpAddresses")
def unassign_private_ip_addresses(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    _refuse(params, ("Ipv4Prefixes",))
    ctx.cloud.interface_changes.unassign(
        ctx.account_id,
        params.get("NetworkInterfaceId"),
        list(params.get("PrivateIpAddresses") or ()),
    )
    return {}
