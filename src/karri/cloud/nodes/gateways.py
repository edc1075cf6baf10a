"""The cloud's node gateways: each front end with a node port (``karri up --node-port``)
announces the URL nodes reach it at every ``REFRESH`` seconds while it runs, and
withdraws it when it stops; one not heard of for ``LIVE`` is taken for dead. Each
heartbeat's answer lists the live ones, so a node whose gateway dies goes on through
another (``node/gateways.py``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from karri.cloud.nodes.models import GatewayRow
from karri.db.engine import Database

REFRESH = 10.0  # seconds between a front end's announcements
LIVE = timedelta(seconds=3 * REFRESH)  # a gateway unheard of for longer is dead

log = logging.getLogger("karri.nodes")


def _now() -> datetime:
    return datetime.now(UTC)


class GatewayRegistry:
    def __init__(self, db: Database, clock: Callable[[], datetime] = _now) -> None:
        self.db = db
        self.clock = clock

    def announce(self, url: str) -> None:
        """``url``'s gateway lives (now); the long dead are forgotten meanwhile."""
        now = self.clock()
        with self.db.write_session() as session:
            session.execute(delete(GatewayRow).where(GatewayRow.seen_at < now - 10 * LIVE))
            row = session.get(GatewayRow, url)
            if row is None:
                session.add(GatewayRow(url=url, seen_at=now))
            else:
                row.seen_at = now

    def withdraw(self, url: str) -> None:
        with self.db.write_session() as session:
            session.execute(delete(GatewayRow).where(GatewayRow.url == url))

    def live(self) -> list[str]:
        """The gateways heard of within ``LIVE``, in a stable order."""
        since = self.clock() - LIVE
        with self.db.session() as session:
            query = select(GatewayRow.url).where(GatewayRow.seen_at >= since)
            return list(session.scalars(query.order_by(GatewayRow.url)))

    async def announcing(self, url: str, every: float = REFRESH) -> None:
        """Announce ``url`` every ``every`` seconds until cancelled (a failed announcement
        is logged and tried again at the next)."""
        while True:
            try:
                await asyncio.to_thread(self.announce, url)
            except Exception as error:  # the database away for a while: next time
                log.warning("cannot announce the node gateway %s: %s", url, error)
            await asyncio.sleep(every)
