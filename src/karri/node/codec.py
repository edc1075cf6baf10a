"""The node contract in JSON: what travels between the cloud and a node agent.

Driven by the declared types (a dataclass's field hints, a method's signature), so a
type added to the contract needs no change here: frozen dataclasses are objects with
exactly their fields, enums and ``Literal``s their values, tuples and sequences lists,
mappings objects, ``bytes`` base64, ``Path`` a string, ``datetime`` ISO 8601. A union of
several dataclasses (an instance's ``root``) is tagged by the class name:
``{"ImageRoot": {...}}``. ``NodeError``s travel by their class name.

Decoding is strict: a missing or unknown field, an unknown tag, enum value or error name,
or a value of the wrong JSON type is a ``CodecError`` saying where, never another
exception.
"""

from __future__ import annotations

import base64
import binascii
import collections.abc
import dataclasses
import enum
import functools
import inspect
import json
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

from karri.node.errors import NodeError


class CodecError(ValueError):
    """The JSON is not a value of the declared type (the message says where and why)."""


def encode(value: Any, hint: Any) -> Any:
    """``value`` (of type ``hint``) as a JSON-able value."""
    return _Coder(encoding=True).run(value, hint, "$")


def decode(data: Any, hint: Any) -> Any:
    """The value of type ``hint`` that ``data`` (parsed JSON) holds; ``CodecError`` if
    it holds none."""
    try:
        return _Coder(encoding=False).run(data, hint, "$")
    except RecursionError:
        raise CodecError("$: nested too deep") from None


def parse_json(body: bytes) -> Any:
    """``body`` as JSON; ``CodecError`` if it is not (too deep a nesting included, which
    ``json`` reports as a ``RecursionError``)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:
        raise CodecError(f"$: not JSON: {type(error).__name__}") from None


@functools.cache
def field_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def signature_hints(function: Any) -> tuple[dict[str, Any], Any]:
    """A method's parameters (name -> (hint, default)) and its answer's hint."""
    hints = typing.get_type_hints(function)
    params = {
        name: (hints.get(name, Any), p.default)
        for name, p in inspect.signature(function).parameters.items()
        if name != "self"
    }
    return params, hints.get("return", Any)


def contract_methods(protocol: type) -> dict[str, Any]:
    """A protocol's public methods, with its base protocols' (what travels)."""
    found: dict[str, Any] = {}
    for cls in reversed(protocol.__mro__):
        if cls is object or cls.__name__ in ("Protocol", "Generic"):
            continue
        found |= {
            n: m for n, m in vars(cls).items() if inspect.isfunction(m) and not n.startswith("_")
        }
    return found


def contract_attributes(protocol: type) -> dict[str, Any]:
    """A protocol's data attributes (``accelerator``, ...) and their hints."""
    methods = contract_methods(protocol)
    return {n: h for n, h in typing.get_type_hints(protocol).items() if n not in methods}


