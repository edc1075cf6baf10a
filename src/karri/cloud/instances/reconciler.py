"""Drive the node to the state the database asks for, and record what the node reports.

API calls only write intent (``Instance.desired``) and wake the reconciler; it launches,
stops and destroys guests, and moves instances to their next state. After a restart (even
a SIGKILL) it re-adopts the guests still running and resumes unfinished work. The
background-work engine (``karri.cloud.converge``) runs it: the reconciler says which rows
to scan (the instances in a transitional state) and what to do with each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from sqlalchemy import select

from karri.cloud.converge import AsyncConverger, Job, TaskWork
from karri.cloud.instances import states
from karri.cloud.instances.launch import ImageDisks, Placement, metadata_for, placement_of
from karri.cloud.instances.models import Instance
from karri.cloud.instances.node_driver import NodeDriver, NodeFactory
from karri.cloud.instances.service import Capacity, Instances
from karri.db.engine import Database
from karri.node import (
    ExitReason,
    GroupRules,
    InstanceExit,
    InstanceHealth,
    InstanceMetadata,
    NodeError,
    NodeEvent,
    UnknownInstance,
)

log = logging.getLogger("karri.reconciler")

STOP_TIMEOUT = 30.0
PASS_INTERVAL = 5.0
TRANSITIONAL = (states.PENDING, states.SHUTTING_DOWN, states.STOPPING)


class GroupSource(Protocol):
    """The security groups (``cloud.network.groups.SecurityGroups``) the node enforces."""

    def vpcs_with_groups(self) -> list[str]: ...

    def vpc_rules(self, vpc_id: str) -> list[GroupRules]:
        """Every group of the VPC with its rules (a group left out is removed)."""
        ...

    def vpc_members(self, vpc_id: str) -> dict[str, tuple[str, ...]]:
        """Each instance of the VPC and its groups."""
        ...


class PublicAddresses(Protocol):
    """The cloud's choice of public addresses (``cloud.network.addresses.Addresses``)."""

    def assign(self, instance_id: str) -> str | None:
        """Before a launch: the address the instance gets (recorded), or None."""
        ...

    def kept(self, session: Any, instance_id: str) -> str | None:
        """The address a stopped instance keeps (its elastic IP's)."""
        ...

    def forget_instance(self, session: Any, instance_id: str) -> None:
        """A terminated instance's elastic IP is disassociated."""
        ...


