"""Network ACLs: CreateNetworkAcl, DeleteNetworkAcl, CreateNetworkAclEntry,
ReplaceNetworkAclEntry, DeleteNetworkAclEntry, ReplaceNetworkAclAssociation, by AWS's
rules, and what the node enforces of them (``subnet_acls``: ``node/acls.py``).

Every subnet has exactly one ACL (its VPC's default one until moved). An ACL's entries are
numbered 1-32766 per direction; the ``*`` rule (32767, deny all) of each direction is
stored like the others, so Describe shows it, but no call can touch it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from karri.cloud.network.cidrs import parse_cidr
from karri.cloud.network.layout import ALL, DENY_ALL_RULE
from karri.cloud.network.models import (
    NetworkAcl,
    NetworkAclAssociation,
    NetworkAclEntry,
    Subnet,
)
from karri.cloud.network.views import NetworkAclView
from karri.cloud.network.vpc_changes import dependency, owned, owned_vpc
from karri.cloud.network.vpc_parts import VpcPartService
from karri.cloud.network.vpcs import NETWORK_ACL
from karri.errors import CloudError, invalid_value, missing_parameter, unsupported
from karri.ids import is_valid_id, new_id
from karri.node import AclEntry, SubnetAcl

MAX_ENTRIES = 20  # per direction and ACL, the ``*`` rule aside (AWS's default quota)
ACTIONS = ("allow", "deny")
_PROTOCOL_NAMES = {"all": "-1", "tcp": "6", "udp": "17", "icmp": "1"}
_PORTED = ("6", "17")
ICMP = "1"


@dataclass(frozen=True)
class EntrySpec:
    """An entry as a request gives it (the API layer's wire members, unchecked)."""

    rule_number: Any
    egress: Any
    protocol: Any
    rule_action: Any
    cidr_block: Any = None
    ipv6_cidr_block: Any = None
    port_from: Any = None
    port_to: Any = None
    icmp_type: Any = None
    icmp_code: Any = None


def _entry_not_found(egress: bool, number: int) -> CloudError:
    direction = "egress" if egress else "ingress"
    return CloudError(
        "InvalidNetworkAclEntry.NotFound", f"no {direction} entry with number {number}"
    )


def _rule_number(value: Any) -> int:
    if value is None:
        raise missing_parameter("RuleNumber")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < DENY_ALL_RULE:
        raise invalid_value(
            f"Value ({value}) for parameter ruleNumber is invalid. "
            f"Rule number must be between 1 and {DENY_ALL_RULE - 1}."
        )
    return value


def _egress(value: Any) -> bool:
    if value is None:
        raise missing_parameter("Egress")
    if not isinstance(value, bool):
        raise invalid_value(f"Value ({value}) for parameter egress is invalid.")
    return value


def _port(value: Any, member: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise invalid_value(f"Value ({value}) for parameter {member} is invalid.")
    return value


def _icmp(value: Any, member: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value <= 255:
        raise invalid_value(f"Value ({value}) for parameter {member} is invalid.")
    return value


def checked_entry(spec: EntrySpec) -> dict[str, Any]:
    """The entry's columns, after AWS's checks of what was asked."""
    number = _rule_number(spec.rule_number)
    egress = _egress(spec.egress)
    if spec.protocol is None or spec.protocol == "":
        raise missing_parameter("Protocol")
    protocol = _PROTOCOL_NAMES.get(str(spec.protocol).lower(), str(spec.protocol))
    if protocol != "-1" and not (protocol.isdigit() and 0 <= int(protocol) <= 255):
        raise invalid_value(f"Value ({spec.protocol}) for parameter protocol is invalid.")
    if spec.rule_action is None:
        raise missing_parameter("RuleAction")
    action = str(spec.rule_action).lower()
    if action not in ACTIONS:
        raise invalid_value(f"Value ({spec.rule_action}) for parameter ruleAction is invalid.")
    if spec.ipv6_cidr_block:  # karri's networks are IPv4 only (networking.md)
        raise unsupported("IPv6 CIDR blocks are not supported in this region.")
    if not spec.cidr_block:
        raise missing_parameter("CidrBlock")
    columns: dict[str, Any] = {
        "rule_number": number,
        "egress": egress,
        "protocol": protocol,
        "rule_action": action,
        "cidr_block": str(parse_cidr(spec.cidr_block, "cidrBlock")),
        "port_from": None,
        "port_to": None,
        "icmp_type": None,
        "icmp_code": None,
    }
    if protocol in _PORTED:
        if spec.port_from is None or spec.port_to is None:
            raise missing_parameter("PortRange")
        low, high = _port(spec.port_from, "portRange.from"), _port(spec.port_to, "portRange.to")
        if low > high:
            raise invalid_value(
                f"Value ({low}-{high}) for parameter portRange is invalid: from must not exceed to."
            )
        columns["port_from"], columns["port_to"] = low, high
    elif protocol == ICMP:
        if spec.icmp_type is None or spec.icmp_code is None:
            raise missing_parameter("IcmpTypeCode")
        columns["icmp_type"] = _icmp(spec.icmp_type, "icmpTypeCode.type")
        columns["icmp_code"] = _icmp(spec.icmp_code, "icmpTypeCode.code")
    return columns


def node_entry(row: NetworkAclEntry) -> AclEntry:
    return AclEntry(
        rule_number=row.rule_number,
        egress=row.egress,
        protocol=int(row.protocol),
        allow=row.rule_action == "allow",
        cidr=row.cidr_block,
        port_from=row.port_from,
        port_to=row.port_to,
        icmp_type=row.icmp_type,
        icmp_code=row.icmp_code,
    )


def subnet_acls(session: Session, vpc_id: str) -> list[SubnetAcl]:
    """Each subnet of the VPC (its CIDR) with its ACL's entries (``*`` left implicit)."""
    acl_of = dict(
        session.execute(
            select(NetworkAclAssociation.subnet_id, NetworkAclAssociation.network_acl_id)
            .join(Subnet, Subnet.id == NetworkAclAssociation.subnet_id)
            .where(Subnet.vpc_id == vpc_id)
        ).all()
    )
    entries: dict[str, list[AclEntry]] = {}
    for row in session.scalars(
        select(NetworkAclEntry).where(
            NetworkAclEntry.network_acl_id.in_(set(acl_of.values())),
            NetworkAclEntry.rule_number < DENY_ALL_RULE,
        )
    ):
        entries.setdefault(row.network_acl_id, []).append(node_entry(row))
    subnets = session.scalars(select(Subnet).where(Subnet.vpc_id == vpc_id).order_by(Subnet.id))
    return [
        SubnetAcl(s.cidr_block, tuple(entries.get(acl_of[s.id], ())))
        for s in subnets
        if s.id in acl_of
    ]


class NetworkAcls(VpcPartService):
    """``on_change``: what a subnet's ACL lets through changed (``subnet_acls``)."""

    def subnet_acls(self, vpc_id: str) -> list[SubnetAcl]:
        with self.db.session() as session:
            return subnet_acls(session, vpc_id)

    # -- ACLs ------------------------------------------------------------------------

    def create(
        self, account_id: str, vpc_id: str | None, tags: Mapping[str, str] | None = None
    ) -> NetworkAclView:
        """A new ACL has only the ``*`` rules: it denies everything (AWS's rule)."""
        with self.db.write_session() as session:
            vpc = owned_vpc(session, account_id, vpc_id)
            acl_id = new_id("acl", lambda i: session.get(NetworkAcl, i) is not None)
            session.add(NetworkAcl(id=acl_id, account_id=account_id, vpc_id=vpc.id))
            session.flush()
            for egress in (False, True):
                session.add(
                    NetworkAclEntry(
                        network_acl_id=acl_id,
                        rule_number=DENY_ALL_RULE,
                        egress=egress,
                        protocol="-1",
                        rule_action="deny",
                        cidr_block=ALL,
                    )
                )
            if tags:
                self.tags.put(session, account_id, [acl_id], dict(tags))
        return self.vpcs.describe_network_acls(account_id, [acl_id]).items[0]

    def delete(self, account_id: str, acl_id: str | None) -> None:
        with self.db.write_session() as session:
            acl = self._acl(session, account_id, acl_id)
            if acl.is_default:
                raise invalid_value(f"cannot delete default network ACL {acl.id}")
            if session.scalar(
                select(NetworkAclAssociation.id).where(
                    NetworkAclAssociation.network_acl_id == acl.id
                )
            ):
                raise dependency("networkAcl", acl.id)
            session.execute(delete(NetworkAclEntry).where(NetworkAclEntry.network_acl_id == acl.id))
            self.tags.forget(session, [acl.id])
            session.delete(acl)

    # -- entries ---------------------------------------------------------------------

    def create_entry(self, account_id: str, acl_id: str | None, spec: EntrySpec) -> None:
        with self.db.write_session() as session:
            acl = self._acl(session, account_id, acl_id)
            columns = checked_entry(spec)
            number, egress = columns["rule_number"], columns["egress"]
            if self._entry(session, acl.id, egress, number) is not None:
                raise CloudError(
                    "NetworkAclEntryAlreadyExists",
                    f"The network acl entry identified by {number} already exists.",
                )
            count = session.scalar(
                select(func.count()).where(
                    NetworkAclEntry.network_acl_id == acl.id,
                    NetworkAclEntry.egress.is_(egress),
                    NetworkAclEntry.rule_number < DENY_ALL_RULE,
                )
            )
            if (count or 0) >= MAX_ENTRIES:
                raise CloudError(
                    "NetworkAclEntryLimitExceeded",
                    f"The maximum number of entries for network ACL {acl.id} has been reached.",
                )
            session.add(NetworkAclEntry(network_acl_id=acl.id, **columns))
            vpc_id = acl.vpc_id
        self.on_change(vpc_id)

    def replace_entry(self, account_id: str, acl_id: str | None, spec: EntrySpec) -> None:
        with self.db.write_session() as session:
            acl = self._acl(session, account_id, acl_id)
            columns = checked_entry(spec)
            entry = self._entry(session, acl.id, columns["egress"], columns["rule_number"])
            if entry is None:
                raise _entry_not_found(columns["egress"], columns["rule_number"])
            for name, value in columns.items():
                setattr(entry, name, value)
            vpc_id = acl.vpc_id
        self.on_change(vpc_id)

    def delete_entry(
        self, account_id: str, acl_id: str | None, rule_number: Any, egress: Any
    ) -> None:
        with self.db.write_session() as session:
            acl = self._acl(session, account_id, acl_id)
            number, egress = _rule_number(rule_number), _egress(egress)
            entry = self._entry(session, acl.id, egress, number)
            if entry is None:
                raise _entry_not_found(egress, number)
            session.delete(entry)
            vpc_id = acl.vpc_id
        self.on_change(vpc_id)

    # -- associations ----------------------------------------------------------------

    def replace_association(
        self, account_id: str, association_id: str | None, acl_id: str | None
    ) -> str:
        """The subnet moves to another ACL of its VPC: a new association id, as on AWS."""
        if not association_id:
            raise missing_parameter("AssociationId")
        with self.db.write_session() as session:
            association = (
                session.get(NetworkAclAssociation, association_id)
                if is_valid_id(association_id, "aclassoc")
                else None
            )
            subnet = session.get(Subnet, association.subnet_id) if association else None
            if association is None or subnet is None or subnet.account_id != account_id:
                raise CloudError(
                    "InvalidAssociationID.NotFound",
                    f"The association ID '{association_id}' does not exist",
                )
            acl = self._acl(session, account_id, acl_id)
            if acl.vpc_id != subnet.vpc_id:
                raise invalid_value(
                    f"Network ACL {acl.id} and subnet {subnet.id} belong to different networks"
                )
            subnet_id = association.subnet_id
            session.delete(association)
            session.flush()
            new = new_id("aclassoc", lambda i: session.get(NetworkAclAssociation, i) is not None)
            session.add(NetworkAclAssociation(id=new, network_acl_id=acl.id, subnet_id=subnet_id))
            vpc_id = acl.vpc_id
        self.on_change(vpc_id)
        return new

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _acl(session: Session, account_id: str, acl_id: str | None) -> NetworkAcl:
        return owned(session, NETWORK_ACL, account_id, acl_id)

    @staticmethod
    def _entry(session: Session, acl_id: str, egress: bool, number: int) -> NetworkAclEntry | None:
        return session.scalar(
            select(NetworkAclEntry).where(
                NetworkAclEntry.network_acl_id == acl_id,
                NetworkAclEntry.egress.is_(egress),
                NetworkAclEntry.rule_number == number,
            )
        )
