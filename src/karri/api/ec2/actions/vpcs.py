"""DescribeVpcs, DescribeSubnets, DescribeInternetGateways, DescribeRouteTables,
DescribeNetworkAcls, DescribeDhcpOptions, DescribeVpcAttribute, DescribeNetworkInterfaces:
the network's values in EC2's shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from karri.api.ec2.actions.keypairs import tag_list
from karri.api.ec2.dispatch import Ec2Context, action
from karri.cloud.filters import Page
from karri.cloud.network.interfaces import InterfaceView
from karri.cloud.network.models import NetworkAclEntry, Route
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


def cidr_association(association_id: str, cidr: str, state: str) -> dict[str, Any]:
    return {"AssociationId": association_id, "CidrBlock": cidr, "CidrBlockState": {"State": state}}


def vpc_info(view: VpcView) -> dict[str, Any]:
    v = view.vpc
    return {
        "OwnerId": v.account_id,
        "InstanceTenancy": v.instance_tenancy,
        "CidrBlockAssociationSet": [
            cidr_association(association_id, cidr, CIDR_ASSOCIATED)
            for association_id, cidr in view.ranges
        ],
        "IsDefault": v.is_default,
        "Tags": tag_list(view.tags),
        "VpcId": v.id,
        "State": v.state,
        "CidrBlock": v.cidr_block,
        "DhcpOptionsId": v.dhcp_options_id or "default",
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


def route_info(r: Route, account_id: str, state: str) -> dict[str, Any]:
    """A route and its one target: a gateway (``local`` included) or an interface, with
    the instance it was given as."""
    info: dict[str, Any] = {
        "DestinationCidrBlock": r.destination_cidr,
        "Origin": r.origin,
        "State": state,
    }
    if r.gateway_id:
        info["GatewayId"] = r.gateway_id
    if r.network_interface_id:
        info["NetworkInterfaceId"] = r.network_interface_id
    if r.instance_id:
        info["InstanceId"], info["InstanceOwnerId"] = r.instance_id, account_id
    if r.nat_gateway_id:
        info["NatGatewayId"] = r.nat_gateway_id
    return info


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
        "Routes": [route_info(r, t.account_id, view.state_of(r)) for r in view.routes],
        "Tags": tag_list(view.tags),
        "VpcId": t.vpc_id,
        "OwnerId": t.account_id,
    }


def acl_entry_info(e: NetworkAclEntry) -> dict[str, Any]:
    info: dict[str, Any] = {
        "CidrBlock": e.cidr_block,
        "Egress": e.egress,
        "Protocol": e.protocol,
        "RuleAction": e.rule_action,
        "RuleNumber": e.rule_number,
    }
    if e.port_from is not None:
        info["PortRange"] = {"From": e.port_from, "To": e.port_to}
    if e.icmp_type is not None:
        info["IcmpTypeCode"] = {"Type": e.icmp_type, "Code": e.icmp_code}
    return info


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
        "Entries": [acl_entry_info(e) for e in view.entries],
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


def _association(owner: str, elastic_ip: Any, public_ip: str | None, dns: str) -> Any:
    if not public_ip:
        return None
    association: dict[str, Any] = {
        "IpOwnerId": owner if elastic_ip else "amazon",
        "PublicDnsName": dns,
        "PublicIp": public_ip,
    }
    if elastic_ip is not None:
        association["AllocationId"] = elastic_ip.id
        association["AssociationId"] = elastic_ip.association_id
    return association


def interface_info(view: InterfaceView) -> dict[str, Any]:
    n = view.interface
    attached = view.attached
    association = _association(
        n.account_id, attached.elastic_ip, attached.public_ip, attached.public_dns_name
    )
    addresses = [
        {
            "Primary": True,
            "PrivateDnsName": view.private_dns_name,
            "PrivateIpAddress": n.private_ip,
            **({"Association": association} if association else {}),
        }
    ]
    for extra in view.secondary:
        public_ip = extra.elastic_ip.public_ip if extra.elastic_ip else None
        linked = _association(n.account_id, extra.elastic_ip, public_ip, extra.public_dns_name)
        addresses.append(
            {
                "Primary": False,
                "PrivateDnsName": extra.private_dns_name,
                "PrivateIpAddress": extra.private_ip,
                **({"Association": linked} if linked else {}),
            }
        )
    info: dict[str, Any] = {
        "AvailabilityZone": n.zone,
        "AvailabilityZoneId": view.zone_id,
        "Description": n.description,
        "Groups": groups_info(view),
        "InterfaceType": n.interface_type,
        "Ipv6Addresses": [],
        "MacAddress": n.mac,
        "NetworkInterfaceId": n.id,
        "OwnerId": n.account_id,
        "PrivateDnsName": view.private_dns_name,
        "PrivateIpAddress": n.private_ip,
        "PrivateIpAddresses": addresses,
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
        info["Attachment"] = attachment_info(view)
    return info


def groups_info(view: InterfaceView) -> list[dict[str, str]]:
    return [{"GroupId": g, "GroupName": name} for g, name in view.attached.groups]


def attachment_info(view: InterfaceView) -> dict[str, Any]:
    n = view.interface
    return {
        "AttachTime": n.attach_time,
        "AttachmentId": n.attachment_id,
        "DeleteOnTermination": n.delete_on_termination,
        "DeviceIndex": n.device_index,
        "NetworkCardIndex": 0,
        "InstanceId": n.instance_id,
        "InstanceOwnerId": n.account_id,
        "Status": n.attachment_status,
    }


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
