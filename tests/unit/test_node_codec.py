"""The node contract's codec: every type the contract reaches (found by walking the
``NodeDriver`` methods' signatures, the callbacks' and the dataclasses' fields, so a type
added later is covered) goes to JSON and back unchanged; malformed JSON is refused with a
``CodecError`` saying where."""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import json
import types
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from karri.cloud.instances.node_driver import NodeDriver
from karri.node import (
    ExitCallback,
    FileTarget,
    ImageRef,
    ImageRoot,
    InstanceExit,
    InstanceSpec,
    MetadataLookup,
    NodeError,
    RecoveryCallback,
    UnknownInstance,
    VolumeDisk,
)
from karri.node.cloudlink import CloudContract
from karri.node.codec import (
    CodecError,
    contract_methods,
    decode,
    decode_arguments,
    decode_error,
    encode,
    encode_error,
    field_hints,
    node_errors,
    parse_json,
    signature_hints,
)


def _hints_of_callable(alias: Any) -> list[Any]:
    """A callback's parameters and answer (an awaitable answer: what it awaits)."""
    params, answer = typing.get_args(alias)
    if typing.get_origin(answer) in (typing.Union, types.UnionType):
        members = [
            typing.get_args(m)[0] if typing.get_origin(m) is collections.abc.Awaitable else m
            for m in typing.get_args(answer)
        ]
        answer = typing.Union[tuple(members)]  # noqa: UP007
    return [*params, answer]


def contract_hints() -> list[Any]:
    """Every hint of the contract: its methods' parameters and answers, the callbacks',
    and what a node asks and tells the cloud (``CloudContract``)."""
    hints: list[Any] = []
    asked = contract_methods(CloudContract)
    del asked["ceph"]  # CephAccess checks its fields' forms (test_ceph_access.py)
    for function in [*contract_methods(NodeDriver).values(), *asked.values()]:
        params, answer = signature_hints(function)
        hints += [hint for hint, _default in params.values()] + [answer]
    for alias in (MetadataLookup, ExitCallback, RecoveryCallback):
        hints += _hints_of_callable(alias)
    return hints


def dataclasses_in(hint: Any, found: dict[str, type]) -> None:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if hint.__name__ in found:
            return
        found[hint.__name__] = hint
        for field_hint in field_hints(hint).values():
            dataclasses_in(field_hint, found)
        return
    for arg in typing.get_args(hint):
        dataclasses_in(arg, found)


def contract_types() -> dict[str, type]:
    found: dict[str, type] = {}
    for hint in contract_hints():
        dataclasses_in(hint, found)
    return found


