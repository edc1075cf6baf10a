"""Identity documents signed for joined nodes (``CloudContract.sign_identity``).

The cloud's identity key never leaves the cloud: a node on another host asks, through the
gateway, for the instance it serves metadata to. The cloud signs only for the node the
instance is placed on (``Placements``, the certificate's name: a node acts only for its
own instances), and only the document it builds itself from its records of the instance
(``identity_document`` over ``read_metadata``, the same rendering the node serves), never
anything the node sent.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from karri.cloud.instances.launch import read_metadata
from karri.cloud.nodes.reports import Placements
from karri.db.engine import Database
from karri.node.identity import IdentitySigner, SignedIdentity
from karri.node.metadata import InstanceMetadata, identity_document


class IdentityRecords(Protocol):
    def metadata(self, instance_id: str) -> InstanceMetadata | None:
        """The live instance as the cloud's records have it (None: unknown, or not live).
        Blocking."""
        ...


class InstanceRecords:
    """``IdentityRecords`` from the database."""

    def __init__(self, db: Database, region: str) -> None:
        self.db, self.region = db, region

    def metadata(self, instance_id: str) -> InstanceMetadata | None:
        with self.db.session() as session:
            return read_metadata(session, instance_id, self.region)[0]


class IdentitySigning:
    def __init__(
        self, placements: Placements, records: IdentityRecords, signer: IdentitySigner
    ) -> None:
        self.placements, self.records, self.signer = placements, records, signer

    async def sign(self, node: str, instance_id: str) -> SignedIdentity | None:
        """The instance's document and its views, for ``node`` (None: the instance is not
        live on that node)."""

        def signed() -> SignedIdentity | None:
            if not node or self.placements.node_of(instance_id) != node:
                return None
            metadata = self.records.metadata(instance_id)
            if metadata is None:
                return None
            return self.signer.sign(identity_document(metadata))

        return await asyncio.to_thread(signed)
