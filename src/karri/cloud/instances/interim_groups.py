"""The security groups the node enforces until the cloud keeps groups and their rules.

INTERIM: there is no rules table yet. Every account's default VPC has its ``default``
group (the id ``default_group`` gives), and here it allows ALL ingress and ALL egress, so
that instances stay reachable as before groups were enforced (SSH through the public
address, ping between an account's instances). The plumbing is real: the node filters
every instance by these rules in the kernel; what is missing is the rules themselves.
The security-group service replaces ``OpenDefaultGroupsInterim`` by its own
``GroupSource`` (AWS's rules: the default group admits its own members only).
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select

from karri.cloud.instances.groups import default_group
from karri.cloud.network.defaults import default_vpc_id
from karri.db.engine import Database
from karri.db.models import Account
from karri.node.firewall import GroupRules, Rule


class GroupSource(Protocol):
    """Where the reconciler gets the groups to hand the node, per VPC."""

    def vpcs(self) -> list[str]:
        """The VPCs whose groups the node needs at its start."""
        ...

    def rules(self, vpc_id: str) -> list[GroupRules]:
        """Every group of the VPC with its rules (a group left out is removed)."""
        ...


EVERYTHING = (Rule("-1", cidrs=("0.0.0.0/0",)),)


class OpenDefaultGroupsInterim:
    """INTERIM ``GroupSource``: each account's default VPC has one group, ``default``,
    open to all ingress and all egress."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _accounts_by_vpc(self) -> dict[str, str]:
        with self.db.session() as session:
            return {default_vpc_id(a): a for a in session.scalars(select(Account.id))}

    def vpcs(self) -> list[str]:
        return sorted(self._accounts_by_vpc())

    def rules(self, vpc_id: str) -> list[GroupRules]:
        account_id = self._accounts_by_vpc().get(vpc_id)
        if account_id is None:
            return []
        return [GroupRules(default_group(account_id).group_id, EVERYTHING, EVERYTHING)]
