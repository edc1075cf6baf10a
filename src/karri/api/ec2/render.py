"""Render EC2 answers and errors as the XML that AWS sends, by the output shape."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from karri.api.ec2.model import Ec2Model, Shape
from karri.api.xmltext import xml_safe
from karri.timestamps import iso8601

XML_HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'


def namespace(version: str) -> str:
    return f"http://ec2.amazonaws.com/doc/{version}/"


@dataclass(frozen=True)
class Prerendered:
    """A handler's output some of whose members are already rendered: ``inline`` holds
    each such member's whole element as encoded pieces, as its writer would have written
    it (joined once, with the rest of the answer, into the body)."""

    output: dict[str, Any]
    inline: dict[str, list[bytes]]


def render_response(
    model: Ec2Model,
    operation: str,
    output: dict[str, Any] | Prerendered,
    request_id: str,
    version: str,
) -> bytes:
    head = (
        f'{XML_HEADER}<{operation}Response xmlns="{namespace(version)}">'
        f"<requestId>{request_id}</requestId>"
    )
    shape_name = model.output_shape(operation)
    if isinstance(output, Prerendered) and shape_name is not None:
        shape = model.shape(shape_name)
        tail = f"</{operation}Response>"
        return b"".join(render_pieces(model, shape, output.output, output.inline, head, tail))
    parts = [head]
    if shape_name is None:
        # botocore models no output, but EC2 answers such actions (CreateTags, RebootInstances)
        # with <return>true</return>, and libcloud reads it.
        parts.append("<return>true</return>")
    elif output:
        _members(model, model.shape(shape_name), output, parts)
    parts.append(f"</{operation}Response>")
    return "".join(parts).encode()


def render_query_response(
    model: Ec2Model, operation: str, output: dict[str, Any], request_id: str
) -> bytes:
    """The Query protocol's answer (IAM, STS): ``<XResponse><XResult>…</XResult>
    <ResponseMetadata><RequestId>…``."""
    parts = [XML_HEADER, f'<{operation}Response xmlns="{model.xmlns}">']
    shape_name = model.output_shape(operation)
    if shape_name is not None:
        parts.append(f"<{operation}Result>")
        _members(model, model.shape(shape_name), output, parts)
        parts.append(f"</{operation}Result>")
    parts.append(f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>")
    parts.append(f"</{operation}Response>")
    return "".join(parts).encode()


def render_query_error(code: str, message: str, request_id: str, xmlns: str) -> bytes:
    """The Query protocol's error document; a 5xx is the ``Receiver``'s fault."""
    kind = "Receiver" if code in ("InternalError", "ServiceUnavailable") else "Sender"
    return (
        f'{XML_HEADER}<ErrorResponse xmlns="{xmlns}"><Error><Type>{kind}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(xml_safe(message))}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


def render_error(code: str, message: str, request_id: str) -> bytes:
    return (
        f"{XML_HEADER}<Response><Errors><Error><Code>{escape(code)}</Code>"
        f"<Message>{escape(xml_safe(message))}</Message></Error></Errors>"
        f"<RequestID>{request_id}</RequestID></Response>"
    ).encode()


def render_plain(root: str, xmlns: str, request_id: str, body: str) -> bytes:
    """An answer outside botocore's model (Eucalyptus's extensions)."""
    return (
        f'{XML_HEADER}<{root} xmlns="{xmlns}"><requestId>{request_id}</requestId>{body}</{root}>'
    ).encode()


Writer = Callable[[Any, list[str]], None]
_writers: dict[tuple[int, str, str], Writer] = {}


def _members(model: Ec2Model, shape: Shape, value: dict[str, Any], parts: list[str]) -> None:
    for name, write in _member_writers(model, shape):
        item = value.get(name)
        if item is not None:
            write(item, parts)


def render_element(model: Ec2Model, shape_name: str, tag: str, value: Any) -> bytes:
    """``value`` of that shape as the element ``tag``, exactly as it is written inside an
    answer."""
    parts: list[str] = []
    _writer(model, shape_name, tag)(value, parts)
    return "".join(parts).encode()


def render_pieces(
    model: Ec2Model,
    shape: Shape,
    value: dict[str, Any],
    inline: dict[str, list[bytes]],
    before: str,
    after: str,
) -> list[bytes]:
    """A structure's members between ``before`` and ``after`` (its element's tags, or
    the answer's), encoded; those named in ``inline`` are its pieces, as they are: an
    answer of thousands of kept elements is copied once, when the pieces are joined."""
    pieces: list[bytes] = []
    parts = [before]
    for name, write in _member_writers(model, shape):
        given = inline.get(name)
        if given is not None:
            pieces.append("".join(parts).encode())
            pieces.extend(given)
            parts = []
            continue
        item = value.get(name)
        if item is not None:
            write(item, parts)
    parts.append(after)
    pieces.append("".join(parts).encode())
    return pieces


def _member_writers(model: Ec2Model, shape: Shape) -> list[tuple[str, Writer]]:
    return [(m.name, _writer(model, m.shape, m.xml_name)) for m in shape.members]


def _writer(model: Ec2Model, shape_name: str, tag: str) -> Writer:
    """A function that writes a value of this shape as ``<tag>…</tag>``, built once.

    Large answers (DescribeInstances over thousands of instances) spend their time here,
    so the walk over the model happens once per shape and tag, not once per value.
    """
    key = (id(model), shape_name, tag)
    writer = _writers.get(key)
    if writer is None:
        writer = _writers[key] = _build_writer(model, model.shape(shape_name), tag)
    return writer


def _build_writer(model: Ec2Model, shape: Shape, tag: str) -> Writer:
    open_tag, close_tag, empty = f"<{tag}>", f"</{tag}>", f"<{tag}/>"
    kind = shape.type
    if kind == "structure":
        members: list[tuple[str, Writer]] | None = None

        def write_structure(value: Any, out: list[str]) -> None:
            nonlocal members
            if members is None:  # resolved late: shapes may refer to themselves
                members = _member_writers(model, shape)
            out.append(open_tag)
            for name, write in members:
                item = value.get(name)
                if item is not None:
                    write(item, out)
            out.append(close_tag)

        return write_structure
    if kind == "list":
        item_tag = tag if shape.flattened else shape.item_name
        item_writer: list[Writer] = []

        def write_list(value: Any, out: list[str]) -> None:
            if not item_writer:
                item_writer.append(_writer(model, shape.member_shape or "", item_tag))
            write = item_writer[0]
            if shape.flattened:
                for item in value:
                    write(item, out)
            elif not value:
                out.append(empty)
            else:
                out.append(open_tag)
                for item in value:
                    write(item, out)
                out.append(close_tag)

        return write_list
    if kind == "map":

        def write_map(value: Any, out: list[str]) -> None:
            write = _writer(model, shape.value_shape or "", "value")
            out.append(open_tag)
            for key, item in value.items():
                out.append(f"<entry><key>{_text(str(key))}</key>")
                write(item, out)
                out.append("</entry>")
            out.append(close_tag)

        return write_map

    return _scalar_writer(kind, open_tag, close_tag)


def _scalar_writer(kind: str, open_tag: str, close_tag: str) -> Writer:
    """``scalar_text``'s writer for one kind, its branch chosen once: a Describe of
    thousands of instances writes hundreds of thousands of scalars."""
    if kind == "boolean":
        true, false = f"{open_tag}true{close_tag}", f"{open_tag}false{close_tag}"

        def write_boolean(value: Any, out: list[str]) -> None:
            out.append(true if value else false)

        return write_boolean
    if kind == "string":

        def write_string(value: Any, out: list[str]) -> None:
            text = value if isinstance(value, str) else str(value)
            if "&" in text or "<" in text or ">" in text:
                text = escape(text)
            out.append(f"{open_tag}{text}{close_tag}")

        return write_string

    def write_scalar(value: Any, out: list[str]) -> None:
        out.append(f"{open_tag}{scalar_text(kind, value)}{close_tag}")

    return write_scalar


def _text(value: str) -> str:
    if "&" in value or "<" in value or ">" in value:
        return escape(value)
    return value


def scalar_text(kind: str, value: Any) -> str:
    if kind == "string":
        return _text(value if isinstance(value, str) else str(value))
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        return iso8601(value)
    if kind == "blob":
        return base64.b64encode(value).decode()
    return _text(str(value))


class RawXml:
    """An answer outside botocore's model (Eucalyptus's extensions), already rendered."""

    def __init__(self, root: str, xmlns: str, body: str) -> None:
        self.root, self.xmlns, self.body = root, xmlns, body

    def render(self, request_id: str) -> bytes:
        return render_plain(self.root, self.xmlns, request_id, self.body)
