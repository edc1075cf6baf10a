"""botocore's service models of the Query protocols (EC2's, IAM's, STS's), compiled once
into lookup tables for the hot path."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from botocore.loaders import Loader

API_VERSION = "2016-11-15"


@dataclass(frozen=True)
class Member:
    name: str  # the member's name in botocore (and in our handlers' dicts)
    query_name: str  # its name in a request: ``Filter`` for ``Filters``
    xml_name: str  # its element name in a response: ``keySet`` for ``KeyPairs``
    shape: str


@dataclass
class Shape:
    name: str
    type: str
    members: list[Member] = field(default_factory=list)
    by_query_name: dict[str, Member] = field(default_factory=dict)
    by_query_name_folded: dict[str, Member] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    member_shape: str | None = None  # lists
    item_name: str = "item"  # lists: the element of each entry
    flattened: bool = False
    key_shape: str | None = None  # maps
    value_shape: str | None = None


class Ec2Model:
    """The operations and shapes of the EC2 API, as botocore describes them."""

    def __init__(self, raw: dict[str, Any]) -> None:
        metadata = raw.get("metadata", {})
        # "ec2", or "query" (IAM, STS): lists in requests are ``Name.member.N`` there
        self.protocol: str = metadata.get("protocol", "ec2")
        self.xmlns: str = metadata.get("xmlNamespace", "")
        self.operations: dict[str, dict[str, Any]] = raw["operations"]
        self._raw_shapes: dict[str, dict[str, Any]] = raw["shapes"]
        self._shapes: dict[str, Shape] = {}

    def shape(self, name: str) -> Shape:
        compiled = self._shapes.get(name)
        if compiled is None:
            compiled = self._shapes[name] = self._compile(name)
        return compiled

    def input_shape(self, operation: str) -> str | None:
        return self.operations[operation].get("input", {}).get("shape")

    def output_shape(self, operation: str) -> str | None:
        return self.operations[operation].get("output", {}).get("shape")

    def _compile(self, name: str) -> Shape:
        raw = self._raw_shapes[name]
        shape = Shape(name=name, type=raw["type"])
        if shape.type == "structure":
            for member_name, spec in raw.get("members", {}).items():
                location = spec.get("locationName")
                query_name = spec.get("queryName") or (
                    location[0].upper() + location[1:] if location else member_name
                )
                member = Member(member_name, query_name, location or member_name, spec["shape"])
                shape.members.append(member)
                shape.by_query_name[query_name] = member
                shape.by_query_name_folded[query_name.lower()] = member
            shape.required = frozenset(raw.get("required", ()))
        elif shape.type == "list":
            shape.member_shape = raw["member"]["shape"]
            shape.item_name = raw["member"].get("locationName", "member")
            shape.flattened = bool(raw.get("flattened"))
        elif shape.type == "map":
            shape.key_shape = raw["key"]["shape"]
            shape.value_shape = raw["value"]["shape"]
        return shape


@cache
def query_model(service: str) -> Ec2Model:
    """botocore's newest model of a Query-protocol service (``iam``, ``sts``)."""
    return Ec2Model(Loader().load_service_model(service, "service-2"))


@cache
def ec2_model() -> Ec2Model:
    return Ec2Model(Loader().load_service_model("ec2", "service-2", api_version=API_VERSION))
