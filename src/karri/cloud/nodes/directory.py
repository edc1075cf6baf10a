"""The registry as the reconciler's ``NodeDirectory``: each joined node with its state,
zone, agent address and room (its host's vCPUs and memory from its heartbeats, times the
cloud's over-commit), and a ``RemoteNode`` to reach it with the cloud's client
certificate (``NodeCA.cloud_identity``)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from karri.cloud.instances import states
from karri.cloud.instances.fleet import NodeListing
from karri.cloud.instances.models import Instance
from karri.cloud.nodes.registry import Nodes
from karri.cloud.nodes.remote import RemoteNode
from karri.db.engine import Database
from karri.pki import client_context


class RegistryDirectory:
    def __init__(
        self, nodes: Nodes, data_dir: Path, cpu_overcommit: float, memory_overcommit: float
    ) -> None:
        self.nodes = nodes
        self.cpu_overcommit = cpu_overcommit
        self.memory_overcommit = memory_overcommit
        cert, key = nodes.ca.cloud_identity(data_dir)
        self._tls = (nodes.ca.cert_path, cert, key)

    def listed(self) -> list[NodeListing]:
        return [
            NodeListing(
                n.name,
                n.zone,
                n.state,
                n.agent_url,
                int(n.vcpus * self.cpu_overcommit),
                int(n.memory_mib * self.memory_overcommit),
                n.last_seen.timestamp() if n.last_seen else None,
            )
            for n in self.nodes.list()
        ]

    def connect(self, name: str, url: str) -> RemoteNode:
        return RemoteNode(name, url, client_context(*self._tls))


class InstanceNodes:
    """Which node each instance is on (``reports.Placements``; ``karri node list``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def node_of(self, instance_id: str) -> str | None:
        with self.db.session() as session:
            return session.scalar(select(Instance.node).where(Instance.id == instance_id))

    def counts(self) -> dict[str | None, int]:
        """How many live instances each node holds (None: the cloud's own)."""
        with self.db.session() as session:
            rows = session.execute(
                select(Instance.node, func.count())
                .where(Instance.state.in_(states.ACTIVE))
                .group_by(Instance.node)
            )
            return {node: count for node, count in rows}