def encode_arguments(function: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    params, _ = signature_hints(function)
    return {name: encode(value, params[name][0]) for name, value in arguments.items()}


def decode_arguments(function: Any, data: Any) -> dict[str, Any]:
    """The keyword arguments of a call of ``function`` (unknown or missing ones refused)."""
    if not isinstance(data, dict):
        raise CodecError("$: the arguments are a JSON object")
    params, _ = signature_hints(function)
    unknown = set(data) - set(params)
    if unknown:
        raise CodecError(f"$: unknown argument {sorted(unknown)[0]!r}")
    missing = [n for n, (_, d) in params.items() if d is inspect.Parameter.empty and n not in data]
    if missing:
        raise CodecError(f"$: missing argument {missing[0]!r}")
    return {name: decode(value, params[name][0]) for name, value in data.items()}


def encode_error(error: NodeError) -> dict[str, Any]:
    """A node failure by its class name, its message and its plain attributes."""
    attributes = {
        k: v for k, v in vars(error).items() if isinstance(v, str | int | float | bool | None)
    }
    return {"error": type(error).__name__, "message": str(error), "attributes": attributes}


def node_errors() -> dict[str, type[NodeError]]:
    """``NodeError`` and every subclass defined so far, by name."""
    found: dict[str, type[NodeError]] = {}
    todo: list[type[NodeError]] = [NodeError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found


def decode_error(data: Any) -> NodeError:
    """The ``NodeError`` an answer carries, as its own class; one of a name this side does
    not know is refused (``CodecError``)."""
    if not isinstance(data, dict) or set(data) - {"error", "message", "attributes"}:
        raise CodecError("$: not an error answer")
    name, message = data.get("error"), data.get("message")
    attributes = data.get("attributes", {})
    if not isinstance(name, str) or not isinstance(message, str):
        raise CodecError("$: an error answer has a name and a message")
    if not isinstance(attributes, dict) or not all(
        isinstance(v, str | int | float | bool | None) for v in attributes.values()
    ):
        raise CodecError("$.attributes: plain values only")
    cls = node_errors().get(name)
    if cls is None:
        raise CodecError(f"$.error: unknown node error {name!r}")
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    for key, value in attributes.items():
        setattr(error, key, value)
    return error


class _Coder:
    def __init__(self, encoding: bool) -> None:
        self.encoding = encoding

    def run(self, value: Any, hint: Any, where: str) -> Any:
        if hint is Any:
            return self._any(value, where)
        origin = typing.get_origin(hint)
        if origin is typing.Literal:
            if not any(value == a and type(value) is type(a) for a in typing.get_args(hint)):
                raise CodecError(f"{where}: {value!r} is not one of {typing.get_args(hint)}")
            return value
        if origin in (typing.Union, types.UnionType):
            return self._union(value, typing.get_args(hint), where)
        if origin is tuple:
            return self._tuple(value, typing.get_args(hint), where)
        if origin in (list, collections.abc.Sequence, collections.abc.Iterable):
            (item,) = typing.get_args(hint) or (Any,)
            return self._tuple(value, (item, ...), where)
        if origin in (dict, collections.abc.Mapping):
            key, item = typing.get_args(hint) or (str, Any)
            return self._mapping(value, key, item, where)
        if hint is type(None) or hint is None:
            return self._expect(value, type(None), where)
        if isinstance(hint, type):
            return self._of_class(value, hint, where)
        raise CodecError(f"{where}: the codec has no rule for {hint!r}")  # a contract bug

    def _of_class(self, value: Any, cls: type, where: str) -> Any:
        if dataclasses.is_dataclass(cls):
            return self._dataclass(value, cls, where)
        if issubclass(cls, enum.Enum):
            if self.encoding:
                return self._expect(value, cls, where).value
            try:
                return cls(value)
            except (ValueError, TypeError):
                raise CodecError(f"{where}: {value!r} is not a {cls.__name__}") from None
        if cls is bool:
            return self._expect(value, bool, where)
        if cls is int:
            if isinstance(value, bool):
                raise CodecError(f"{where}: expected an integer, got a boolean")
            return self._expect(value, int, where)
        if cls is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise CodecError(f"{where}: expected a number")
            return float(value)
        if cls is str:
            return self._expect(value, str, where)
        if cls is bytes:
            if self.encoding:
                return base64.b64encode(self._expect(value, bytes, where)).decode()
            try:
                return base64.b64decode(self._expect(value, str, where), validate=True)
            except (binascii.Error, ValueError):
                raise CodecError(f"{where}: not base64") from None
        if issubclass(cls, Path):
            if self.encoding:
                return str(self._expect(value, Path, where))
            return Path(self._expect(value, str, where))
        if cls is datetime:
            if self.encoding:
                return self._expect(value, datetime, where).isoformat()
            try:
                return datetime.fromisoformat(self._expect(value, str, where))
            except ValueError:
                raise CodecError(f"{where}: not an ISO 8601 time") from None
        raise CodecError(f"{where}: the codec has no rule for {cls.__name__}")

    def _dataclass(self, value: Any, cls: type, where: str) -> Any:
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        hints = field_hints(cls)
        if self.encoding:
            self._expect(value, cls, where)
            return {n: self.run(getattr(value, n), hints[n], f"{where}.{n}") for n in fields}
        given = self._expect(value, dict, where)
        unknown = set(given) - set(fields)
        if unknown:
            raise CodecError(f"{where}: unknown field {sorted(unknown)[0]!r} of {cls.__name__}")
        for name, f in fields.items():
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and name not in given:
                raise CodecError(f"{where}: {cls.__name__} needs {name!r}")
        values = {n: self.run(v, hints[n], f"{where}.{n}") for n, v in given.items()}
        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise CodecError(f"{where}: not a {cls.__name__}: {error}") from None

    def _union(self, value: Any, members: tuple[Any, ...], where: str) -> Any:
        if value is None and type(None) in members:
            return None
        classes = [m for m in members if dataclasses.is_dataclass(m)]
        if len(classes) > 1:  # tagged by the class name
            if self.encoding:
                for cls in classes:
                    if type(value) is cls:
                        return {cls.__name__: self._dataclass(value, cls, where)}
            elif isinstance(value, dict) and len(value) == 1:
                ((tag, inner),) = value.items()
                for cls in classes:
                    if cls.__name__ == tag:
                        return self._dataclass(inner, cls, f"{where}.{tag}")
                raise CodecError(f"{where}: unknown tag {tag!r}")
        elif classes and isinstance(value, classes[0] if self.encoding else dict):
            return self._dataclass(value, classes[0], where)
        for member in members:
            if member in classes or member is type(None):
                continue
            try:
                return self.run(value, member, where)
            except CodecError:
                continue
        raise CodecError(f"{where}: {type(value).__name__} is none of {members}")

    def _tuple(self, value: Any, items: tuple[Any, ...], where: str) -> Any:
        if self.encoding:
            if isinstance(value, str | bytes) or not isinstance(value, collections.abc.Iterable):
                raise CodecError(f"{where}: expected a sequence")
            value = list(value)
        else:
            value = self._expect(value, list, where)
        if len(items) == 2 and items[1] is Ellipsis:
            coded = [self.run(v, items[0], f"{where}[{i}]") for i, v in enumerate(value)]
        else:
            if len(value) != len(items):
                raise CodecError(f"{where}: expected {len(items)} items")
            coded = [
                self.run(v, h, f"{where}[{i}]")
                for i, (v, h) in enumerate(zip(value, items, strict=True))
            ]
        return coded if self.encoding else tuple(coded)

    def _mapping(self, value: Any, key: Any, item: Any, where: str) -> Any:
        if key is not str:
            raise CodecError(f"{where}: the codec has no rule for keys of {key!r}")
        if self.encoding and not isinstance(value, collections.abc.Mapping):
            raise CodecError(f"{where}: expected a mapping")
        given = value if self.encoding else self._expect(value, dict, where)
        return {
            self._expect(k, str, where): self.run(v, item, f"{where}.{k}") for k, v in given.items()
        }

    def _any(self, value: Any, where: str) -> Any:
        """A plain JSON value (``summary``'s), checked to be one."""
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, list | tuple):
            return [self._any(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {
                self._expect(k, str, where): self._any(v, f"{where}.{k}") for k, v in value.items()
            }
        raise CodecError(f"{where}: {type(value).__name__} is not plain JSON")

    @staticmethod
    def _expect(value: Any, cls: type, where: str) -> Any:
        if not isinstance(value, cls):
            raise CodecError(f"{where}: expected {cls.__name__}, got {type(value).__name__}")
        return value
