"""Drive the node to the state the database asks for, and record what the node reports.

API calls only write intent (``Instance.desired``) and wake the reconciler; it launches,
stops and destroys guests, and moves instances to their next state. After a restart (even
a SIGKILL) it re-adopts the guests still running and resumes unfinished work. The
background-work engine (``karri.cloud.converge``) runs it: the reconciler says which rows
to scan (the instances in a transitional state) and what to do with each.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import select

from karri.cloud.converge import AsyncConverger, Job, NotYet, TaskWork
from karri.cloud.instances import exits, failover, nic_settling, overlays, states
from karri.cloud.instances.coalesce import Batched, Coalesced
from karri.cloud.instances.fleet import Fleet, NodeDirectory, NodeNotConnected
from karri.cloud.instances.launch import (
    READ_BATCH,
    ImageDisks,
    Placement,
    placements_of,
    read_metadata,
)
from karri.cloud.instances.models import Instance
from karri.cloud.instances.node_driver import NodeDriver, NodeFactory
from karri.cloud.instances.placement import NodeName, NodeSlot
from karri.cloud.instances.service import Instances
from karri.db.engine import Database
from karri.node import (
    AddressTaken,
    AdoptReport,
    ExitReason,
    GroupRules,
    InstanceExit,
    InstanceHealth,
    InstanceMetadata,
    NatGateway,
    NatGatewayReport,
    NodeError,
    NodeEvent,
    NodeUnreachable,
    Overlay,
    ProfileMetadata,
    Resolver,
    SubnetAcl,
    UnknownInstance,
    VmState,
    VpcRoutes,
)

log = logging.getLogger("karri.reconciler")

STOP_TIMEOUT = 30.0
PASS_INTERVAL = 5.0
TRANSITIONAL = (states.PENDING, states.SHUTTING_DOWN, states.STOPPING)
PUBLIC_TRIES = 4
RECORD_BATCH = 100  # changes of instances written in one write session (``_recorded``)

R = TypeVar("R")


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

    def assigning(self, session: Any, instance_ids: Sequence[str]) -> set[str]:
        """Those of these instances whose address ``assign`` may change (the others have
        none and get none)."""
        ...

    def masquerade(self, vpc_id: str) -> str | None:
        """The VPC's outbound masquerade address (chosen and recorded now if it has
        instances and none yet), or None."""
        ...

    def kept(self, session: Any, instance_id: str) -> str | None:
        """The address a stopped instance keeps (its elastic IP's)."""
        ...

    def forget_instance(self, session: Any, instance_id: str) -> None:
        """A terminated instance's elastic IP is disassociated."""
        ...

    def taken_elsewhere(self, instance_id: str, public_ip: str) -> str | None:
        """The node found ``public_ip`` held by another owner on the host: recorded; the
        instance's next address to try (an automatic one), or None."""
        ...


class Routing(Protocol):
    """Which subnets reach outside, and the routes to interfaces
    (``cloud.network.route_tables.RouteTables``)."""

    def internet_subnets(self, vpc_id: str) -> list[str]: ...
    def vpc_routes(self, vpc_id: str) -> VpcRoutes: ...


class NatGatewaySource(Protocol):
    """The VPCs' NAT gateways (``cloud.network.nat_gateways.NatGateways``): blocking."""

    def node_gateways(self, vpc_id: str) -> list[NatGateway]: ...
    def unsettled_vpcs(self) -> list[str]: ...
    def observe(self, vpc_id: str, report: NatGatewayReport) -> None: ...


class ProfileSource(Protocol):
    """The IAM instance profiles' metadata (``profiles.InstanceProfiles``): blocking."""

    def metadata(self, instance_id: str) -> ProfileMetadata | None: ...


class AclSource(Protocol):
    """The network ACL of each subnet (``cloud.network.network_acls.NetworkAcls``)."""

    def subnet_acls(self, vpc_id: str) -> list[SubnetAcl]: ...


class DhcpSource(Protocol):
    """What each VPC's DHCP and DNS server serves (``cloud.network.dhcp_options``)."""

    def vpc_dhcp(self, vpc_id: str) -> dict[str, tuple[str, ...]]: ...
    def vpc_resolver(self, vpc_id: str) -> Resolver | None: ...


class Reconciler:
    """Owns the nodes on behalf of the cloud: launches, stops, destroys, hears exits.
    ``node`` is the cloud's own (None without one: ``node_factory`` None, `karri up
    --no-local-node`); ``fleet`` adds the joined nodes of ``directory``, each instance's
    calls going to its node (``Instance.node``). ``resync_every`` (seconds, or None): how
    often each VPC with instances on joined nodes gets its whole state again (groups,
    routes, ACLs, DHCP), for changes another front end recorded without telling the nodes
    (a standby: ``cloud/leadership.py``)."""

    def __init__(
        self,
        db: Database,
        instances: Instances,
        disks: ImageDisks,
        region: str,
        node_factory: NodeFactory | None,
        groups: GroupSource,
        addresses: PublicAddresses,
        routing: Routing | None = None,
        profiles: ProfileSource | None = None,
        acls: AclSource | None = None,
        dhcp: DhcpSource | None = None,
        nat_gateways: NatGatewaySource | None = None,
        zone: str | None = None,
        directory: NodeDirectory | None = None,
        node_address: str | None = None,
        resync_every: float | None = None,
    ) -> None:
        self.db = db
        self.resync_every = resync_every
        self._resynced = 0.0  # the loop's time of the last resync
        self._resync_asked = False  # ``resync``: at the next pass, every VPC in use
        self.nat_gateways = nat_gateways
        self.profiles = profiles
        self.addresses = addresses
        self.groups = groups
        self.routing = routing
        self.acls = acls
        self.dhcp = dhcp
        # per VPC: a push reads the database and applies what it read under it, so that
        # of two pushes the one that read later applies later (never a stale state last)
        self._push_locks: dict[str, asyncio.Lock] = {}
        self._pushes = Coalesced()
        # changes written together (``_recorded``), on a thread of their own
        self._records: Batched[tuple[str, Callable[[Any], Any]], Any] = Batched(
            self._write_changes, self._write_change, RECORD_BATCH, _each_alone("recording")
        )
        self._recorder = ThreadPoolExecutor(1, thread_name_prefix="karri-recorder")
        # what the launches (and other transitions) of a wave read, read together
        self._rows: Batched[str, Instance | None] = self._reads(_rows_of, "instances")
        self._preparing: Batched[str, _Preparing] = self._reads(self._prepare, "launches")
        self._node_started = asyncio.Event()
        # the groups of each instance as the node was last told them
        self._memberships: dict[str, tuple[str, ...]] = {}
        self.instances = instances
        self.disks = disks
        self.region = region
        self.node: NodeDriver | None = (
            node_factory(self.lookup, self.on_exit, self.on_recovery) if node_factory else None
        )
        self.fleet = Fleet(
            self.node, zone or f"{region}-1a", directory, self._connected, node_address
        )
        # what each node was last told of each VPC (its ports elsewhere, routes, ACLs, DHCP
        # options, resolver, groups): (VPC, node, what) -> the value; a launch pushes the
        # VPC's state, and a joined node told it already is not told again (200 launches
        # in one VPC were 200 rounds of every push to every node, one after the other)
        self._told: dict[tuple[str, NodeName, str], object] = {}
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

    def resync(self) -> None:
        """Every VPC with live instances told its whole state at the next pass (called
        from any thread: by a listener for push requests that may have missed some)."""
        self._resync_asked = True
        self.wake()

    def interfaces_changed(self, instance_id: str) -> None:
        """An instance's interfaces or their addresses changed (called from API worker
        threads, after the commit): attachments are settled, its metadata read anew, its
        secondary addresses in force on the node when this returns."""
        self._metadata.pop(instance_id, None)
        self.wake()
        try:
            self._push_now(lambda: self._push_addresses(instance_id))
        except Exception:  # recorded: the node gets them at the instance's next launch
            log.exception("secondary addresses of %s", instance_id)
        vpc_id = _in_session(
            self.db.session, lambda s: getattr(s.get(Instance, instance_id), "vpc_id", None)
        )
        if vpc_id:  # an interface attached may forward, or not
            self.routes_changed(vpc_id)

    async def _push_addresses(self, instance_id: str) -> None:
        addresses = await self._db(lambda s: nic_settling.addresses_of(s, instance_id))
        node = await self._driver_of(instance_id)
        for interface_id, secondary in addresses.items():
            try:
                await node.set_private_addresses(instance_id, interface_id, secondary)
            except UnknownInstance:
                return  # not on the node: its next launch takes them along
            except NodeError:  # recorded all the same; the node has what it had
                log.exception("secondary addresses of %s", instance_id)

    def reboot(self, instance_id: str, node: NodeName = None) -> None:
        assert self._loop is not None
        driver = self.fleet.driver(node)
        asyncio.run_coroutine_threadsafe(driver.reboot(instance_id), self._loop).result(60)

    def console_output(self, instance_id: str, node: NodeName = None) -> bytes:
        try:
            return self.fleet.driver(node).console_output(instance_id)
        except Exception:
            return b""

    def slots(self) -> list[NodeSlot]:
        return self.fleet.slots()

    def node_broken(self, node: NodeName) -> bool:
        return self.fleet.broken(node) is not None

    def health(self, instance_id: str, node: NodeName = None) -> InstanceHealth | str:
        if self._loop is None:
            return "the node controller has not started yet"
        broken = self.fleet.broken(node)
        if broken is not None:  # nothing observed since its last heartbeat
            return failover.broken_health(instance_id, broken)
        try:
            return self.fleet.driver(node).health(instance_id)
        except NodeError:
            return "the node does not know this instance (yet)"

    def volume_node(self, instance_id: str) -> tuple[NodeDriver, NodeName]:
        """The instance's node and its name, for the EBS worker (``VolumeRouting``;
        called from its threads)."""
        if not self.fleet.remotes and self.node is not None:
            return self.node, None
        with self.db.session() as session:
            name = _node_of(session, instance_id)
        return self.fleet.driver(name), name

    async def _driver_of(self, instance_id: str) -> NodeDriver:
        """The driver of the instance's node (the cloud's own without joined nodes)."""
        if not self.fleet.remotes and self.node is not None:
            return self.node
        return self.fleet.driver(await self._db(lambda s: _node_of(s, instance_id)))

    async def _vpc_nodes(self, vpc_id: str) -> tuple[list[NodeName], dict[str, _Placed]]:
        """The nodes that get the VPC's state (the cloud's own, None, and each joined node
        hosting an instance of it), and the node of each of its live instances."""
        if not self.fleet.remotes:
            return self.fleet.connected([]), {}
        placed = await self._db(lambda s: _vpc_placements(s, vpc_id))
        return self.fleet.connected([p.node for p in placed.values()]), placed

    async def _tell(
        self,
        vpc_id: str,
        what: str,
        value: object,
        send: Callable[[NodeDriver], Awaitable[None]],
        names: Sequence[NodeName] | None = None,
        own_too: bool = False,
    ) -> None:
        """``send`` the VPC's ``value`` of ``what`` to each node that gets the VPC's state
        (or ``names``) and was not told that value last (``_told``; a node connected
        anew is told everything again, ``_connected``). The cloud's own node, in process
        and cheap to tell, is told every time unless ``own_too``. The nodes are told at
        the same time; it returns once each has answered, raising the first failure.

        A joined node that is BROKEN, or does not answer, is passed over (and logged): it
        is told everything when it is connected again, or at the next push or resync
        (``_told`` keeps what it was last told), and one dead node does not fail what the
        others are told, nor the launches of their instances."""

        async def tell(name: NodeName) -> None:
            try:
                await send(self.fleet.driver(name))
            except NodeUnreachable as error:
                if name is None:
                    raise
                log.warning("%s of %s not told to node %s: %s", what, vpc_id, name, error)
                return
            self._told[(vpc_id, name, what)] = value

        told = []
        for name in (await self._vpc_nodes(vpc_id))[0] if names is None else names:
            key = (vpc_id, name, what)
            remembered = name is not None or own_too
            if remembered and key in self._told and self._told[key] == value:
                continue
            if self.fleet.broken(name) is None:
                told.append(tell(name))
        for outcome in await asyncio.gather(*told, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    # -- what the node asks of the cloud -------------------------------------------------

    async def lookup(self, instance_id: str) -> InstanceMetadata | None:
        """The metadata service's question (the node found the instance by its VPC and
        source address): what is this instance's metadata? Its profile's credentials come
        fresh from ``profiles`` (which caches and renews them) at every request."""
        metadata = await self._metadata_of(instance_id)
        if metadata is None or self.profiles is None:
            return metadata
        iam = await asyncio.to_thread(self.profiles.metadata, instance_id)
        return dataclasses.replace(metadata, iam=iam) if iam else metadata

    async def _metadata_of(self, instance_id: str) -> InstanceMetadata | None:
        cached = self._metadata.get(instance_id)
        if cached is not None:
            return cached

        metadata, running = await self._db(lambda s: read_metadata(s, instance_id, self.region))
        if running:
            self._metadata[instance_id] = metadata
        return metadata

    # -- security groups: the GroupSource's rules, in force on the node ------------------

    def groups_changed(self, vpc_id: str) -> None:
        """A VPC's groups, rules or members changed (called from API worker threads, after
        the commit): the node has them in force when this returns."""
        self._push_now(lambda: self._push_groups(vpc_id))

    def nat_gateways_changed(self, vpc_id: str) -> None:
        """A NAT gateway came or is going (called from API worker threads, after the
        commit): the node is told in the background; the gateway stays ``pending`` (or
        ``deleting``) until it reports."""
        if self._loop is None or self._closing:
            return  # not started: start() pushes everything

        async def after_start() -> None:
            await self._node_started.wait()
            try:
                await self._push_routes(vpc_id)
            except Exception:
                log.exception("NAT gateways of %s", vpc_id)

        asyncio.run_coroutine_threadsafe(after_start(), self._loop)

    def routes_changed(self, vpc_id: str) -> None:
        """Which of a VPC's subnets reach outside may have changed (called from API worker
        threads, after the commit): in force on the node when this returns."""
        self._push_now(lambda: self._push_routes(vpc_id))

    def acls_changed(self, vpc_id: str) -> None:
        """A subnet's network ACL changed (called from API worker threads, after the
        commit): in force on the node when this returns."""
        self._push_now(lambda: self._push_acls(vpc_id))

    def dhcp_changed(self, vpc_id: str) -> None:
        """The VPC's DHCP option set changed: its DHCP server hands it out when this
        returns (guests see it at their next lease)."""
        self._push_now(lambda: self._push_dhcp(vpc_id))

    def _push_now(self, push: Callable[[], Awaitable[None]]) -> None:
        """Run ``push`` on the loop and wait for it. While the node is still starting, it
        waits for the start first: the namespaces kept from before a restart are adopted
        with what the node was told before, and a change told meanwhile would otherwise
        return before the kernel had it."""
        if self._loop is None or self._closing:
            return  # not started: start() pushes everything

        async def after_start() -> None:
            await self._node_started.wait()
            await push()

        asyncio.run_coroutine_threadsafe(after_start(), self._loop).result(60)

    # -- a VPC's pushes: each caller waits for a push begun after its call, shared with
    # the callers that came meanwhile (``coalesce.py``); one push of a kind at a time

    async def _push_acls(self, vpc_id: str) -> None:
        await self._pushes(("acls", vpc_id), partial(self._send_acls, vpc_id))

    async def _push_dhcp(self, vpc_id: str) -> None:
        await self._pushes(("dhcp", vpc_id), partial(self._send_dhcp, vpc_id))

    async def _push_routes(self, vpc_id: str) -> None:
        await self._pushes(("routes", vpc_id), partial(self._send_routes, vpc_id))

    async def _push_groups(self, vpc_id: str) -> None:
        """The VPC's whole state (``_send_groups``)."""
        await self._pushes(("groups", vpc_id), partial(self._send_groups, vpc_id))

    async def _push_overlays(self, vpc_id: str) -> None:
        await self._pushes(("overlays", vpc_id), partial(self._send_overlays, vpc_id))

    async def _send_acls(self, vpc_id: str) -> None:
        if self.acls is not None:
            async with self._push_locks.setdefault(vpc_id, asyncio.Lock()):
                acls = await asyncio.to_thread(self.acls.subnet_acls, vpc_id)
                await self._tell(vpc_id, "acls", acls, lambda n: n.set_network_acls(vpc_id, acls))

    async def _send_dhcp(self, vpc_id: str) -> None:
        if self.dhcp is not None:
            async with self._push_locks.setdefault(vpc_id, asyncio.Lock()):
                options = await asyncio.to_thread(self.dhcp.vpc_dhcp, vpc_id)
                resolver = await asyncio.to_thread(self.dhcp.vpc_resolver, vpc_id)
                nodes = (await self._vpc_nodes(vpc_id))[0]  # read once for both
                await self._tell(
                    vpc_id, "resolver", resolver, lambda n: n.set_resolver(vpc_id, resolver), nodes
                )
                await self._tell(
                    vpc_id, "dhcp", options, lambda n: n.set_dhcp_options(vpc_id, options), nodes
                )

    async def _send_routes(self, vpc_id: str) -> None:
        if self.routing is not None:
            async with self._push_locks.setdefault(vpc_id, asyncio.Lock()):
                subnets = await asyncio.to_thread(self.routing.internet_subnets, vpc_id)
                masquerade = await asyncio.to_thread(self.addresses.masquerade, vpc_id)
                routes = await asyncio.to_thread(self.routing.vpc_routes, vpc_id)
                nodes = (await self._vpc_nodes(vpc_id))[0]  # read once for both
                await self._tell(
                    vpc_id,
                    "internet",
                    (subnets, masquerade),
                    lambda n: n.set_internet_subnets(vpc_id, subnets, masquerade),
                    nodes,
                )
                await self._tell(
                    vpc_id, "routes", routes, lambda n: n.set_vpc_routes(vpc_id, routes), nodes
                )
                if self.nat_gateways is not None:  # on the cloud's own node
                    await self._push_nat_gateways(self.nat_gateways, vpc_id)

    async def _push_nat_gateways(self, source: NatGatewaySource, vpc_id: str) -> None:
        """The VPC's NAT gateways to the node, and what it reports back to their states."""
        if self.node is None:  # NAT gateways run on the cloud's own node: refused without
            return
        gateways = await asyncio.to_thread(source.node_gateways, vpc_id)
        report = await self.node.set_nat_gateways(vpc_id, gateways)
        if report is not None:
            await asyncio.to_thread(source.observe, vpc_id, report)

    async def _send_groups(self, vpc_id: str) -> None:
        """The VPC's rules (and the subnets that reach outside, their network ACLs, its
        DHCP options),
        then the groups of each of its instances that changed."""
        await self._push_routes(vpc_id)
        await self._push_acls(vpc_id)
        await self._push_dhcp(vpc_id)
        rules = await asyncio.to_thread(self.groups.vpc_rules, vpc_id)
        nodes, placed = await self._vpc_nodes(vpc_id)
        await self._tell(vpc_id, "groups", rules, lambda n: n.set_groups(vpc_id, rules), nodes)
        members = await asyncio.to_thread(self.groups.vpc_members, vpc_id)
        for instance_id, group_ids in members.items():
            where = placed.get(instance_id, _OWN)
            if self._memberships.get(instance_id) == group_ids:
                continue
            if where.pending and instance_id not in self._memberships:
                continue  # never launched here: its spec says, and its launch records them
            if self.fleet.broken(where.node) is not None:
                continue  # told when it is connected again (``_connected``)
            try:
                node = self.fleet.driver(where.node)
                await node.set_instance_groups(instance_id, group_ids)
            except (NodeNotConnected, NodeUnreachable):
                continue  # told at the next push: one dead node fails no launch elsewhere
            except UnknownInstance:  # not on the node (stopped, or not launched yet): its
                pass  # spec says, and its launch records them (asked once, not per launch)
            self._memberships[instance_id] = group_ids
        cards = await self._db(lambda s: nic_settling.card_groups(s, vpc_id))
        for (instance_id, interface_id), group_ids in cards.items():
            if self._memberships.get(interface_id) == group_ids:
                continue
            where = placed.get(instance_id, _OWN)
            if self.fleet.broken(where.node) is not None:
                continue
            try:
                node = self.fleet.driver(where.node)
                await node.set_interface_groups(instance_id, interface_id, group_ids)
            except (UnknownInstance, NodeNotConnected, NodeUnreachable):
                continue
            self._memberships[interface_id] = group_ids
        await self._push_overlays(vpc_id)

    async def _send_overlays(self, vpc_id: str) -> None:
        """Each node that gets the VPC's state told of the VPC's ports on the other nodes
        (``overlays.py``), when that changed since it was last told. Nothing without
        joined nodes."""
        if not self.fleet.remotes:
            return
        async with self._push_locks.setdefault(vpc_id, asyncio.Lock()):
            links = await self._db(lambda s: overlays.vpc_links(s, vpc_id))
            ports = await self._db(lambda s: overlays.vpc_ports(s, vpc_id))
            own: list[NodeName] = [None] if self.node is not None else []
            names = [*own, *sorted({p.node for p in ports if p.node in self.fleet.remotes})]
            addresses = await asyncio.to_thread(lambda: {n: self.fleet.address(n) for n in names})

            async def tell(name: NodeName, overlay: Overlay) -> None:
                send = partial(_set_overlay, vpc_id, overlay)
                try:
                    await self._tell(vpc_id, "overlay", overlay, send, [name], own_too=True)
                except NodeError:  # told again at the next pass
                    log.exception("overlay of %s on node %s", vpc_id, name or "(own)")

            found = overlays.overlays(addresses, links, ports)  # each node's, at the same time
            await asyncio.gather(*(tell(name, overlay) for name, overlay in found.items()))

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
                await self._map_public(self.fleet.driver(row.node), instance_id, row.public_ip)
            except UnknownInstance:
                continue  # not launched yet: its spec says
            except NodeError:
                log.exception("%s: mapping public address %s failed", instance_id, row.public_ip)

    async def _map_public(self, node: NodeDriver, instance_id: str, want: str | None) -> str | None:
        """Have the node map ``want``, the cloud's choice. An address another owner on
        the host holds (another karri) is recorded as such and an automatic one replaced;
        what the node maps in the end is what the instance's row says."""
        for _ in range(PUBLIC_TRIES):
            if want is None:
                break
            try:
                return await node.set_public_ip(instance_id, want)
            except AddressTaken:
                log.warning("%s: %s is held by another owner on the host", instance_id, want)
                want = await asyncio.to_thread(self.addresses.taken_elsewhere, instance_id, want)
        await node.set_public_ip(instance_id, None)

        def record(session) -> None:
            row = session.get(Instance, instance_id)
            if row is not None and row.state == states.RUNNING:
                row.public_ip = None

        await self._write(record)
        return None

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
        self._heard(
            instance_id, lambda: self._write(lambda s: exits.note_recovery(s, instance_id, event))
        )

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
        report = await self.node.start() if self.node is not None else AdoptReport((), ())
        self._node_started.set()
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
        await self._adopted([r for r in rows if r.node is None], report)
        if self.node is not None:
            log.info("node ready (%s); %d instance(s) adopted", self.node.accelerator, len(live))
        await self.fleet.refresh()  # the joined nodes, connected in the background
        self._jobs.start()

    async def _adopted(self, rows: Sequence[Instance], report: AdoptReport) -> None:
        """What a node found at its start, against the running (or stopping) ``rows``
        placed on it: an instance it neither runs nor reported ended is gone."""
        live = set(report.running)
        # an address another owner on the host took while no karri ran: the truth recorded
        await self._push_public([r.id for r in rows if r.id in live and r.public_ip])
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

    async def _connected(self, name: str, node: NodeDriver, report: AdoptReport) -> None:
        """A joined node was reached (``Fleet``): it gets the state of each VPC it hosts,
        and what it adopted is checked against the instances placed on it."""

        def placed(session) -> list[Instance]:
            return list(
                session.scalars(
                    select(Instance).where(Instance.node == name, Instance.state.in_(states.ACTIVE))
                )
            )

        rows = await self._db(placed)
        for key in [k for k in self._told if k[1] == name]:
            del self._told[key]  # it may have restarted: told everything again
        for vpc_id in sorted({r.vpc_id for r in rows if r.vpc_id}):
            await self._push_groups(vpc_id)
        live = [r for r in rows if r.state in (states.RUNNING, states.STOPPING)]
        told = set(report.running) | {e.instance_id for e in report.exited}
        # a node started before (the cloud reconnects) reports nothing: ask it
        running = [r.id for r in live if r.id not in told and await _runs(node, r.id)]
        report = AdoptReport((*report.running, *running), report.exited)
        await self._adopted(live, report)
        wanted = {r.id for r in rows}
        for instance_id in [i for i in report.running if i not in wanted]:
            # ended (or moved) by the cloud while the node was not heard: the cloud wins
            log.warning("node %s: %s is not wanted there any more: ended", name, instance_id)
            try:
                await node.destroy(instance_id)
            except NodeError:
                log.exception("node %s: ending %s", name, instance_id)
        self.wake()  # launches that waited for it

    async def close(self, stop_instances: bool = False) -> None:
        self._closing = True
        await self._jobs.close()
        await self.fleet.close()  # joined nodes run on
        if self.node is not None:
            await self.node.close(stop_instances=stop_instances)
        self._recorder.shutdown(wait=False)

    async def _pass(self) -> list[Job[TaskWork]]:
        """The engine's scan: a job for each instance in a state with work to do."""
        rows = await self._db(
            lambda s: list(s.scalars(select(Instance).where(Instance.state.in_(TRANSITIONAL))))
        )
        try:
            await asyncio.to_thread(self.instances.forget_expired)
        except Exception:  # a chore of each pass: the transitions go on without it
            log.exception("forgetting expired instances failed")
        try:
            await self.fleet.refresh()
        except Exception:  # the registry unreadable now: the nodes connected stay so
            log.exception("reading the joined nodes failed")
        jobs = [
            Job(instance.id, partial(self._reconcile, instance.id), step=instance.state)
            for instance in rows
            if self._work_for(instance) is not None
        ]
        unsettled = await self._db(nic_settling.unsettled)
        jobs += [
            Job(f"eni:{i}", partial(self._settle_interface, i), step=status)
            for i, status in unsettled
        ]
        if self.fleet.remotes:  # ports that came or went on joined nodes: told to the others
            vpcs = await self._db(_vpcs_on_joined_nodes)
            jobs += [Job(f"vx:{v}", partial(self._push_overlays, v), step="vx") for v in vpcs]
        if self.nat_gateways is not None:  # a gateway still pending or deleting: tell again
            vpcs = await asyncio.to_thread(self.nat_gateways.unsettled_vpcs)
            jobs += [Job(f"nat:{v}", partial(self._push_routes, v), step="nat") for v in vpcs]
        return jobs + await self._resyncs()

    async def _resyncs(self) -> list[Job[TaskWork]]:
        """Every ``resync_every`` seconds, a job per VPC with instances on joined nodes
        that tells them its whole state again (``_push_groups``); once ``resync`` asked,
        one per VPC with live instances on any node, and one that has each running
        instance with a public address mapped (as a node's connection does)."""
        now = asyncio.get_running_loop().time()
        asked, self._resync_asked = self._resync_asked, False
        due = self.resync_every is not None and now - self._resynced >= self.resync_every
        if not (asked or due):
            return []
        self._resynced = now
        vpcs = await self._db(partial(_vpcs_in_use, joined_only=not asked))
        jobs = [Job(f"sync:{v}", partial(self._push_groups, v), step="sync") for v in vpcs]
        if asked:
            addressed = await self._db(_running_with_public_ips)
            jobs.append(Job("sync:public", partial(self._push_public, addressed), step="sync"))
        return jobs

    def _work_for(self, instance: Instance) -> Callable[[Instance], Awaitable[None]] | None:
        if instance.state == states.PENDING and instance.desired == states.RUNNING:
            return self._launch
        if instance.state == states.SHUTTING_DOWN:
            return self._destroy
        if instance.state == states.STOPPING:
            return self._stop
        return None

    async def _reconcile(self, instance_id: str) -> None:
        """Act on the instance as it is now: the pass's read may predate a finished task
        (read after this call, with the other instances' of the pass: ``Batched``)."""
        instance = await self._rows(instance_id)
        work = self._work_for(instance) if instance is not None else None
        if work is not None:
            try:
                await work(instance)
            except NodeNotConnected as error:  # its node is not reached (yet): wait for it
                raise NotYet(str(error)) from None

    # -- the transitions ---------------------------------------------------------------

    async def _launch(self, instance: Instance) -> None:
        node = self.fleet.driver(instance.node)  # not connected (yet): the next pass
        if self.fleet.broken(instance.node) is not None:
            raise NotYet(f"node {instance.node} is BROKEN")
        try:
            prepared = await self._preparing(instance.id)  # with the wave's other launches
            placement = prepared.placement
            if placement is None:
                raise RuntimeError(f"{instance.id} has no network interface")
            instance.public_ip = (  # most launches have no address to record
                await asyncio.to_thread(self.addresses.assign, instance.id)
                if prepared.assigning
                else None
            )
            spec = await self.disks.spec(instance, placement)
            await self._push_groups(spec.vpc_id)
            info = await node.launch(spec)
            self._memberships[instance.id] = spec.security_groups
            observed = info.public_ip
            if instance.public_ip and observed != instance.public_ip:  # held elsewhere
                want = await asyncio.to_thread(
                    self.addresses.taken_elsewhere, instance.id, instance.public_ip
                )
                observed = await self._map_public(node, instance.id, want)
        except Exception as error:
            log.exception("launch of %s failed", instance.id)
            await node.destroy(instance.id)
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
            nic_settling.launched(session, row.id, spec.cards)
            # an elastic IP associated during the launch wins over what the node maps (and is
            # mapped next); the one launched with is recorded only if the node mapped it
            kept = self.addresses.kept(session, row.id)
            row.public_ip = kept if kept not in (None, instance.public_ip) else observed
            row.boot_count += 1
            return True, row.public_ip

        self._metadata.pop(instance.id, None)
        marked, public_ip = await self._recorded(instance.id, mark)
        if not marked:
            self.wake()  # terminated or stopped meanwhile: the next pass undoes the launch
        elif public_ip != observed:
            await self._push_public([instance.id])  # associated meanwhile

    async def _settle_interface(self, interface_id: str) -> None:
        """Hot-plug or unplug an extra interface of a running instance, then record it
        (``nic_settling.py``)."""
        settling = await self._db(lambda s: nic_settling.plan(s, interface_id))
        if settling is None:
            return
        node = await self._driver_of(settling.instance_id) if settling.on_node else None
        if node is not None and settling.status == nic_settling.ATTACHING:
            await node.attach_interface(settling.instance_id, settling.card)
            self._memberships[interface_id] = settling.card.security_groups
        elif node is not None:
            await node.detach_interface(settling.instance_id, interface_id)
            self._memberships.pop(interface_id, None)
        await self._write(lambda s: nic_settling.settle(s, settling))
        self._metadata.pop(settling.instance_id, None)

    async def _destroy(self, instance: Instance) -> None:
        self._handled_exits.pop(instance.id, None)
        self._memberships.pop(instance.id, None)
        if self.fleet.broken(instance.node) is None:
            node = self.fleet.driver(instance.node)
            await node.destroy(instance.id)  # the node gives back its cached images
        else:  # its node is not heard from: the cloud records the end, and ends the guest
            await self.disks.release(instance.id)  # there if the node comes back
        await self._finish(instance.id, states.TERMINATED, None)
        if instance.vpc_id:  # its ports are gone from the other nodes too
            await self._push_overlays(instance.vpc_id)

    async def _stop(self, instance: Instance) -> None:
        if self.fleet.broken(instance.node) is not None:
            if not failover.forced(instance):
                raise NotYet(f"node {instance.node} is BROKEN: StopInstances Force=true")
            await self.disks.release(instance.id)  # its volumes start elsewhere
            await self._finish(instance.id, states.STOPPED, None)
            return
        node = self.fleet.driver(instance.node)
        self._handled_exits[instance.id] = await node.shutdown(instance.id, STOP_TIMEOUT)
        await self._finish(instance.id, states.STOPPED, None)
        if instance.vpc_id:
            await self._push_overlays(instance.vpc_id)

    async def _finish(self, instance_id: str, state: str, reason: tuple[str, str] | None) -> None:
        """The instance's new state, once the node holds nothing of it: its interfaces,
        addresses and volumes settle in the same transaction (a client that sees
        ``terminated`` sees its kept volumes ``available``); a terminated one leaves its
        groups, and the node gets the VPC's memberships as the cloud now sees them. The
        NBD exports of its volumes end (a stopped volume's file may then grow, and its
        next start exports it anew, at its new size)."""
        if state in (states.STOPPED, states.TERMINATED):
            await self.disks.release(instance_id)

        def update(session) -> str | None:
            row = session.get(Instance, instance_id)
            if row is None:
                return None
            self._metadata.pop(row.id, None)
            row.state = row.desired = state
            if reason:
                row.state_reason_code, row.state_reason_message = reason
            if state == states.STOPPED:
                row.public_ip = self.addresses.kept(session, row.id)  # an elastic IP stays
                self.instances.settle_stopped(session, row.id)
            if state == states.TERMINATED:
                row.public_ip = None
                self.addresses.forget_instance(session, row.id)
                row.terminated_at = datetime.now(UTC)
                row.private_ip = row.mac = None
                self.instances.release_terminated(session, [row.id])
                return row.vpc_id
            return None

        left_vpc = await self._write(update)
        if left_vpc is not None:
            self._memberships.pop(instance_id, None)
            try:
                await self._push_groups(left_vpc)
            except NodeError:
                log.exception("%s: pushing the groups of %s failed", instance_id, left_vpc)

    async def _exited(self, report: InstanceExit) -> None:
        """A guest ended on its own: stopped (EBS, per its shutdown behaviour) or
        terminated; one the node ended to move it (its disks kept) goes through
        ``pending`` again, once (``exits.py``)."""
        row = await self._db(lambda s: s.get(Instance, report.instance_id))
        found = exits.outcome(row, report) if row is not None else None
        if row is None or found is None:
            return
        if found.action == exits.RELAUNCH:
            log.warning("%s: relaunched (%s)", row.id, report.detail)
            self._memberships.pop(row.id, None)
            await self._write(lambda s: exits.relaunch(s, row.id, found.reason))
            self.wake()
        elif found.action == exits.STOP:
            await self._finish(row.id, states.STOPPED, found.reason)
        else:
            await self.fleet.driver(row.node).destroy(row.id)
            await self._finish(row.id, states.TERMINATED, found.reason)

    async def _recorded(self, instance_id: str, change: Callable[[Any], Any]) -> Any:
        """``change(session)`` of the instance, written with the other changes recorded at
        the same time, up to ``RECORD_BATCH`` in one write session on a thread of its own
        (a wave of launches recording ``running`` takes the write lock a few times, not
        once per instance, and never long enough to keep the nodes' heartbeats out); its
        result. Should a shared session fail, each of its changes is written on its own,
        and only those that fail raise (``Batched``)."""
        return await self._records((instance_id, change))

    async def _write_changes(self, changes: list[tuple[str, Callable[[Any], Any]]]) -> list[Any]:
        ids = [instance_id for instance_id, _change in changes]

        def write(session) -> list[Any]:
            # the rows in the session at once: each change's own ``get`` reads none
            session.scalars(select(Instance).where(Instance.id.in_(ids))).all()
            return [change(session) for _instance_id, change in changes]

        return await self._record(write)

    async def _write_change(self, change: tuple[str, Callable[[Any], Any]]) -> Any:
        return await self._record(change[1])

    def _reads(
        self, read: Callable[[Any, list[str]], dict[str, R]], what: str
    ) -> Batched[str, R | None]:
        """``read(session, ids)`` of the instances whose callers came at the same time,
        in one session; each caller gets its instance's (None: not found)."""

        async def many(ids: list[str]) -> list[R | None]:
            found = await self._db(lambda s: read(s, sorted(set(ids))))
            return [found.get(i) for i in ids]

        async def one(instance_id: str) -> R | None:
            return (await self._db(lambda s: read(s, [instance_id]))).get(instance_id)

        return Batched(many, one, READ_BATCH, _each_alone(what))

    def _prepare(self, session, instance_ids: list[str]) -> dict[str, _Preparing]:
        """What the launches of these instances read before they call their nodes."""
        placements = placements_of(session, instance_ids)
        assigning = self.addresses.assigning(session, instance_ids)
        return {i: _Preparing(placements.get(i), i in assigning) for i in instance_ids}

    async def _record(self, work: Callable[[Any], Any]) -> Any:
        """``_write`` on the recorder's own thread: a batch of records does not queue
        behind the reads of the launches still preparing (the loop's default executor)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._recorder, _in_session, self.db.write_session, work)

    async def _db(self, work: Callable[[Any], Any]) -> Any:
        """``work(session)`` in a thread: reads."""
        return await asyncio.to_thread(_in_session, self.db.session, work)

    async def _write(self, work: Callable[[Any], Any]) -> Any:
        """``work(session)`` in a thread, holding the write lock: it reads the state it
        changes (an API call's concurrent change is seen, never overwritten)."""
        return await asyncio.to_thread(_in_session, self.db.write_session, work)


async def _set_overlay(vpc_id: str, overlay: Overlay, node: NodeDriver) -> None:
    await node.set_overlay(vpc_id, overlay)


async def _runs(node: NodeDriver, instance_id: str) -> bool:
    """Whether the node runs the instance (its synchronous ``info``, off the loop)."""
    try:
        info = await asyncio.to_thread(node.info, instance_id)
    except UnknownInstance:
        return False
    return info.state == VmState.RUNNING


def _node_of(session, instance_id: str) -> NodeName:
    return session.scalar(select(Instance.node).where(Instance.id == instance_id))


def _vpcs_on_joined_nodes(session) -> list[str]:
    """The VPCs that have a live instance on a joined node."""
    return _vpcs_in_use(session, joined_only=True)


def _vpcs_in_use(session, joined_only: bool) -> list[str]:
    """The VPCs that have a live instance (on a joined node only: ``joined_only``)."""
    query = select(Instance.vpc_id).where(Instance.state.in_(states.ACTIVE))
    if joined_only:
        query = query.where(Instance.node.is_not(None))
    return sorted(v for (v,) in session.execute(query.distinct()) if v)


def _running_with_public_ips(session) -> list[str]:
    query = select(Instance.id).where(
        Instance.state == states.RUNNING, Instance.public_ip.is_not(None)
    )
    return list(session.scalars(query))


def _rows_of(session, instance_ids: list[str]) -> dict[str, Instance]:
    return {r.id: r for r in session.scalars(select(Instance).where(Instance.id.in_(instance_ids)))}


def _each_alone(what: str) -> Callable[[int], None]:
    """What a ``Batched`` logs (in its ``except``) when a batch failed."""

    def failed(count: int) -> None:
        log.exception("%s: %d at once failed: each alone", what, count)

    return failed


class _Preparing(NamedTuple):
    """What a launch reads first (``Reconciler._prepare``): where its interfaces are, and
    whether ``PublicAddresses.assign`` may change its address."""

    placement: Placement | None
    assigning: bool


class _Placed(NamedTuple):
    """Where a live instance of a VPC is, and whether it is ``pending``."""

    node: NodeName
    pending: bool


_OWN = _Placed(None, False)  # without joined nodes: the cloud's own node, state not read


def _vpc_placements(session, vpc_id: str) -> dict[str, _Placed]:
    """The node of each live instance of the VPC."""
    rows = session.execute(
        select(Instance.id, Instance.node, Instance.state).where(
            Instance.vpc_id == vpc_id, Instance.state.in_(states.ACTIVE)
        )
    )
    return {i: _Placed(node, state == states.PENDING) for i, node, state in rows}


def _in_session(
    session_of: Callable[[], contextlib.AbstractContextManager[Any]], work: Callable[[Any], Any]
) -> Any:
    with session_of() as session:
        return work(session)
