"""The instances' driver of a standby front end (``cloud/leadership.py``): it serves the
API while another front end runs the reconciler. What a call asks of a node now (console
output, status checks, a reboot) goes straight to the instance's joined node through its
agent, with the cloud's client certificate, as the leader's would; the rest is in the
database, which the leader polls: ``wake`` does nothing (its reconciler passes every few
seconds). RunInstances places instances on the ENABLED joined nodes with an agent address
(the leader connects them; an instance of a node it cannot reach waits there). A node's
reports to a standby's gateway go to ``StandbyHearer``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

from karri.cloud.instances import exits, failover
from karri.cloud.instances.fleet import BROKEN, SCHEDULABLE, Connection, NodeListing
from karri.cloud.instances.launch import read_metadata
from karri.cloud.instances.placement import NodeName, NodeSlot
from karri.db.engine import Database
from karri.node import (
    InstanceExit,
    InstanceHealth,
    InstanceMetadata,
    NodeError,
    NodeEvent,
    ProfileMetadata,
)

T = TypeVar("T")
log = logging.getLogger("karri.standby")


class Directory(Protocol):
    """The joined nodes (``cloud/nodes/directory.py``)."""

    def listed(self) -> list[NodeListing]: ...
    def connect(self, name: str, url: str) -> Connection: ...


class StandbyDriver:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def wake(self) -> None:
        """Nothing: the leader finds the work in the database at its next pass."""

    def slots(self) -> list[NodeSlot]:
        return [
            NodeSlot(n.name, n.zone, n.vcpus, n.memory_mib)
            for n in sorted(self.directory.listed(), key=lambda n: n.name)
            if n.state == SCHEDULABLE and n.agent_url
        ]

    def node_broken(self, node: NodeName) -> bool:
        return self._listing(node, BROKEN) is not None

    def health(self, instance_id: str, node: NodeName) -> InstanceHealth | str:
        broken = self._listing(node, BROKEN)
        if broken is not None:
            return failover.broken_health(instance_id, broken)
        try:
            return self._call(node, lambda remote: remote.health(instance_id))
        except NodeError:
            return "the node does not know this instance (yet)"

    def console_output(self, instance_id: str, node: NodeName) -> bytes:
        try:
            return self._call(node, lambda remote: remote.console_output(instance_id))
        except NodeError:
            return b""

    def reboot(self, instance_id: str, node: NodeName) -> None:
        remote = self._remote(node)

        async def reboot() -> None:
            try:
                await remote.reboot(instance_id)
            finally:
                await remote.disconnect()

        asyncio.run(reboot())

    def _listing(self, node: NodeName, state: str | None = None) -> NodeListing | None:
        if node is None:
            return None
        found = next((n for n in self.directory.listed() if n.name == node), None)
        return found if found is not None and state in (None, found.state) else None

    def _remote(self, node: NodeName) -> Connection:
        listing = self._listing(node)
        if listing is None or not listing.agent_url:
            raise NodeError(f"node {node or '(the cloud own)'} is not reachable from here")
        return self.directory.connect(listing.name, listing.agent_url)

    def _call(self, node: NodeName, call: Callable[[Connection], T]) -> T:
        """``call`` with the node's synchronous calls (on the API's thread)."""
        remote = self._remote(node)
        try:
            return call(remote)
        finally:
            asyncio.run(remote.disconnect())


class ProfileSource(Protocol):
    """The IAM instance profiles' metadata (``profiles.InstanceProfiles``): blocking."""

    def metadata(self, instance_id: str) -> ProfileMetadata | None: ...


class StandbyHearer:
    """What a standby's node gateway hands a node's reports to (``nodes/reports.py``): a
    node reports to the front end it joined through, which may not lead. Metadata is read
    from the database (the leader's reconciler caches it; this one does not); an end or a
    relaunch is recorded as intent (``exits.record``) that the leader finishes."""

    def __init__(self, db: Database, region: str, profiles: ProfileSource | None) -> None:
        self.db, self.region, self.profiles = db, region, profiles

    async def lookup(self, instance_id: str) -> InstanceMetadata | None:
        def read() -> InstanceMetadata | None:
            with self.db.session() as session:
                metadata = read_metadata(session, instance_id, self.region)[0]
            iam = self.profiles.metadata(instance_id) if metadata and self.profiles else None
            return dataclasses.replace(metadata, iam=iam) if metadata and iam else metadata

        return await asyncio.to_thread(read)

    def on_exit(self, report: InstanceExit) -> None:
        self._write(lambda session: exits.record(session, report))

    def on_recovery(self, instance_id: str, event: NodeEvent) -> None:
        self._write(lambda session: exits.note_recovery(session, instance_id, event))

    def _write(self, work: Callable[[Session], None]) -> None:
        """Called on the gateway's event loop: written off it, in the background."""

        def write() -> None:
            with self.db.write_session() as session:
                work(session)

        future = asyncio.get_running_loop().run_in_executor(None, write)
        future.add_done_callback(_logged)


def _logged(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a node's report was not recorded", exc_info=future.exception())
