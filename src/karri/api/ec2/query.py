"""Parse EC2 Query parameters (``Filter.1.Value.2=x``) by an operation's input shape."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

from karri.api.ec2.model import Ec2Model, Shape
from karri.api.xmltext import NOT_XML
from karri.errors import CloudError, invalid_value, missing_parameter
from karri.numbers import integer, natural

# Parameters every request may carry that are not part of an operation's input.
ENVELOPE = frozenset(
    {
        "Action",
        "Version",
        "AWSAccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "Timestamp",
        "Expires",
        "SecurityToken",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    }
)

Tree = dict[str, "Tree | str"]
_DECIMAL = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,30})?")


def unknown_parameter(name: str) -> CloudError:
    return CloudError("UnknownParameter", f"The parameter {name} is not recognized")


def build_tree(params: dict[str, str]) -> Tree:
    """``{"Filter.1.Name": "x"}`` becomes ``{"Filter": {"1": {"Name": "x"}}}``."""
    tree: Tree = {}
    for key, value in params.items():
        if key in ENVELOPE:
            continue
        if NOT_XML.search(value):  # refused on the way in: every answer stays valid XML
            raise invalid_value(f"The parameter {key} contains characters that are not allowed")
        parts = key.split(".")
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict) or not part:
                raise unknown_parameter(key)
            node = child
        if not parts[-1] or isinstance(node.get(parts[-1]), dict):
            raise unknown_parameter(key)
        node[parts[-1]] = value
    return tree


def parse_input(model: Ec2Model, operation: str, params: dict[str, str]) -> dict[str, Any]:
    """The operation's input as a dict keyed by botocore member names."""
    tree = build_tree(params)
    shape_name = model.input_shape(operation)
    if shape_name is None:
        if tree:
            raise unknown_parameter(next(iter(tree)))
        return {}
    return _structure(model, model.shape(shape_name), tree, "")


def _structure(model: Ec2Model, shape: Shape, tree: Tree, prefix: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, node in tree.items():
        member = shape.by_query_name.get(key) or shape.by_query_name_folded.get(key.lower())
        if member is None:
            raise unknown_parameter(prefix + key)
        result[member.name] = _value(model, model.shape(member.shape), node, f"{prefix}{key}")
    for required in shape.required:
        if required not in result:
            member = next(m for m in shape.members if m.name == required)
            raise missing_parameter(prefix + member.query_name)
    return result


def _value(model: Ec2Model, shape: Shape, node: Tree | str, name: str) -> Any:
    kind = shape.type
    if kind == "structure":
        if not isinstance(node, dict):
            raise invalid_value(f"The parameter {name} must be a structure")
        return _structure(model, shape, node, name + ".")
    if kind == "list":
        return _list(model, shape, node, name)
    if kind == "map":
        raise unknown_parameter(name)
    if isinstance(node, dict):
        raise unknown_parameter(f"{name}.{next(iter(node))}")
    return _scalar(kind, node, name)


def _list(model: Ec2Model, shape: Shape, node: Tree | str, name: str) -> list[Any]:
    member_shape = model.shape(shape.member_shape or "")
    if model.protocol == "query" and not shape.flattened:
        # ``Tags.member.1.Key``: the entries sit under the member's name
        if not isinstance(node, dict) or set(node) - {shape.item_name}:
            raise unknown_parameter(name)
        node, name = node.get(shape.item_name, {}), f"{name}.{shape.item_name}"
    if not isinstance(node, dict):
        # EC2 reads an unnumbered ``KeyName=k`` as ``KeyName.1=k``; libcloud relies on it.
        return [_value(model, member_shape, node, name)]
    items: list[tuple[int, Any]] = []
    for index, child in node.items():
        number = natural(index)  # any number orders: libcloud's CreateTags counts from 0
        if number is None:
            raise unknown_parameter(f"{name}.{index}")
        items.append((number, _value(model, member_shape, child, f"{name}.{index}")))
    items.sort(key=lambda item: item[0])
    return [value for _, value in items]


def _scalar(kind: str, text: str, name: str) -> Any:
    if kind == "string":
        return text
    if kind in ("integer", "long"):
        value = integer(text)  # not int(): it takes " 5", "1_0" and other scripts' digits
        if value is None:
            raise invalid_value(f"Value ({text}) for parameter {name} is invalid.")
        return value
    if kind in ("float", "double"):
        if not _DECIMAL.fullmatch(text):
            raise invalid_value(f"Value ({text}) for parameter {name} is invalid.")
        return float(text)
    if kind == "boolean":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise invalid_value(
                f"Value ({text}) for parameter {name} is invalid. Expected a boolean"
            )
        return lowered == "true"
    if kind == "timestamp":
        return parse_timestamp(text, name)
    if kind == "blob":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_value(f"Value for parameter {name} is not valid base64") from None
    return text


def parse_timestamp(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            value = datetime.fromtimestamp(float(text), UTC)
        except (ValueError, OverflowError):
            raise invalid_value(f"Value ({text}) for parameter {name} is invalid.") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
