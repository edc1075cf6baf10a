"""DescribeInstances' page without ids or filters, as little as names its instances: each
one's id, reservation, owner and ``version`` (which the database's triggers bump whenever
anything the answer shows of it changes), in the answer's order.

A front end that keeps each instance's rendered XML by (id, version) answers from this and
renders only the instances whose version it has not rendered (``api/ec2/instance_fragments.py``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import bindparam, select

from karri.cloud.filters import paginate
from karri.cloud.instances import states
from karri.cloud.instances.models import Instance, Reservation
from karri.db.engine import Database
from karri.db.reads import CompiledQuery


class Listed(NamedTuple):
    id: str
    reservation_id: str
    launch_index: int
    owner_id: str
    """The reservation's account (its ``OwnerId``)."""
    version: int
    state: str
    terminated_at: Any


_LISTING = (
    select(
        Instance.id,
        Instance.reservation_id,
        Instance.launch_index,
        Reservation.account_id.label("owner_id"),
        Instance.version,
        Instance.state,
        Instance.terminated_at,
    )
    .join(Reservation, Reservation.id == Instance.reservation_id)
    .where(Instance.account_id == bindparam("account_id"))
    .order_by(Instance.id)  # as ``paginate`` wants them (it sorts again: cheaply, then)
)


class InstanceListing:
    """The pages of an account's instances, as ``Instances.describe`` pages them."""

    def __init__(self, db: Database) -> None:
        self._query = CompiledQuery(db.engine, _LISTING, Listed)

    def page(
        self, account_id: str, max_results: int | None, next_token: str | None
    ) -> tuple[list[Listed], str | None]:
        """The page's instances by reservation and launch index, and the next token.

        Read outside any transaction: each instance's version is read before anything
        rendered under it (a rendering read later is as new or newer)."""
        rows = [r for r in self._query.rows(account_id=account_id) if states.visible(r)]
        page = paginate(rows, lambda r: r.id, max_results, next_token, kind="instances")
        return sorted(page.items, key=lambda r: (r.reservation_id, r.launch_index)), page.next_token