def samples(hint: Any, depth: int = 0) -> list[Any]:
    """Values of ``hint``: one per member of each union met (so each tag travels)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return [{"a": [1, "b", None, 2.5, True]}]
    if origin is typing.Literal:
        return list(args)
    if origin in (typing.Union, types.UnionType):
        return [v for member in args for v in samples(member, depth)[:1]]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return [(), tuple(samples(args[0], depth)[:2])]
        return [tuple(samples(a, depth)[0] for a in args)]
    if origin in (list, collections.abc.Sequence, collections.abc.Iterable):
        return [tuple(samples(args[0], depth)[:2])]
    if origin in (dict, collections.abc.Mapping):
        return [{"k": samples(args[1], depth)[0]}]
    if hint is type(None) or hint is None:
        return [None]
    if dataclasses.is_dataclass(hint):
        return dataclass_samples(hint, depth + 1)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return list(hint)
    plain = {
        bool: [True, False],
        int: [7, -1],
        float: [1.5],
        str: ["ş-x"],
        bytes: [b"\x00\xffbytes"],
        datetime: [datetime(2026, 12, 6, 5, 9, 53, 120, tzinfo=UTC)],
    }
    if hint in plain:
        return plain[hint]
    if isinstance(hint, type) and issubclass(hint, Path):
        return [Path("/var/lib/karri/x.img")]
    raise AssertionError(f"no sample for {hint!r}")


def dataclass_samples(cls: type, depth: int) -> list[Any]:
    hints = field_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    per_field = {n: samples(hints[n], depth) for n in names}
    base = {n: values[0] for n, values in per_field.items()}
    made = [cls(**base)]
    for name, values in per_field.items():
        made += [cls(**{**base, name: value}) for value in values[1:]]
    return made


def through_json(value: Any, hint: Any) -> Any:
    return decode(json.loads(json.dumps(encode(value, hint))), hint)


def test_the_walk_finds_the_contract() -> None:
    found = contract_types()
    assert {"InstanceSpec", "ImageRoot", "VolumeDisk", "KernelBoot", "InstanceInfo"} <= set(found)
    assert {"InstanceMetadata", "ProfileMetadata", "RoleCredentials", "NodeEvent"} <= set(found)
    assert {"GroupRules", "SubnetAcl", "Resolver", "NatGatewayReport", "AdoptReport"} <= set(found)
    assert "SignedIdentity" in found


@pytest.mark.parametrize("name", sorted(contract_types()))
def test_every_contract_type_round_trips(name: str) -> None:
    cls = contract_types()[name]
    for value in dataclass_samples(cls, 0):
        back = through_json(value, cls)
        assert back == value and type(back) is cls
        # fields left out of equality (a volume's passphrase) travel too
        assert encode(back, cls) == encode(value, cls)


def test_every_hint_of_the_contract_round_trips() -> None:
    for hint in contract_hints():
        for value in samples(hint):
            assert through_json(value, hint) == value, hint


def test_the_root_is_a_tagged_union() -> None:
    spec = dataclass_samples(InstanceSpec, 0)[0]
    image = ImageRef("emi-1", 1, "0" * 64, "http://127.0.0.1/emi-1")
    for root in (ImageRoot(image), VolumeDisk("vol-1", FileTarget(Path("/v")), secret="s")):
        coded = encode(dataclasses.replace(spec, root=root), InstanceSpec)
        assert list(coded["root"]) == [type(root).__name__]
        assert decode(coded, InstanceSpec).root == root


def made_error(cls: type[NodeError], message: str) -> NodeError:
    """One of ``cls`` (a class with its own arguments: as the codec makes it)."""
    try:
        return cls(message)
    except TypeError:
        return decode_error({"error": cls.__name__, "message": message, "attributes": {"n": 1}})


def test_every_node_error_comes_back_as_itself() -> None:
    assert {"UnknownInstance", "AddressTaken", "DetachTimeout", "FirewallError"} <= set(
        node_errors()
    )
    for name, cls in node_errors().items():
        error = made_error(cls, f"{name} failed")
        back = decode_error(json.loads(json.dumps(encode_error(error))))
        assert type(back) is cls and str(back) == str(error)
    back = decode_error(encode_error(UnknownInstance("i-9")))
    assert isinstance(back, KeyError) and back.instance_id == "i-9"  # type: ignore[attr-defined]


IMAGE = {"image_id": "emi-1", "size": 1, "sha256": "0" * 64, "url": "http://127.0.0.1/"}
FILE = {"FileTarget": {"path": "/p", "kind": "file"}}


def good_spec() -> dict[str, Any]:
    return encode(dataclass_samples(InstanceSpec, 0)[0], InstanceSpec)


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (lambda d: d | {"extra": 1}, "unknown field 'extra'"),
        (lambda d: {k: v for k, v in d.items() if k != "vcpus"}, "needs 'vcpus'"),
        (lambda d: d | {"vcpus": "2"}, "$.vcpus: expected int"),
        (lambda d: d | {"vcpus": True}, "$.vcpus: expected an integer"),
        (lambda d: d | {"root": {"NfsRoot": {}}}, "unknown tag 'NfsRoot'"),
        (lambda d: d | {"root": {"ImageRoot": {"image": IMAGE, "what": 1}}}, "unknown field"),
        (lambda d: d | {"root": {"image": "/i"}}, "$.root"),
        (lambda d: d | {"volumes": "vol-1"}, "$.volumes: expected list"),
        (lambda d: d | {"volumes": [{"volume_id": "v", "target": FILE, "format": "vhd"}]}, "vhd"),
        (lambda d: d | {"volumes": [{"volume_id": "v", "path": "/p"}]}, "unknown field 'path'"),
        (lambda d: d | {"public_ip": 3}, "$.public_ip"),
        (lambda d: d | {"kernel": {"kernel": 5}}, "$.kernel.kernel: expected dict"),
        (lambda d: d | {"kernel": {"kernel": IMAGE | {"size": "1"}}}, "$.kernel.kernel.size"),
        (lambda d: [d], "$: expected dict"),
    ],
)
def test_malformed_input_is_refused(mangle: Any, says: str) -> None:
    with pytest.raises(CodecError) as refused:
        decode(mangle(good_spec()), InstanceSpec)
    assert says in str(refused.value)


def test_malformed_scalars_are_refused() -> None:
    with pytest.raises(CodecError, match="not base64"):
        decode("%%%", bytes)
    with pytest.raises(CodecError, match="not an ISO 8601"):
        decode("yesterday", datetime)
    with pytest.raises(CodecError, match="boredom' is not a ExitReason"):
        decode({"instance_id": "i", "reason": "boredom", "detail": "", "at": 1}, InstanceExit)
    with pytest.raises(CodecError, match="not plain JSON"):
        encode({"a": object()}, Any)
    with pytest.raises(CodecError, match="not JSON"):
        parse_json(b"[" * 100_000)
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(CodecError, match="nested too deep"):
        decode(deep, Any)


def test_arguments_and_errors_are_checked() -> None:
    launch = contract_methods(NodeDriver)["launch"]
    assert decode_arguments(launch, {"spec": good_spec()})["spec"].vcpus == 7
    with pytest.raises(CodecError, match="unknown argument 'force'"):
        decode_arguments(launch, {"spec": good_spec(), "force": True})
    with pytest.raises(CodecError, match="missing argument 'spec'"):
        decode_arguments(launch, {})
    with pytest.raises(CodecError, match="arguments are a JSON object"):
        decode_arguments(launch, [])
    with pytest.raises(CodecError, match="unknown node error 'SystemExit'"):
        decode_error({"error": "SystemExit", "message": "bye"})
    with pytest.raises(CodecError):
        decode_error({"error": "NodeError", "message": "x", "attributes": {"a": [1]}})
    assert type(decode_error({"error": "NodeError", "message": "x"})) is NodeError
