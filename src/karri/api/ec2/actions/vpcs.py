"""DescribeVpcs, DescribeSubnets, DescribeInternetGateways, DescribeRouteTables,
DescribeNetworkAcls, DescribeDhcpOptions, DescribeVpcAttribute, DescribeNetworkInterfaces:
the network's values in EC2's shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from karri.api.ec2.actions.keypairs import tag_list
from karri.api.ec2.dispatch import Ec2Context, action
from karri.cloud.filters import Page
from karri.cloud.network.interfaces import InterfaceView, ip_owner
from karri.cloud.network.views import (
    CIDR_ASSOCIATED,
    DhcpOptionsView,
    GatewayView,
    NetworkAclView,
    RouteTableView,
    SubnetView,
    VpcView,
)


def _page(
    ctx: Ec2Context,
    params: dict[str, Any],
    describe: Callable[..., Page[Any]],
    ids_member: str,
    items_member: str,
    shape: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    page = describe(
        ctx.account_id,
        params.get(ids_member),
        params.get("Filters"),
        params.get("MaxResults"),
        params.get("NextToken"),
    )
    return {items_member: [shape(v) for v in page.items], "NextToken": page.next_token}


def vpc_info(view: VpcView) -> dict[str, Any]:
    v = view.vpc
    return {
        "OwnerId": v.account_id,
        "InstanceTenancy": v.instance_tenancy,
        "CidrBlockAssociationSet": [
            {
                "AssociationId": v.cidr_association_id,
                "CidrBlock": v.cidr_block,
                "CidrBlockState": {"State": CIDR_ASSOCIATED},
            }
        ],
        "IsDefault": v.is_default,
        "Tags": tag_list(view.tags),
        "VpcId": v.id,
        "State": v.state,
        "CidrBlock": v.cidr_block,
        "DhcpOptionsId": v.dhcp_options_id,
    }


def subnet_info(view: SubnetView) -> dict[str, Any]:
    s = view.subnet
    return {
        "AvailabilityZoneId": view.zone_id,
        "MapCustomerOwnedIpOnLaunch": False,
        "OwnerId": s.account_id,
        "AssignIpv6AddressOnCreation": False,
        "Ipv6CidrBlockAssociationSet": [],
        "Tags": tag_list(view.tags),
        "SubnetArn": view.arn,
        "EnableDns64": False,
        "Ipv6Native": False,
        "PrivateDnsNameOptionsOnLaunch": {
            "HostnameType": "ip-name",
            "EnableResourceNameDnsARecord": False,
            "EnableResourceNameDnsAAAARecord": False,
        },
        "SubnetId": s.id,
        "State": s.state,
        "VpcId": s.vpc_id,
        "CidrBlock": s.cidr_block,
        "AvailableIpAddressCount": view.available_addresses,
        "AvailabilityZone": s.zone,
        "DefaultForAz": s.default_for_az,
        "MapPublicIpOnLaunch": s.map_public_ip_on_launch,
    }


def gateway_info(view: GatewayView) -> dict[str, Any]:
    g = view.gateway
    attachments = [{"State": g.attachment_state, "VpcId": g.vpc_id}] if g.vpc_id else []
    return {
        "Attachments": attachments,
        "InternetGatewayId": g.id,
        "OwnerId": g.account_id,
        "Tags": tag_list(view.tags),
    }


def route_table_info(view: RouteTableView) -> dict[str, Any]:
    t = view.table
    return {
        "Associations": [
            {
                "Main": a.main,
                "RouteTableAssociationId": a.id,
                "RouteTableId": a.route_table_id,
                "SubnetId": a.subnet_id,
                "AssociationState": {"State": a.state},
            }
            for a in view.associations
        ],
        "PropagatingVgws": [],
        "RouteTableId": t.id,
        "Routes": [
            {
                "DestinationCidrBlock": r.destination_cidr,
                "GatewayId": r.gateway_id,
                "Origin": r.origin,
                "State": r.state,
            }
            for r in view.routes
        ],
        "Tags": tag_list(view.tags),
        "VpcId": t.vpc_id,
        "OwnerId": t.account_id,
    }


def network_acl_info(view: NetworkAclView) -> dict[str, Any]:
    a = view.acl
    return {
        "Associations": [
            {
                "NetworkAclAssociationId": x.id,
                "NetworkAclId": x.network_acl_id,
                "SubnetId": x.subnet_id,
            }
            for x in view.associations
        ],
        "Entries": [
            {
                "CidrBlock": e.cidr_block,
                "Egress": e.egress,
                "Protocol": e.protocol,
                "RuleAction": e.rule_action,
                "RuleNumber": e.rule_number,
            }
            for e in view.entries
        ],
        "IsDefault": a.is_default,
        "NetworkAclId": a.id,
        "Tags": tag_list(view.tags),
        "VpcId": a.vpc_id,
        "OwnerId": a.account_id,
    }


def dhcp_options_info(view: DhcpOptionsView) -> dict[str, Any]:
    d = view.options
    return {
        "OwnerId": d.account_id,
        "Tags": tag_list(view.tags),
        "DhcpOptionsId": d.id,
        "DhcpConfigurations": [
            {"Key": key, "Values": [{"Value": v} for v in values]}
            for key, values in d.configurations.items()
        ],
    }


def interface_info(view: InterfaceView) -> dict[str, Any]:
    n = view.interface
    attached = view.attached
    association: dict[str, Any] | None = (
        {
            "IpOwnerId": ip_owner(attached, n.account_id),
            "PublicDnsName": attached.public_dns_name,
            "PublicIp": attached.public_ip,
        }
        if attached.public_ip
        else None
    )
    if association is not None and attached.elastic_ip is not None:
        association["AllocationId"] = attached.elastic_ip.id
        association["AssociationId"] = attached.elastic_ip.association_id
    info: dict[str, Any] = {
        "AvailabilityZone": n.zone,
        "AvailabilityZoneId": view.zone_id,
        "Description": n.description,
        "Groups": [{"GroupId": g, "GroupName": name} for g, name in attached.groups],
        "InterfaceType": n.interface_type,
        "Ipv6Addresses": [],
        "MacAddress": n.mac,
        "NetworkInterfaceId": n.id,
        "OwnerId": n.account_id,
        "PrivateDnsName": view.private_dns_name,
        "PrivateIpAddress": n.private_ip,
        "PrivateIpAddresses": [
            {
                "Primary": True,
                "PrivateDnsName": view.private_dns_name,
                "PrivateIpAddress": n.private_ip,
                **({"Association": association} if association else {}),
            }
        ],
        "RequesterManaged": False,
        "SourceDestCheck": n.source_dest_check,
        "Status": n.status,
        "SubnetId": n.subnet_id,
        "TagSet": tag_list(view.tags),
        "VpcId": n.vpc_id,
    }
    if association:
        info["Association"] = association
    if n.instance_id:
        info["Attachment"] = {
            "AttachTime": n.attach_time,
            "AttachmentId": n.attachment_id,
            "DeleteOnTermination": n.delete_on_termination,
            "DeviceIndex": n.device_index,
            "NetworkCardIndex": 0,
            "InstanceId": n.instance_id,
            "InstanceOwnerId": n.account_id,
            "Status": n.attachment_status,
        }
    return info


@action("DescribeVpcs", read_only=True)
def describe_vpcs(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _page(ctx, params, ctx.cloud.vpcs.describe_vpcs, "VpcIds", "Vpcs", vpc_info)


@action("DescribeSubnets", read_only=True)
def describe_subnets(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _page(ctx, params, ctx.cloud.vpcs.describe_subnets, "SubnetIds", "Subnets", subnet_info)


@action("DescribeInternetGateways", read_only=True)
def describe_internet_gateways(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _page(
        ctx,
        params,
        ctx.cloud.vpcs.describe_internet_gateways,
        "InternetGatewayIds",
        "InternetGateways",
        gateway_info,
    )


@action("DescribeRouteTables", read_only=True)
def describe_route_tables(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _page(
        ctx,
        params,
        ctx.cloud.vpcs.describe_route_tables,
        "RouteTableIds",
        "RouteTables",
        route_table_info,
    )


@action("DescribeNetworkAcls", read_only=True)
def describe_network_acls(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _page(
        ctx,
        params,
        ctx.cloud.vpcs.describe_network_acls,
        "NetworkAclIds",
        "NetworkAcls",
        network_acl_info,
    )


@action("DescribeDhcpOptions", read_only=True)
def describe_dhcp_options(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _page(
        ctx,
        params,
        ctx.cloud.vpcs.describe_dhcp_options,
        "DhcpOptionsIds",
        "DhcpOptions",
        dhcp_options_info,
    )


@action("DescribeNetworkInterfaces", read_only=True)
def describe_network_interfaces(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _page(
        ctx,
        params,
        ctx.cloud.interfaces.describe,
        "NetworkInterfaceIds",
        "NetworkInterfaces",
        interface_info,
    )


@action("DescribeVpcAttribute", read_only=True)
def describe_vpc_attribute(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params.get("Attribute")
    value = ctx.cloud.vpcs.vpc_attribute(ctx.account_id, params.get("VpcId"), name)
    member = str(name)[0].upper() + str(name)[1:]
    return {"VpcId": params.get("VpcId"), member: {"Value": value}}
