"""CreateNetworkAcl, DeleteNetworkAcl, CreateNetworkAclEntry, ReplaceNetworkAclEntry,
DeleteNetworkAclEntry, ReplaceNetworkAclAssociation."""

from __future__ import annotations

from typing import Any

from karri.api.ec2.actions.vpcs import network_acl_info
from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.tagging import specified_tags
from karri.cloud.network.network_acls import EntrySpec


def _entry(params: dict[str, Any]) -> EntrySpec:
    ports = params.get("PortRange") or {}
    icmp = params.get("IcmpTypeCode") or {}
    return EntrySpec(
        rule_number=params.get("RuleNumber"),
        egress=params.get("Egress"),
        protocol=params.get("Protocol"),
        rule_action=params.get("RuleAction"),
        cidr_block=params.get("CidrBlock"),
        ipv6_cidr_block=params.get("Ipv6CidrBlock"),
        port_from=ports.get("From"),
        port_to=ports.get("To"),
        icmp_type=icmp.get("Type"),
        icmp_code=icmp.get("Code"),
    )


@action("CreateNetworkAcl")
def create_network_acl(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.network_acls.create(
        ctx.account_id,
        params.get("VpcId"),
        specified_tags(params.get("TagSpecifications"), "network-acl"),
    )
    return {"NetworkAcl": network_acl_info(view), "ClientToken": params.get("ClientToken")}


@action("DeleteNetworkAcl")
def delete_network_acl(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.network_acls.delete(ctx.account_id, params.get("NetworkAclId"))
    return {}


@action("CreateNetworkAclEntry")
def create_network_acl_entry(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.network_acls.create_entry(ctx.account_id, params.get("NetworkAclId"), _entry(params))
    return {}


@action("ReplaceNetworkAclEntry")
def replace_network_acl_entry(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.network_acls.replace_entry(ctx.account_id, params.get("NetworkAclId"), _entry(params))
    return {}


@action("DeleteNetworkAclEntry")
def delete_network_acl_entry(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.cloud.network_acls.delete_entry(
        ctx.account_id, params.get("NetworkAclId"), params.get("RuleNumber"), params.get("Egress")
    )
    return {}


@action("ReplaceNetworkAclAssociation")
def replace_network_acl_association(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    association_id = ctx.cloud.network_acls.replace_association(
        ctx.account_id, params.get("AssociationId"), params.get("NetworkAclId")
    )
    return {"NewAssociationId": association_id}
