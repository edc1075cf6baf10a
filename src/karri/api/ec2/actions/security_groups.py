"""The security group calls: CreateSecurityGroup, DeleteSecurityGroup,
DescribeSecurityGroups, Authorize/RevokeSecurityGroupIngress/Egress,
DescribeSecurityGroupRules, ModifySecurityGroupRules,
UpdateSecurityGroupRuleDescriptionsIngress/Egress.

IpPermissions (and the old flat CidrIp/IpProtocol/FromPort/ToPort/SourceSecurityGroupName
members) become ``Permission``s here; the answers' IpPermissions are built from the rules
the service returns, grouped as AWS groups them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from karri.api.ec2.actions.keypairs import tag_list
from karri.api.ec2.dispatch import Ec2Context, action
from karri.api.ec2.tagging import specified_tags
from karri.cloud.network.group_rules import Peer, Permission, RuleView, grouped, malformed
from karri.cloud.network.groups import GroupView
from karri.errors import CloudError

_FLAT = ("CidrIp", "IpProtocol", "FromPort", "ToPort", "SourceSecurityGroupName")


def _peers(p: Mapping[str, Any]) -> tuple[Peer, ...]:
    peers = [
        Peer(cidr_ipv4=r.get("CidrIp"), description=r.get("Description"))
        for r in p.get("IpRanges") or ()
    ]
    peers += [
        Peer(cidr_ipv6=r.get("CidrIpv6"), description=r.get("Description"))
        for r in p.get("Ipv6Ranges") or ()
    ]
    peers += [
        Peer(
            group_id=r.get("GroupId"),
            group_name=r.get("GroupName"),
            user_id=r.get("UserId"),
            description=r.get("Description"),
        )
        for r in p.get("UserIdGroupPairs") or ()
    ]
    peers += [
        Peer(prefix_list_id=r.get("PrefixListId"), description=r.get("Description"))
        for r in p.get("PrefixListIds") or ()
    ]
    return tuple(peers)


def permissions(params: Mapping[str, Any]) -> list[Permission]:
    """IpPermissions, or the one permission of the flat members (ingress's old form:
    a CIDR, or a source group by name with all of its protocols and ports)."""
    listed = [
        Permission(p.get("IpProtocol"), p.get("FromPort"), p.get("ToPort"), _peers(p))
        for p in params.get("IpPermissions") or ()
    ]
    flat = {m: params.get(m) for m in _FLAT if params.get(m) is not None}
    if not flat:
        return listed
    if listed:
        raise malformed("The parameter IpPermissions cannot be used with CidrIp or IpProtocol")
    source = flat.get("SourceSecurityGroupName")
    if source:
        if "CidrIp" in flat or "IpProtocol" in flat:
            raise CloudError(
                "InvalidParameterCombination",
                "The parameter SourceSecurityGroupName cannot be used with CidrIp or IpProtocol",
            )
        peer = Peer(group_name=source, user_id=params.get("SourceSecurityGroupOwnerId"))
        return [Permission("-1", None, None, (peer,))]
    return [
        Permission(
            flat.get("IpProtocol"),
            flat.get("FromPort"),
            flat.get("ToPort"),
            (Peer(cidr_ipv4=flat.get("CidrIp")),) if flat.get("CidrIp") else (),
        )
    ]


def _described(entry: dict[str, Any], description: str | None) -> dict[str, Any]:
    if description:
        entry["Description"] = description
    return entry


def ip_permissions(rules: Sequence[RuleView]) -> list[dict[str, Any]]:
    """Rules as IpPermissions: one per protocol and port range, peers by kind."""
    out = []
    for permission in grouped(rules):
        entry: dict[str, Any] = {
            "IpProtocol": permission.protocol,
            "IpRanges": [],
            "Ipv6Ranges": [],
            "PrefixListIds": [],
            "UserIdGroupPairs": [],
        }
        if permission.ports:
            entry["FromPort"], entry["ToPort"] = permission.from_port, permission.to_port
        for rule in permission.rules:
            s = rule.spec
            if s.cidr_ipv4:
                entry["IpRanges"].append(_described({"CidrIp": s.cidr_ipv4}, s.description))
            elif s.cidr_ipv6:
                entry["Ipv6Ranges"].append(_described({"CidrIpv6": s.cidr_ipv6}, s.description))
            elif s.prefix_list_id:
                entry["PrefixListIds"].append(
                    _described({"PrefixListId": s.prefix_list_id}, s.description)
                )
            else:
                entry["UserIdGroupPairs"].append(
                    _described(
                        {"GroupId": s.peer_group_id, "UserId": s.peer_owner_id}, s.description
                    )
                )
        out.append(entry)
    return out


def group_info(view: GroupView) -> dict[str, Any]:
    return {
        "GroupId": view.group_id,
        "GroupName": view.name,
        "Description": view.description,
        "VpcId": view.vpc_id,
        "OwnerId": view.owner_id,
        "IpPermissions": ip_permissions(view.ingress),
        "IpPermissionsEgress": ip_permissions(view.egress),
        "Tags": tag_list(view.tags),
    }


def rule_info(rule: RuleView) -> dict[str, Any]:
    s = rule.spec
    info: dict[str, Any] = {
        "SecurityGroupRuleId": rule.rule_id,
        "GroupId": rule.group_id,
        "GroupOwnerId": rule.owner_id,
        "IsEgress": s.egress,
        "IpProtocol": s.protocol,
        "FromPort": s.from_port,
        "ToPort": s.to_port,
        "Tags": tag_list(rule.tags),
    }
    if s.cidr_ipv4:
        info["CidrIpv4"] = s.cidr_ipv4
    if s.cidr_ipv6:
        info["CidrIpv6"] = s.cidr_ipv6
    if s.prefix_list_id:
        info["PrefixListId"] = s.prefix_list_id
    if s.peer_group_id:
        info["ReferencedGroupInfo"] = {"GroupId": s.peer_group_id, "UserId": s.peer_owner_id}
    if s.description:
        info["Description"] = s.description
    return info


def _revoked_info(rule: RuleView) -> dict[str, Any]:
    info = {k: v for k, v in rule_info(rule).items() if k not in ("GroupOwnerId", "Tags")}
    referenced = info.pop("ReferencedGroupInfo", None)
    if referenced:
        info["ReferencedGroupId"] = referenced["GroupId"]
    return info


def _unknown(permission: Permission) -> dict[str, Any]:
    entry: dict[str, Any] = {"IpProtocol": permission.protocol}
    if permission.from_port is not None:
        entry["FromPort"] = permission.from_port
    if permission.to_port is not None:
        entry["ToPort"] = permission.to_port
    entry["IpRanges"] = [{"CidrIp": p.cidr_ipv4} for p in permission.peers if p.cidr_ipv4]
    entry["Ipv6Ranges"] = [{"CidrIpv6": p.cidr_ipv6} for p in permission.peers if p.cidr_ipv6]
    entry["UserIdGroupPairs"] = [
        {
            k: v
            for k, v in (
                ("GroupId", p.group_id),
                ("GroupName", p.group_name),
                ("UserId", p.user_id),
            )
            if v
        }
        for p in permission.peers
        if p.group_id or p.group_name
    ]
    entry["PrefixListIds"] = [
        {"PrefixListId": p.prefix_list_id} for p in permission.peers if p.prefix_list_id
    ]
    return entry


@action("CreateSecurityGroup")
def create_security_group(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    view = ctx.cloud.groups.create(
        ctx.account_id,
        params.get("GroupName"),
        params.get("Description"),
        params.get("VpcId"),
        specified_tags(params.get("TagSpecifications"), "security-group"),
    )
    return {"GroupId": view.group_id, "Tags": tag_list(view.tags)}


@action("DeleteSecurityGroup")
def delete_security_group(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    group_id = ctx.cloud.groups.delete(
        ctx.account_id, params.get("GroupId"), params.get("GroupName")
    )
    return {"Return": True, "GroupId": group_id}


@action("DescribeSecurityGroups", read_only=True)
def describe_security_groups(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    page = ctx.cloud.groups.describe(
        ctx.account_id,
        params.get("GroupIds"),
        params.get("GroupNames"),
        params.get("Filters"),
        params.get("MaxResults"),
        params.get("NextToken"),
    )
    return {"SecurityGroups": [group_info(v) for v in page.items], "NextToken": page.next_token}


def _authorize(ctx: Ec2Context, params: dict[str, Any], egress: bool) -> dict[str, Any]:
    rules = ctx.cloud.groups.authorize(
        ctx.account_id,
        params.get("GroupId"),
        None if egress else params.get("GroupName"),
        egress,
        permissions(params),
        specified_tags(params.get("TagSpecifications"), "security-group-rule"),
    )
    return {"Return": True, "SecurityGroupRules": [rule_info(r) for r in rules]}


@action("AuthorizeSecurityGroupIngress")
def authorize_ingress(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _authorize(ctx, params, egress=False)


@action("AuthorizeSecurityGroupEgress")
def authorize_egress(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _authorize(ctx, params, egress=True)


def _revoke(ctx: Ec2Context, params: dict[str, Any], egress: bool) -> dict[str, Any]:
    result = ctx.cloud.groups.revoke(
        ctx.account_id,
        params.get("GroupId"),
        None if egress else params.get("GroupName"),
        egress,
        permissions(params),
        params.get("SecurityGroupRuleIds") or (),
    )
    answer: dict[str, Any] = {
        "Return": True,
        "RevokedSecurityGroupRules": [_revoked_info(r) for r in result.revoked],
    }
    if result.unknown:
        answer["UnknownIpPermissions"] = [_unknown(p) for p in result.unknown]
    return answer


@action("RevokeSecurityGroupIngress")
def revoke_ingress(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _revoke(ctx, params, egress=False)


@action("RevokeSecurityGroupEgress")
def revoke_egress(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _revoke(ctx, params, egress=True)


@action("DescribeSecurityGroupRules", read_only=True)
def describe_security_group_rules(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    page = ctx.cloud.groups.describe_rules(
        ctx.account_id,
        params.get("SecurityGroupRuleIds"),
        params.get("Filters"),
        params.get("MaxResults"),
        params.get("NextToken"),
    )
    return {"SecurityGroupRules": [rule_info(r) for r in page.items], "NextToken": page.next_token}


@action("ModifySecurityGroupRules")
def modify_security_group_rules(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    updates = []
    for update in params.get("SecurityGroupRules") or ():
        rule = update.get("SecurityGroupRule") or {}
        peer = Peer(
            cidr_ipv4=rule.get("CidrIpv4"),
            cidr_ipv6=rule.get("CidrIpv6"),
            group_id=rule.get("ReferencedGroupId"),
            prefix_list_id=rule.get("PrefixListId"),
            description=rule.get("Description"),
        )
        permission = Permission(
            rule.get("IpProtocol"), rule.get("FromPort"), rule.get("ToPort"), (peer,)
        )
        updates.append((update.get("SecurityGroupRuleId"), permission))
    ctx.cloud.groups.modify_rules(ctx.account_id, params.get("GroupId"), updates)
    return {"Return": True}


def _descriptions(ctx: Ec2Context, params: dict[str, Any], egress: bool) -> dict[str, Any]:
    ctx.cloud.groups.update_descriptions(
        ctx.account_id,
        params.get("GroupId"),
        params.get("GroupName"),
        egress,
        permissions({"IpPermissions": params.get("IpPermissions")}),
        {
            d.get("SecurityGroupRuleId"): d.get("Description")
            for d in params.get("SecurityGroupRuleDescriptions") or ()
        },
    )
    return {"Return": True}


@action("UpdateSecurityGroupRuleDescriptionsIngress")
def update_descriptions_ingress(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _descriptions(ctx, params, egress=False)


@action("UpdateSecurityGroupRuleDescriptionsEgress")
def update_descriptions_egress(ctx: Ec2Context, params: dict[str, Any]) -> dict[str, Any]:
    return _descriptions(ctx, params, egress=True)
