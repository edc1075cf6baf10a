"""Which instances are members of which security groups: read from the instances' own
``security_groups`` column (the groups of their primary interface), so that rows written
before groups were modelled are members of their account's ``default`` group as they are.

An instance row written before instances recorded their VPC is in its account's default
VPC; ``vpc_of`` is the one place that says so."""

from __future__ import annotations

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from karri.cloud.instances import states
from karri.cloud.instances.groups import groups_of, parsed
from karri.cloud.instances.models import Instance
from karri.cloud.network.defaults import default_vpc_id
from karri.cloud.network.models import NetworkInterface


def vpc_of(instance: Instance) -> str:
    """The VPC an instance is in."""
    return getattr(instance, "vpc_id", None) or default_vpc_id(instance.account_id)


class InstanceMembers:
    """The members of groups, as the groups service asks about them."""

    def users(self, session: Session, account_id: str, group_id: str) -> list[str]:
        """The instances (not terminated) and the interfaces of their own that use the
        group."""
        interfaces = session.scalars(
            select(NetworkInterface).where(
                NetworkInterface.account_id == account_id,
                NetworkInterface.security_groups.is_not(None),
                cast(NetworkInterface.security_groups, String).contains(group_id),
            )
        )
        return [
            i.id
            for i in self._live(session, account_id, group_id)
            if group_id in {g.group_id for g in groups_of(i)}
        ] + [
            n.id for n in interfaces if group_id in {g.group_id for g in parsed(n.security_groups)}
        ]

    def of_vpc(self, session: Session, account_id: str, vpc_id: str) -> dict[str, tuple[str, ...]]:
        """Instance id to its group ids, for the live instances of a VPC."""
        return {
            i.id: tuple(g.group_id for g in groups_of(i))
            for i in self._live(session, account_id, None)
            if vpc_of(i) == vpc_id
        }

    @staticmethod
    def _live(session: Session, account_id: str, group_id: str | None) -> list[Instance]:
        query = select(Instance).where(
            Instance.account_id == account_id, Instance.state != states.TERMINATED
        )
        if group_id is not None:  # a cheap first cut; the caller checks the parsed column
            query = query.where(cast(Instance.security_groups, String).contains(group_id))
        return list(session.scalars(query))
