"""The cloud signs identity documents for joined nodes (``cloud/nodes/identity.py``): only
for the node an instance is placed on, only the document it builds from its own records
(a fake of the records and placements here, the real signer and key), and reaches a node
through the gateway with its certificate (``CloudLink.sign_identity``)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

from karri.cloud.nodes.identity import IdentitySigning
from karri.node import InstanceMetadata
from karri.node.identity import IdentitySigner
from karri.node.metadata import identity_document
from tests.node.signing import check_signature, identity_key, pkcs7_content

KEY = identity_key()
CERT = KEY.certificate_pem
PLACED = {"i-1": "n1", "i-2": "n2", "i-own": None}


def record(instance_id: str) -> InstanceMetadata:
    return InstanceMetadata(
        instance_id, "123456789012", "eucalyptus", "eucalyptus-1a", "r-1", "emi-1",
        "t2.micro", "172.31.0.5", "d0:0d:00:00:00:01", datetime(2026, 12, 6, tzinfo=UTC),
    )  # fmt: skip


class Placements:
    def node_of(self, instance_id: str) -> str | None:
        return PLACED.get(instance_id)


class Records:
    def __init__(self) -> None:
        self.live = {i: record(i) for i in PLACED}

    def metadata(self, instance_id: str) -> InstanceMetadata | None:
        return self.live.get(instance_id)


def signing(records: Records | None = None) -> IdentitySigning:
    return IdentitySigning(Placements(), records or Records(), IdentitySigner(KEY))


def test_the_cloud_signs_its_own_rendering_for_the_instances_node(tmp_path: Path) -> None:
    records = Records()
    records.live["i-1"] = dataclasses.replace(record("i-1"), kernel_id="eki-1")
    signed = asyncio.run(signing(records).sign("n1", "i-1"))
    assert signed is not None
    assert signed.document == identity_document(records.live["i-1"])
    assert json.loads(signed.document)["kernelId"] == "eki-1"
    check_signature(CERT, signed.document, signed.views["signature"])
    assert signed.views["pkcs7"] == signed.views["rsa2048"]
    assert pkcs7_content(CERT, signed.views["pkcs7"].decode(), tmp_path) == signed.document


def test_another_nodes_unknown_or_ended_instances_are_refused() -> None:
    records = Records()
    del records.live["i-1"]  # placed on n1, but not live any more
    service = signing(records)
    for node, instance in [
        ("n1", "i-2"),  # n2's
        ("n1", "i-own"),  # the cloud's own node's
        ("n1", "i-404"),  # unknown
        ("n1", "i-1"),  # ended
        ("", "i-own"),  # no name is no node
    ]:
        assert asyncio.run(service.sign(node, instance)) is None, (node, instance)
    assert asyncio.run(service.sign("n2", "i-2")) is not None
