"""Security groups (EC2's VPC groups): the groups of each VPC, their rules, who uses them,
and what the node must enforce.

Every mutation runs in one ``write_session`` (check, then write) and, once committed,
tells ``on_change`` the VPC whose rules or membership changed; the node re-reads that VPC
with ``vpc_rules`` and ``vpc_members``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy import Select, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from karri.cloud.filters import FilterSet, Page, paginate
from karri.cloud.instances.groups import SecurityGroup, default_group
from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.network.group_members import InstanceMembers
from karri.cloud.network.group_models import SecurityGroupRow, SecurityGroupRuleRow
from karri.cloud.network.group_rules import (
    Permission,
    RuleSpec,
    RuleView,
    check_description,
    check_peer,
    check_text,
    cidr_v4,
    cidr_v6,
    firewall_rules,
    malformed,
    permission_text,
    ports_of,
    protocol_of,
)
from karri.cloud.tags import Taggable, Tags, owned_ids
from karri.db.engine import Database
from karri.errors import CloudError, invalid_value, missing_parameter
from karri.ids import is_valid_id, new_id
from karri.node.firewall import GroupRules

MAX_RULES_PER_DIRECTION = 60
MAX_GROUPS_PER_VPC = 2500
MAX_GROUPS_PER_INTERFACE = 5
DEFAULT_NAME = "default"
DEFAULT_DESCRIPTION = "default VPC security group"
ALL_IPV4 = "0.0.0.0/0"


class VpcDirectory(Protocol):
    """Which VPCs an account has (the VPC table once it exists)."""

    def owns(self, account_id: str, vpc_id: str) -> bool: ...


class DefaultVpcOnly:
    """Until VPCs are rows: every account has its default VPC and no other."""

    def owns(self, account_id: str, vpc_id: str) -> bool:
        return vpc_id == default_vpc_id(account_id)


class Members(Protocol):
    """Who uses groups: the instances (``group_members.InstanceMembers``)."""

    def users(self, session: Session, account_id: str, group_id: str) -> list[str]: ...
    def of_vpc(
        self, session: Session, account_id: str, vpc_id: str
    ) -> dict[str, tuple[str, ...]]: ...


@dataclass(frozen=True)
class GroupView:
    group_id: str
    name: str
    description: str
    vpc_id: str
    owner_id: str
    ingress: tuple[RuleView, ...] = ()
    egress: tuple[RuleView, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    peer_names: Mapping[str, str] = field(default_factory=dict)
    """Names of the groups its rules name as peers (for the group-name filters)."""


@dataclass(frozen=True)
class RevokeResult:
    revoked: list[RuleView]
    unknown: list[Permission]


def _not_found(what: str) -> CloudError:
    return CloudError("InvalidGroup.NotFound", f"The security group '{what}' does not exist")


def _check_group_id(group_id: str) -> str:
    if not is_valid_id(group_id, "sg"):
        raise CloudError(
            "InvalidGroupId.Malformed", f'Invalid id: "{group_id}" (expecting "sg-...")'
        )
    return group_id


def _permission_getters(prefix: str, egress: bool) -> dict[str, Callable[[GroupView], Any]]:
    def rules(g: GroupView) -> tuple[RuleView, ...]:
        return g.egress if egress else g.ingress

    def peers(attribute: str) -> Callable[[GroupView], list[Any]]:
        return lambda g: [getattr(r.spec, attribute) for r in rules(g)]

    return {
        f"{prefix}cidr": peers("cidr_ipv4"),
        f"{prefix}ipv6-cidr": peers("cidr_ipv6"),
        f"{prefix}from-port": peers("from_port"),
        f"{prefix}to-port": peers("to_port"),
        f"{prefix}protocol": peers("protocol"),
        f"{prefix}group-id": peers("peer_group_id"),
        f"{prefix}user-id": peers("peer_owner_id"),
        f"{prefix}prefix-list-id": peers("prefix_list_id"),
        f"{prefix}group-name": lambda g: [
            g.peer_names.get(r.spec.peer_group_id or "") for r in rules(g)
        ],
    }


GROUP_FILTERS: FilterSet[GroupView] = FilterSet(
    {
        "description": lambda g: g.description,
        "group-id": lambda g: g.group_id,
        "group-name": lambda g: g.name,
        "owner-id": lambda g: g.owner_id,
        "vpc-id": lambda g: g.vpc_id,
        **_permission_getters("ip-permission.", egress=False),
        **_permission_getters("egress.ip-permission.", egress=True),
    }
)

RULE_FILTERS: FilterSet[RuleView] = FilterSet(
    {
        "group-id": lambda r: r.group_id,
        "security-group-rule-id": lambda r: r.rule_id,
    }
)


class SecurityGroups:
    def __init__(
        self,
        db: Database,
        tags: Tags,
        *,
        vpcs: VpcDirectory | None = None,
        members: Members | None = None,
        on_change: Callable[[str], None] = lambda _vpc_id: None,
    ) -> None:
        """``on_change`` is told the VPC id after each committed change of a group's rules
        or of which instances are in which group."""
        self.db = db
        self.tags = tags
        self.vpcs: VpcDirectory = vpcs or DefaultVpcOnly()
        self.members: Members = members or InstanceMembers()
        self.on_change = on_change
        tags.register(
            Taggable(
                "sg",
                "security-group",
                "InvalidGroup.NotFound",
                "security group",
                owned_ids(SecurityGroupRow),
            )
        )
        tags.register(
            Taggable(
                "sgr",
                "security-group-rule",
                "InvalidSecurityGroupRuleId.NotFound",
                "security group rule",
                owned_ids(SecurityGroupRuleRow),
            )
        )

    # -- the default group ------------------------------------------------------------

    def ensure_default(self, account_id: str) -> None:
        """The ``default`` group of the account's default VPC, with AWS's rules (all in
        from its own members, all out); a no-op once it exists or while the account has
        no default VPC (it deleted it)."""
        group_id = default_group(account_id).group_id
        vpc_id = default_vpc_id(account_id)
        if not self.vpcs.owns(account_id, vpc_id):
            return
        with self.db.write_session() as session:
            if session.get(SecurityGroupRow, group_id) is not None:
                return
            self.add_default(session, account_id, vpc_id, group_id)
        self.on_change(vpc_id)

    def add_default(
        self, session: Session, account_id: str, vpc_id: str, group_id: str | None = None
    ) -> str:
        """A new VPC's ``default`` group, in the caller's transaction; its id."""
        group_id = group_id or new_id("sg", lambda i: session.get(SecurityGroupRow, i) is not None)
        session.add(
            SecurityGroupRow(
                id=group_id,
                account_id=account_id,
                vpc_id=vpc_id,
                name=DEFAULT_NAME,
                description=DEFAULT_DESCRIPTION,
            )
        )
        session.flush()
        self._insert(
            session,
            account_id,
            group_id,
            [
                RuleSpec(False, "-1", -1, -1, peer_group_id=group_id, peer_owner_id=account_id),
                RuleSpec(True, "-1", -1, -1, cidr_ipv4=ALL_IPV4),
            ],
        )
        return group_id

    def has_own_groups(self, session: Session, vpc_id: str) -> bool:
        """Whether the VPC has groups besides its ``default`` one (DeleteVpc's check)."""
        return (
            session.scalar(
                select(SecurityGroupRow.id).where(
                    SecurityGroupRow.vpc_id == vpc_id, SecurityGroupRow.name != DEFAULT_NAME
                )
            )
            is not None
        )

    def drop_default(self, session: Session, vpc_id: str) -> None:
        """The ``default`` group of a VPC being deleted, its rules and tags."""
        row = session.scalar(
            select(SecurityGroupRow).where(
                SecurityGroupRow.vpc_id == vpc_id, SecurityGroupRow.name == DEFAULT_NAME
            )
        )
        if row is None:
            return
        rule_ids = list(
            session.scalars(
                select(SecurityGroupRuleRow.id).where(SecurityGroupRuleRow.group_id == row.id)
            )
        )
        self.tags.forget(session, [row.id, *rule_ids])
        session.execute(delete(SecurityGroupRuleRow).where(SecurityGroupRuleRow.group_id == row.id))
        session.delete(row)

    def ensure_defaults(self, account_ids: Iterable[str]) -> None:
        for account_id in account_ids:
            self.ensure_default(account_id)

    # -- groups -----------------------------------------------------------------------

    def create(
        self,
        account_id: str,
        name: str | None,
        description: str | None,
        vpc_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> GroupView:
        name = check_text(name, "GroupName")
        description = check_text(description, "GroupDescription")
        if name.lower().startswith("sg-"):
            raise invalid_value("Group names may not be in the format sg-*.")
        if name == DEFAULT_NAME:
            raise invalid_value(f"Cannot use reserved security group name: {name}")
        vpc_id = vpc_id or default_vpc_id(account_id)
        if not self.vpcs.owns(account_id, vpc_id):
            raise CloudError("InvalidVpcID.NotFound", f"The vpc ID '{vpc_id}' does not exist")
        with self.db.write_session() as session:
            if session.scalar(
                select(SecurityGroupRow.id).where(
                    SecurityGroupRow.vpc_id == vpc_id, SecurityGroupRow.name == name
                )
            ):
                raise CloudError(
                    "InvalidGroup.Duplicate",
                    f"The security group '{name}' already exists for VPC '{vpc_id}'",
                )
            count = session.scalar(select(func.count()).where(SecurityGroupRow.vpc_id == vpc_id))
            if (count or 0) >= MAX_GROUPS_PER_VPC:
                raise CloudError(
                    "SecurityGroupLimitExceeded",
                    "The maximum number of security groups has been reached.",
                )
            row = SecurityGroupRow(
                id=new_id("sg", lambda i: session.get(SecurityGroupRow, i) is not None),
                account_id=account_id,
                vpc_id=vpc_id,
                name=name,
                description=description,
            )
            session.add(row)
            session.flush()
            egress = self._insert(
                session, account_id, row.id, [RuleSpec(True, "-1", -1, -1, cidr_ipv4=ALL_IPV4)]
            )
            if tags:
                self.tags.put(session, account_id, [row.id], dict(tags))
            view = GroupView(
                row.id,
                name,
                description,
                vpc_id,
                account_id,
                egress=tuple(egress),
                tags=dict(tags or {}),
            )
        self.on_change(vpc_id)
        return view

    def delete(self, account_id: str, group_id: str | None, group_name: str | None) -> str:
        """DeleteSecurityGroup by id, or by name in the default VPC."""
        with self.db.write_session() as session:
            row = self._target(session, account_id, group_id, group_name)
            if row.name == DEFAULT_NAME:
                raise CloudError(
                    "CannotDelete",
                    f'the specified group: "{row.id}" name: "{row.name}" cannot be deleted '
                    "by a user",
                )
            referenced = session.scalar(
                select(SecurityGroupRuleRow.id).where(
                    SecurityGroupRuleRow.peer_group_id == row.id,
                    SecurityGroupRuleRow.group_id != row.id,
                )
            )
            if referenced or self.members.users(session, account_id, row.id):
                raise CloudError("DependencyViolation", f"resource {row.id} has a dependent object")
            rule_ids = list(
                session.scalars(
                    select(SecurityGroupRuleRow.id).where(SecurityGroupRuleRow.group_id == row.id)
                )
            )
            self.tags.forget(session, [row.id, *rule_ids])
            session.execute(
                delete(SecurityGroupRuleRow).where(SecurityGroupRuleRow.group_id == row.id)
            )
            session.delete(row)
            vpc_id, deleted = row.vpc_id, row.id
        self.on_change(vpc_id)
        return deleted

    def ids_by_name(self, account_id: str, names: Sequence[str]) -> dict[str, str]:
        """The ids of the account's groups with these names in its default VPC (where a
        call's ``GroupName`` points), for authorization; names not found are left out."""
        with self.db.session() as session:
            rows = session.execute(
                select(SecurityGroupRow.name, SecurityGroupRow.id).where(
                    SecurityGroupRow.vpc_id == default_vpc_id(account_id),
                    SecurityGroupRow.name.in_(list(names)),
                )
            )
            return {name: group_id for name, group_id in rows}

    def describe(
        self,
        account_id: str,
        group_ids: Sequence[str] | None = None,
        group_names: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[GroupView]:
        for group_id in group_ids or ():
            _check_group_id(group_id)
        with self.db.session() as session:
            views = self._views(session, account_id, group_ids, group_names)
        by_id = {v.group_id: v for v in views}
        default_vpc = default_vpc_id(account_id)
        wanted: list[GroupView] = views
        if group_ids or group_names:
            wanted = []
            for group_id in dict.fromkeys(group_ids or ()):
                if group_id not in by_id:
                    raise _not_found(group_id)
                wanted.append(by_id[group_id])
            by_name = {v.name: v for v in views if v.vpc_id == default_vpc}
            for name in dict.fromkeys(group_names or ()):
                if name not in by_name:
                    raise CloudError(
                        "InvalidGroup.NotFound",
                        f"The security group '{name}' does not exist in default VPC "
                        f"'{default_vpc}'",
                    )
                if by_name[name] not in wanted:
                    wanted.append(by_name[name])
        matched = GROUP_FILTERS.apply(wanted, filters, lambda v: v.tags)
        return paginate(
            matched,
            lambda v: v.group_id,
            max_results,
            next_token,
            kind="security-groups",
            ids_given=bool(group_ids or group_names),
        )

    # -- rules ------------------------------------------------------------------------

    def authorize(
        self,
        account_id: str,
        group_id: str | None,
        group_name: str | None,
        egress: bool,
        permissions: Sequence[Permission],
        tags: Mapping[str, str] | None = None,
    ) -> list[RuleView]:
        if not permissions:
            raise missing_parameter("IpPermissions")
        with self.db.write_session() as session:
            row = self._target(session, account_id, group_id, group_name)
            specs = self._specs(session, account_id, row, egress, permissions)
            existing = self._rules(session, [row.id])
            keys = {r.spec.key() for r in existing}
            seen: set[tuple] = set()
            for spec in specs:
                if spec.key() in keys or spec.key() in seen:
                    raise CloudError(
                        "InvalidPermission.Duplicate",
                        f'the specified rule "{permission_text(spec)}" already exists',
                    )
                seen.add(spec.key())
            self._check_room(existing, egress, len(specs))
            added = self._insert(session, account_id, row.id, specs)
            if tags:
                self.tags.put(session, account_id, [r.rule_id for r in added], dict(tags))
                added = [
                    RuleView(r.rule_id, r.group_id, r.owner_id, r.spec, r.peer_vpc_id, dict(tags))
                    for r in added
                ]
            vpc_id = row.vpc_id
        self.on_change(vpc_id)
        return added

    def revoke(
        self,
        account_id: str,
        group_id: str | None,
        group_name: str | None,
        egress: bool,
        permissions: Sequence[Permission],
        rule_ids: Sequence[str] = (),
    ) -> RevokeResult:
        """Rules named by permission or by id. A permission that matches no rule is
        ``InvalidPermission.NotFound`` in a non-default VPC; in the default VPC AWS
        answers with it among the ``unknown`` ones and revokes the rest."""
        if not permissions and not rule_ids:
            raise missing_parameter("IpPermissions")
        if permissions and rule_ids:
            raise CloudError(
                "InvalidParameterCombination",
                "The parameter SecurityGroupRuleIds cannot be used with IpPermissions",
            )
        with self.db.write_session() as session:
            row = self._target(session, account_id, group_id, group_name)
            existing = [r for r in self._rules(session, [row.id]) if r.spec.egress == egress]
            unknown: list[Permission] = []
            if rule_ids:
                by_id = {r.rule_id: r for r in existing}
                for rule_id in rule_ids:
                    if rule_id not in by_id:
                        raise _rule_not_found(rule_id)
                doomed = [by_id[i] for i in dict.fromkeys(rule_ids)]
            else:
                by_key = {r.spec.key(): r for r in existing}
                doomed = []
                for permission in permissions:
                    specs = self._specs(session, account_id, row, egress, [permission])
                    found = [by_key[s.key()] for s in specs if s.key() in by_key]
                    if len(found) < len(specs):
                        if row.vpc_id != default_vpc_id(account_id):
                            missing = next(s for s in specs if s.key() not in by_key)
                            raise CloudError(
                                "InvalidPermission.NotFound",
                                f"The specified rule does not exist in this security group. "
                                f"({permission_text(missing)})",
                            )
                        unknown.append(permission)
                    doomed += [r for r in found if r not in doomed]
            ids = [r.rule_id for r in doomed]
            if ids:
                self.tags.forget(session, ids)
                session.execute(
                    delete(SecurityGroupRuleRow).where(SecurityGroupRuleRow.id.in_(ids))
                )
            vpc_id = row.vpc_id
        if doomed:
            self.on_change(vpc_id)
        return RevokeResult(doomed, unknown)

    def describe_rules(
        self,
        account_id: str,
        rule_ids: Sequence[str] | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[RuleView]:
        with self.db.session() as session:
            group_ids = list(
                session.scalars(
                    select(SecurityGroupRow.id).where(SecurityGroupRow.account_id == account_id)
                )
            )
            rules = self._rules(session, group_ids, tags_of=account_id)
        if rule_ids:
            by_id = {r.rule_id: r for r in rules}
            for rule_id in rule_ids:
                if rule_id not in by_id:
                    raise _rule_not_found(rule_id)
            rules = [by_id[i] for i in dict.fromkeys(rule_ids)]
        matched = RULE_FILTERS.apply(rules, filters, lambda r: r.tags)
        return paginate(
            matched,
            lambda r: r.rule_id,
            max_results,
            next_token,
            kind="security-group-rules",
            ids_given=bool(rule_ids),
        )

    def modify_rules(
        self, account_id: str, group_id: str | None, updates: Sequence[tuple[str, Permission]]
    ) -> None:
        """ModifySecurityGroupRules: each rule (by id) becomes the one permission given
        (one peer), its id kept."""
        if not group_id:
            raise missing_parameter("GroupId")
        if not updates:
            raise missing_parameter("SecurityGroupRules")
        with self.db.write_session() as session:
            row = self._target(session, account_id, group_id, None)
            existing = {r.rule_id: r for r in self._rules(session, [row.id])}
            for rule_id, permission in updates:
                rule = existing.get(rule_id)
                if rule is None:
                    raise _rule_not_found(rule_id)
                if len(permission.peers) != 1:
                    raise malformed("A rule must name exactly one peer.")
                (spec,) = self._specs(session, account_id, row, rule.spec.egress, [permission])
                others = {r.spec.key() for i, r in existing.items() if i != rule_id}
                if spec.key() in others:
                    raise CloudError(
                        "InvalidPermission.Duplicate",
                        f'the specified rule "{permission_text(spec)}" already exists',
                    )
                existing[rule_id] = RuleView(rule_id, row.id, account_id, spec)
                stored = session.get(SecurityGroupRuleRow, rule_id)
                _write_spec(stored, spec)
            vpc_id = row.vpc_id
        self.on_change(vpc_id)

    def update_descriptions(
        self,
        account_id: str,
        group_id: str | None,
        group_name: str | None,
        egress: bool,
        permissions: Sequence[Permission],
        by_rule_id: Mapping[str, str | None],
    ) -> None:
        """UpdateSecurityGroupRuleDescriptionsIngress/Egress: by permission (each peer's
        description) or by rule id."""
        if not permissions and not by_rule_id:
            raise missing_parameter("IpPermissions")
        with self.db.write_session() as session:
            row = self._target(session, account_id, group_id, group_name)
            existing = [r for r in self._rules(session, [row.id]) if r.spec.egress == egress]
            changes: dict[str, str | None] = {}
            if by_rule_id:
                ids = {r.rule_id for r in existing}
                for rule_id, description in by_rule_id.items():
                    if rule_id not in ids:
                        raise _rule_not_found(rule_id)
                    changes[rule_id] = check_description(description)
            by_key = {r.spec.key(): r for r in existing}
            for spec in self._specs(session, account_id, row, egress, permissions):
                rule = by_key.get(spec.key())
                if rule is None:
                    raise CloudError(
                        "InvalidPermission.NotFound",
                        f"The specified rule does not exist in this security group. "
                        f"({permission_text(spec)})",
                    )
                changes[rule.rule_id] = spec.description
            for rule_id, description in changes.items():
                session.get(SecurityGroupRuleRow, rule_id).description = description

    # -- instances --------------------------------------------------------------------

    def resolve(
        self,
        account_id: str,
        vpc_id: str | None,
        names: Sequence[str] = (),
        ids: Sequence[str] = (),
        subnet_id: str = "",
    ) -> list[SecurityGroup]:
        """The groups an interface is given, by name (default VPC only) or id; they must
        be the account's groups of ``vpc_id`` (None: the default VPC; a group of another
        of its VPCs is AWS's ``InvalidParameter`` naming ``subnet_id``). None given: the
        VPC's ``default`` group."""
        vpc_id = vpc_id or default_vpc_id(account_id)
        for group_id in ids:
            _check_group_id(group_id)
        with self.db.session() as session:
            rows = list(
                session.scalars(
                    select(SecurityGroupRow).where(
                        SecurityGroupRow.account_id == account_id,
                        SecurityGroupRow.vpc_id == vpc_id,
                    )
                )
            )
            elsewhere = set(
                session.scalars(
                    select(SecurityGroupRow.id).where(
                        SecurityGroupRow.account_id == account_id,
                        SecurityGroupRow.id.in_(list(ids)),
                        SecurityGroupRow.vpc_id != vpc_id,
                    )
                )
            )
        if elsewhere and subnet_id:  # a launch (ModifyInstanceAttribute: not found)
            raise CloudError(
                "InvalidParameter",
                f"Security group {min(elsewhere)} and subnet {subnet_id} belong to different "
                "networks.",
            )
        by_id = {r.id: r for r in rows}
        by_name = {r.name: r for r in rows}
        if names and vpc_id != default_vpc_id(account_id):
            raise CloudError(
                "InvalidParameterCombination",
                "The parameter groupName cannot be used with the parameter subnet",
            )
        chosen: dict[str, SecurityGroupRow] = {}
        for name in names:
            if name not in by_name:
                raise _not_found(name)
            chosen[by_name[name].id] = by_name[name]
        for group_id in ids:
            if group_id not in by_id:
                raise _not_found(group_id)
            chosen[group_id] = by_id[group_id]
        if not chosen:
            default = next((r for r in rows if r.name == DEFAULT_NAME), None)
            if default is None:
                raise _not_found(DEFAULT_NAME)
            chosen[default.id] = default
        if len(chosen) > MAX_GROUPS_PER_INTERFACE:
            raise CloudError(
                "SecurityGroupsPerInterfaceLimitExceeded",
                "The maximum number of security groups per interface has been reached.",
            )
        return [SecurityGroup(r.name, r.id) for r in chosen.values()]

    def members_changed(self, vpc_id: str) -> None:
        """The instances tell this after a committed change of their groups."""
        self.on_change(vpc_id)

    # -- what the node enforces -------------------------------------------------------

    def vpcs_with_groups(self) -> list[str]:
        """Every VPC that has groups: what a node needs in force when it starts."""
        with self.db.session() as session:
            return list(session.scalars(select(SecurityGroupRow.vpc_id).distinct()))

    def vpc_rules(self, vpc_id: str) -> list[GroupRules]:
        """Every group of the VPC with its rules, as the node's firewall takes them."""
        with self.db.session() as session:
            group_ids = list(
                session.scalars(
                    select(SecurityGroupRow.id)
                    .where(SecurityGroupRow.vpc_id == vpc_id)
                    .order_by(SecurityGroupRow.id)
                )
            )
            rules = self._rules(session, group_ids)
        by_group: dict[str, list[RuleSpec]] = {g: [] for g in group_ids}
        for rule in rules:
            by_group[rule.group_id].append(rule.spec)
        return [firewall_rules(g, specs) for g, specs in by_group.items()]

    def vpc_members(self, vpc_id: str) -> dict[str, tuple[str, ...]]:
        """Instance id to its group ids, for the live instances of the VPC."""
        with self.db.session() as session:
            account_id = session.scalar(
                select(SecurityGroupRow.account_id)
                .where(SecurityGroupRow.vpc_id == vpc_id)
                .limit(1)
            )
            if account_id is None:
                return {}
            return self.members.of_vpc(session, account_id, vpc_id)

    # -- inside -----------------------------------------------------------------------

    def _target(
        self, session: Session, account_id: str, group_id: str | None, group_name: str | None
    ) -> SecurityGroupRow:
        """The group a call names: by id, or by name in the default VPC."""
        if group_id:
            _check_group_id(group_id)
            row = session.get(SecurityGroupRow, group_id)
            if row is None or row.account_id != account_id:
                raise _not_found(group_id)
            return row
        if not group_name:
            raise missing_parameter("GroupId")
        row = session.scalar(
            select(SecurityGroupRow).where(
                SecurityGroupRow.vpc_id == default_vpc_id(account_id),
                SecurityGroupRow.name == group_name,
            )
        )
        if row is None:
            raise CloudError(
                "InvalidGroup.NotFound",
                f"The security group '{group_name}' does not exist in default VPC "
                f"'{default_vpc_id(account_id)}'",
            )
        return row

    def _specs(
        self,
        session: Session,
        account_id: str,
        group: SecurityGroupRow,
        egress: bool,
        permissions: Sequence[Permission],
    ) -> list[RuleSpec]:
        """Each permission's rules, one per peer, checked as AWS checks them."""
        specs: list[RuleSpec] = []
        for permission in permissions:
            protocol = protocol_of(permission.protocol)
            low, high = ports_of(protocol, permission.from_port, permission.to_port)
            if not permission.peers:
                raise malformed(
                    "Invalid permission: an IP range, a group or a prefix list must be given"
                )
            for peer in permission.peers:
                check_peer(peer)
                base = RuleSpec(
                    egress, protocol, low, high, description=check_description(peer.description)
                )
                if peer.cidr_ipv4:
                    specs.append(_with(base, cidr_ipv4=cidr_v4(peer.cidr_ipv4)))
                elif peer.cidr_ipv6:
                    specs.append(_with(base, cidr_ipv6=cidr_v6(peer.cidr_ipv6)))
                elif peer.prefix_list_id:
                    if not is_valid_id(peer.prefix_list_id, "pl"):
                        raise CloudError(
                            "InvalidPrefixListId.Malformed",
                            f'Invalid id: "{peer.prefix_list_id}" (expecting "pl-...")',
                        )
                    # karri has no managed prefix lists (nor DescribeManagedPrefixLists):
                    # a rule naming one would hold nothing to enforce
                    raise CloudError(
                        "InvalidPrefixListId.NotFound",
                        f"The prefix list ID '{peer.prefix_list_id}' does not exist",
                    )
                else:
                    peer_group = self._peer_group(session, account_id, group, peer)
                    specs.append(
                        _with(
                            base, peer_group_id=peer_group.id, peer_owner_id=peer_group.account_id
                        )
                    )
        return specs

    @staticmethod
    def _peer_group(
        session: Session, account_id: str, group: SecurityGroupRow, peer: Any
    ) -> SecurityGroupRow:
        """A group named as a peer: the account's own, in the same VPC (another account's
        group would need VPC peering, which karri does not have)."""
        if peer.user_id and peer.user_id != account_id:
            raise _not_found(peer.group_id or peer.group_name)
        if peer.group_id:
            _check_group_id(peer.group_id)
            row = session.get(SecurityGroupRow, peer.group_id)
            if row is None or row.account_id != account_id:
                raise _not_found(peer.group_id)
        else:
            row = session.scalar(
                select(SecurityGroupRow).where(
                    SecurityGroupRow.vpc_id == group.vpc_id,
                    SecurityGroupRow.name == peer.group_name,
                )
            )
            if row is None or row.account_id != account_id:
                raise _not_found(peer.group_name)
        if row.vpc_id != group.vpc_id:
            raise CloudError(
                "InvalidGroup.NotFound",
                "You have specified two resources that belong to different networks.",
            )
        return row

    @staticmethod
    def _check_room(existing: Sequence[RuleView], egress: bool, adding: int) -> None:
        count = sum(1 for r in existing if r.spec.egress == egress)
        if count + adding > MAX_RULES_PER_DIRECTION:
            raise CloudError(
                "RulesPerSecurityGroupLimitExceeded",
                "The maximum number of rules per security group has been reached.",
            )

    def _insert(
        self, session: Session, account_id: str, group_id: str, specs: Sequence[RuleSpec]
    ) -> list[RuleView]:
        seq = session.scalar(select(func.max(SecurityGroupRuleRow.seq))) or 0
        views = []
        for spec in specs:
            seq += 1
            rule_id = new_id("sgr", lambda i: session.get(SecurityGroupRuleRow, i) is not None)
            row = SecurityGroupRuleRow(
                id=rule_id, seq=seq, group_id=group_id, account_id=account_id
            )
            _write_spec(row, spec)
            session.add(row)
            views.append(RuleView(rule_id, group_id, account_id, spec))
        session.flush()
        return views

    def _rules(
        self, session: Session, group_ids: Sequence[str] | Select, *, tags_of: str | None = None
    ) -> list[RuleView]:
        """The rules of the groups (ids, or a query of them); with the tags account
        ``tags_of`` put on them."""
        if not isinstance(group_ids, Select) and not group_ids:
            return []
        r = SecurityGroupRuleRow
        rows = session.execute(  # plain rows: building ORM objects costs 10x more
            select(
                r.id,
                r.group_id,
                r.account_id,
                r.egress,
                r.protocol,
                r.from_port,
                r.to_port,
                r.cidr_ipv4,
                r.cidr_ipv6,
                r.peer_group_id,
                r.peer_owner_id,
                r.prefix_list_id,
                r.description,
            )
            .where(r.group_id.in_(group_ids))
            .order_by(r.seq)
        )
        rules = [RuleView(row[0], row[1], row[2], RuleSpec(*row[3:])) for row in rows]
        if tags_of is None:
            return rules
        tags = self.tags.of(session, [r.rule_id for r in rules], tags_of)
        return [
            RuleView(r.rule_id, r.group_id, r.owner_id, r.spec, r.peer_vpc_id, tags[r.rule_id])
            for r in rules
        ]

    @staticmethod
    def _peer_names(session: Session, ids: Sequence[str] | Select) -> dict[str, str]:
        """Names of the groups the rules of these groups (ids, or a query of them) name as
        peers."""
        if not isinstance(ids, Select) and not ids:
            return {}
        peers = (
            select(SecurityGroupRuleRow.peer_group_id)
            .where(SecurityGroupRuleRow.group_id.in_(ids))
            .where(SecurityGroupRuleRow.peer_group_id.is_not(None))
        )
        found = session.execute(
            select(SecurityGroupRow.id, SecurityGroupRow.name).where(SecurityGroupRow.id.in_(peers))
        )
        return {group_id: name for group_id, name in found}

    def _views(
        self,
        session: Session,
        account_id: str,
        group_ids: Sequence[str] | None = None,
        group_names: Sequence[str] | None = None,
    ) -> list[GroupView]:
        """The account's groups (only these ids or default-VPC names, if given)."""
        g = SecurityGroupRow
        query = select(g.id, g.name, g.description, g.vpc_id).where(g.account_id == account_id)
        if group_ids or group_names:
            query = query.where(
                or_(
                    g.id.in_(list(group_ids or ())),
                    and_(
                        g.vpc_id == default_vpc_id(account_id),
                        g.name.in_(list(group_names or ())),
                    ),
                )
            )
        rows = list(session.execute(query))
        names = {r.id: r.name for r in rows}
        # all of the account's: a subquery, not ~1,000 bound parameters (compiled per call)
        ids = (
            [r.id for r in rows]
            if group_ids or group_names
            else select(g.id).where(g.account_id == account_id)
        )
        names.update(self._peer_names(session, ids))
        rules: dict[str, list[RuleView]] = {r.id: [] for r in rows}
        for rule in self._rules(session, ids):
            rules[rule.group_id].append(rule)
        tags = self.tags.of(session, list(rules), account_id)
        return [
            GroupView(
                r.id,
                r.name,
                r.description,
                r.vpc_id,
                account_id,
                ingress=tuple(x for x in rules[r.id] if not x.spec.egress),
                egress=tuple(x for x in rules[r.id] if x.spec.egress),
                tags=tags[r.id],
                peer_names=names,
            )
            for r in rows
        ]


def _with(base: RuleSpec, **peer: Any) -> RuleSpec:
    return replace(base, **peer)


def _write_spec(row: SecurityGroupRuleRow, spec: RuleSpec) -> None:
    row.egress = spec.egress
    row.protocol = spec.protocol
    row.from_port, row.to_port = spec.from_port, spec.to_port
    row.cidr_ipv4, row.cidr_ipv6 = spec.cidr_ipv4, spec.cidr_ipv6
    row.peer_group_id, row.peer_owner_id = spec.peer_group_id, spec.peer_owner_id
    row.prefix_list_id = spec.prefix_list_id
    row.description = spec.description


def _rule_not_found(rule_id: str) -> CloudError:
    return CloudError(
        "InvalidSecurityGroupRuleId.NotFound",
        f"The security group rule ID '{rule_id}' does not exist",
    )