class Reconciler:
    """Owns the node on behalf of the cloud: launches, stops, destroys, hears exits."""

    def __init__(
        self,
        db: Database,
        instances: Instances,
        disks: ImageDisks,
        region: str,
        node_factory: NodeFactory,
        groups: GroupSource,
        addresses: PublicAddresses,
    ) -> None:
        self.db = db
        self.addresses = addresses
        self.groups = groups
        # the groups of each instance as the node was last told them
        self._memberships: dict[str, tuple[str, ...]] = {}
        self.instances = instances
        self.disks = disks
        self.region = region
        self.node: NodeDriver = node_factory(self.lookup, self.on_exit, self.on_recovery)
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # One task per instance; a failed transition waits before its next try (per
        # instance and state: a new state starts afresh)
        self._jobs = AsyncConverger(log, "reconcile", scan=self._pass, every=PASS_INTERVAL)
        self._metadata: dict[str, InstanceMetadata] = {}
        # The exit of a guest we stopped ourselves, already recorded: its report from the
        # node may come after the instance was started again (CreateImage's restart).
        self._handled_exits: dict[str, InstanceExit] = {}

    # -- the InstanceDriver side, called from API worker threads ----------------------

    def wake(self) -> None:
        self._jobs.wake()

    def reboot(self, instance_id: str) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self.node.reboot(instance_id), self._loop).result(60)

    def console_output(self, instance_id: str) -> bytes:
        try:
            return self.node.console_output(instance_id)
        except Exception:
            return b""

    def capacity(self) -> Capacity:
        node = self.node.capacity()
        return Capacity(node.vcpus_total, node.memory_mib_total)

    def health(self, instance_id: str) -> InstanceHealth | str:
        if self._loop is None:
            return "the node controller has not started yet"
        try:
            return self.node.health(instance_id)
        except NodeError:
            return "the node does not know this instance (yet)"

    # -- what the node asks of the cloud -------------------------------------------------

    async def lookup(self, instance_id: str) -> InstanceMetadata | None:
        """The metadata service's question (the node found the instance by its VPC and
        source address): what is this instance's metadata?"""
        cached = self._metadata.get(instance_id)
        if cached is not None:
            return cached

        def find(session) -> tuple[Instance | None, Placement | None]:
            instance = session.get(Instance, instance_id)
            if instance is None or instance.state not in states.ACTIVE:
                return None, None
            return instance, placement_of(session, instance.id)

        instance, placement = await self._db(find)
        if instance is None:
            return None
        metadata = metadata_for(instance, self.region, placement)
        if instance.state == states.RUNNING:
            self._metadata[instance_id] = metadata
        return metadata

    # -- security groups: the GroupSource's rules, in force on the node ------------------

    def groups_changed(self, vpc_id: str) -> None:
        """A VPC's groups, rules or members changed (called from API worker threads, after
        the commit): the node has them in force when this returns."""
        if self._loop is None or self._closing:
            return  # not started: start() pushes everything
        asyncio.run_coroutine_threadsafe(self._push_groups(vpc_id), self._loop).result(60)

    async def _push_groups(self, vpc_id: str) -> None:
        """The VPC's rules, then the groups of each of its instances that changed."""
        await self.node.set_groups(vpc_id, await asyncio.to_thread(self.groups.vpc_rules, vpc_id))
        members = await asyncio.to_thread(self.groups.vpc_members, vpc_id)
        for instance_id, group_ids in members.items():
            if self._memberships.get(instance_id) == group_ids:
                continue
            try:
                await self.node.set_instance_groups(instance_id, group_ids)
            except UnknownInstance:
                continue  # not on the node (stopped, or not launched yet): its spec says
            self._memberships[instance_id] = group_ids

    # -- public addresses: what the cloud chose, mapped by the node ---------------------

    def addresses_changed(self, instance_ids: Sequence[str]) -> None:
        """The public address of these instances changed (called from API worker threads,
        after the commit, the instance that lost an address first): in force when this
        returns on those that run."""
        if self._loop is None or self._closing or not instance_ids:
            return  # a launch maps what the row says
        future = asyncio.run_coroutine_threadsafe(self._push_public(instance_ids), self._loop)
        future.result(60)

    async def _push_public(self, instance_ids: Sequence[str]) -> None:
        for instance_id in instance_ids:
            row = await self._db(lambda s, i=instance_id: s.get(Instance, i))
            if row is None or row.state != states.RUNNING:
                continue
            self._metadata.pop(instance_id, None)
            try:
                await self.node.set_public_ip(instance_id, row.public_ip)
            except UnknownInstance:
                continue  # not launched yet: its spec says
            except NodeError:
                log.exception("%s: mapping public address %s failed", instance_id, row.public_ip)

    def on_exit(self, report: InstanceExit) -> None:
        """The node saw a QEMU process end (called on the event loop)."""
        if self._closing:
            return  # handled at the next start, from what the node finds on disk
        if self._handled_exits.pop(report.instance_id, None) == report:
            return  # our own stop, recorded already: the instance may be pending again
        if report.reason in (ExitReason.HOST_SHUTDOWN, ExitReason.HOST_KILLED) and (
            self._jobs.busy(report.instance_id)
        ):
            return  # we are stopping or destroying it ourselves
        self._heard(report.instance_id, lambda: self._exited(report))

    def on_recovery(self, instance_id: str, event: NodeEvent) -> None:
        """The node relaunched an instance on its own: the user sees why in StateReason."""
        log.warning("%s: %s", instance_id, event.description)

        def note(session) -> None:
            row = session.get(Instance, instance_id)
            if row is not None and row.state == states.RUNNING:
                row.state_reason_code = states.SERVER_ERROR
                row.state_reason_message = f"{states.SERVER_ERROR}: {event.description}"

        self._heard(instance_id, lambda: self._db(note))

    def _heard(self, instance_id: str, work: TaskWork) -> None:
        """What the node reported is acted on once the instance's current job ends."""
        self._jobs.submit(Job(instance_id, work), queue=True)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start the node, adopt what kept running, and begin reconciling."""
        self._loop = asyncio.get_running_loop()
        self.instances.driver = self
        for vpc_id in await asyncio.to_thread(self.groups.vpcs_with_groups):  # at adoption
            await self._push_groups(vpc_id)
        report = await self.node.start()
        live = set(report.running)
        for vpc_id in await asyncio.to_thread(self.groups.vpcs_with_groups):
            await self._push_groups(vpc_id)  # the adopted guests' groups, as they are now
        rows = await self._db(
            lambda s: list(
                s.scalars(
                    select(Instance).where(Instance.state.in_((states.RUNNING, states.STOPPING)))
                )
            )
        )
        known_exits = {e.instance_id for e in report.exited}
        for instance in rows:
            if instance.id not in live and instance.id not in known_exits:
                self._heard(
                    instance.id,
                    lambda i=instance.id: self._exited(
                        InstanceExit(
                            i, ExitReason.CRASHED, "the QEMU process was gone after a restart", 0.0
                        )
                    ),
                )
        self.disks.cache.reconcile(
            await self._db(
                lambda s: list(
                    s.scalars(select(Instance.id).where(Instance.state != states.TERMINATED))
                )
            )
        )
        log.info("node ready (%s); %d instance(s) adopted", self.node.accelerator, len(live))
        self._jobs.start()

    async def close(self, stop_instances: bool = False) -> None:
        self._closing = True
        await self._jobs.close()
        await self.node.close(stop_instances=stop_instances)

    async def _pass(self) -> list[Job[TaskWork]]:
        """The engine's scan: a job for each instance in a state with work to do."""
        rows = await self._db(
            lambda s: list(s.scalars(select(Instance).where(Instance.state.in_(TRANSITIONAL))))
        )
        try:
            await asyncio.to_thread(self.instances.forget_expired)
        except Exception:  # a chore of each pass: the transitions go on without it
            log.exception("forgetting expired instances failed")
        return [
            Job(instance.id, partial(self._reconcile, instance.id), step=instance.state)
            for instance in rows
            if self._work_for(instance) is not None
        ]

    def _work_for(self, instance: Instance) -> Callable[[Instance], Awaitable[None]] | None:
        if instance.state == states.PENDING and instance.desired == states.RUNNING:
            return self._launch
        if instance.state == states.SHUTTING_DOWN:
            return self._destroy
        if instance.state == states.STOPPING:
            return self._stop
        return None

    async def _reconcile(self, instance_id: str) -> None:
        """Act on the instance as it is now: the pass's read may predate a finished task."""
        instance = await self._db(lambda s: s.get(Instance, instance_id))
        work = self._work_for(instance) if instance is not None else None
        if work is not None:
            await work(instance)

    # -- the transitions ---------------------------------------------------------------

    async def _launch(self, instance: Instance) -> None:
        try:
            placement = await self._db(lambda s: placement_of(s, instance.id))
            if placement is None:
                raise RuntimeError(f"{instance.id} has no network interface")
            instance.public_ip = await asyncio.to_thread(self.addresses.assign, instance.id)
            spec = await self.disks.spec(instance, placement)
            await self._push_groups(spec.vpc_id)
            info = await self.node.launch(spec)
            self._memberships[instance.id] = spec.security_groups
        except Exception as error:
            log.exception("launch of %s failed", instance.id)
            await self.node.destroy(instance.id)
            self._release(instance)
            await self._finish(
                instance.id,
                states.TERMINATED if instance.root_device_type != "ebs" else states.STOPPED,
                (states.SERVER_ERROR, f"{states.SERVER_ERROR}: launch failed: {error}"),
            )
            return

        def mark(session) -> tuple[bool, str | None]:
            row = session.get(Instance, instance.id)
            if row is None or row.state != states.PENDING:
                return False, None
            row.state = states.RUNNING
            # an elastic IP associated during the launch wins over what the node took
            row.public_ip = self.addresses.kept(session, row.id) or info.public_ip
            row.boot_count += 1
            return True, row.public_ip

        self._metadata.pop(instance.id, None)
        marked, public_ip = await self._db(mark)
        if not marked:
            self.wake()  # terminated or stopped meanwhile: the next pass undoes the launch
        elif public_ip != info.public_ip:
            await self._push_public([instance.id])  # associated meanwhile

    async def _destroy(self, instance: Instance) -> None:
        self._handled_exits.pop(instance.id, None)
        self._memberships.pop(instance.id, None)
        await self.node.destroy(instance.id)
        self._release(instance)
        await self._finish(instance.id, states.TERMINATED, None)

    def _release(self, instance: Instance) -> None:
        """Give back the instance's disks; a failure leaves files behind, never the
        instance stuck between two states."""
        try:
            self.disks.release(instance)
        except Exception:
            log.exception("releasing the disks of %s failed", instance.id)

    async def _stop(self, instance: Instance) -> None:
        self._handled_exits[instance.id] = await self.node.shutdown(instance.id, STOP_TIMEOUT)
        await self._finish(instance.id, states.STOPPED, None)

    async def _finish(self, instance_id: str, state: str, reason: tuple[str, str] | None) -> None:
        def update(session) -> None:
            row = session.get(Instance, instance_id)
            if row is None:
                return
            self._metadata.pop(row.id, None)
            row.state = row.desired = state
            if reason:
                row.state_reason_code, row.state_reason_message = reason
            if state == states.STOPPED:
                row.public_ip = self.addresses.kept(session, row.id)  # an elastic IP stays
            if state == states.TERMINATED:
                row.public_ip = None
                self.addresses.forget_instance(session, row.id)
                row.terminated_at = datetime.now(UTC)
                row.private_ip = row.mac = None
                self.instances.release_interfaces(session, [row.id])

        await self._db(update)

    async def _exited(self, report: InstanceExit) -> None:
        """A guest ended on its own: stopped (EBS, per its shutdown behaviour) or terminated."""
        row = await self._db(lambda s: s.get(Instance, report.instance_id))
        if row is None or row.state not in (states.RUNNING, states.STOPPING, states.PENDING):
            return
        ebs = row.root_device_type == "ebs"
        if report.reason in (ExitReason.GUEST_SHUTDOWN, ExitReason.HOST_SHUTDOWN):
            reason = states.GUEST_INITIATED
            stop = ebs and row.shutdown_behavior == "stop"
        else:
            reason = (
                states.SERVER_ERROR,
                f"{states.SERVER_ERROR}: {report.detail or report.reason}",
            )
            stop = ebs
        if stop:
            await self._finish(row.id, states.STOPPED, reason)
            return
        await self.node.destroy(row.id)
        self._release(row)
        await self._finish(row.id, states.TERMINATED, reason)

    async def _db(self, work: Callable[[Any], Any]) -> Any:
        def run() -> Any:
            with self.db.session() as session:
                return work(session)

        return await asyncio.to_thread(run)
