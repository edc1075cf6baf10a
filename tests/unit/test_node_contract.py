"""The node contract: ``Node``, ``FakeNode`` and ``RemoteNode`` implement ``NodeDriver``
(which holds the EBS worker's ``NodeVolumes``), member by member, with the same
signatures."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from karri.cloud.instances.node_driver import NodeDriver
from karri.cloud.nodes.remote import RemoteNode
from karri.cloud.volumes.nodehost import NodeVolumes
from karri.node import Node, NodeSettings
from karri.node.codec import contract_methods
from karri.node.fake import FakeNode


def _shape(function: object) -> tuple[bool, list[tuple[str, object, object]]]:
    """Whether it is a coroutine function, and its parameters (name, kind, default)."""
    params = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    return inspect.iscoroutinefunction(function), [(p.name, p.kind, p.default) for p in params]


def nodes(tmp_path: Path) -> list[object]:
    return [Node(tmp_path, NodeSettings(accelerator_cache=tmp_path / "accel.json")), FakeNode()]


@pytest.mark.parametrize("protocol", [NodeDriver, NodeVolumes])
def test_node_and_fake_node_implement_the_contract(tmp_path: Path, protocol: type) -> None:
    for node in nodes(tmp_path):
        assert isinstance(node, protocol), type(node).__name__


@pytest.mark.parametrize("implementation", [Node, FakeNode, RemoteNode])
def test_every_method_has_the_contracts_signature(implementation: type) -> None:
    members = contract_methods(NodeDriver)
    assert {"launch", "shutdown", "health", "attach_volume", "backup_volume"} <= set(members)
    for name, declared in members.items():
        actual = getattr(implementation, name)
        assert _shape(actual) == _shape(declared), f"{implementation.__name__}.{name}"


def test_the_contract_checks_something() -> None:
    class Partial:
        accelerator = accelerator_reason = "tcg"
        last_fault = None

        async def launch(self, spec): ...

    assert not isinstance(Partial(), NodeDriver)
