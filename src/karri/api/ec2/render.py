"""Render EC2 answers and errors as the XML that AWS sends, by the output shape."""

from __future__ import annotations

import base64
from typing import Any
from xml.sax.saxutils import escape

from karri.api.ec2.model import Ec2Model, Shape
from karri.timestamps import iso8601

XML_HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'


def namespace(version: str) -> str:
    return f"http://ec2.amazonaws.com/doc/{version}/"


def render_response(
    model: Ec2Model, operation: str, output: dict[str, Any], request_id: str, version: str
) -> bytes:
    parts = [XML_HEADER, f'<{operation}Response xmlns="{namespace(version)}">']
    parts.append(f"<requestId>{request_id}</requestId>")
    shape_name = model.output_shape(operation)
    if shape_name is None:
        # botocore models no output, but EC2 answers such actions (CreateTags, RebootInstances)
        # with <return>true</return>, and libcloud reads it.
        parts.append("<return>true</return>")
    elif output:
        _members(model, model.shape(shape_name), output, parts)
    parts.append(f"</{operation}Response>")
    return "".join(parts).encode()


def render_error(code: str, message: str, request_id: str) -> bytes:
    return (
        f"{XML_HEADER}<Response><Errors><Error><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error></Errors>"
        f"<RequestID>{request_id}</RequestID></Response>"
    ).encode()


def render_plain(root: str, xmlns: str, request_id: str, body: str) -> bytes:
    """An answer outside botocore's model (Eucalyptus's extensions)."""
    return (
        f'{XML_HEADER}<{root} xmlns="{xmlns}"><requestId>{request_id}</requestId>{body}</{root}>'
    ).encode()


def _members(model: Ec2Model, shape: Shape, value: dict[str, Any], parts: list[str]) -> None:
    for member in shape.members:
        item = value.get(member.name)
        if item is None:
            continue
        _element(model, model.shape(member.shape), member.xml_name, item, parts)


def _element(model: Ec2Model, shape: Shape, tag: str, value: Any, parts: list[str]) -> None:
    kind = shape.type
    if kind == "list":
        member_shape = model.shape(shape.member_shape or "")
        if shape.flattened:
            for item in value:
                _element(model, member_shape, tag, item, parts)
            return
        if not value:
            parts.append(f"<{tag}/>")
            return
        parts.append(f"<{tag}>")
        for item in value:
            _element(model, member_shape, shape.item_name, item, parts)
        parts.append(f"</{tag}>")
    elif kind == "structure":
        parts.append(f"<{tag}>")
        _members(model, shape, value, parts)
        parts.append(f"</{tag}>")
    elif kind == "map":
        parts.append(f"<{tag}>")
        for key, item in value.items():
            parts.append(f"<entry><key>{escape(str(key))}</key>")
            _element(model, model.shape(shape.value_shape or ""), "value", item, parts)
            parts.append("</entry>")
        parts.append(f"</{tag}>")
    else:
        parts.append(f"<{tag}>{scalar_text(kind, value)}</{tag}>")


def scalar_text(kind: str, value: Any) -> str:
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        return iso8601(value)
    if kind == "blob":
        return base64.b64encode(value).decode()
    return escape(str(value))


class RawXml:
    """An answer outside botocore's model (Eucalyptus's extensions), already rendered."""

    def __init__(self, root: str, xmlns: str, body: str) -> None:
        self.root, self.xmlns, self.body = root, xmlns, body

    def render(self, request_id: str) -> bytes:
        return render_plain(self.root, self.xmlns, request_id, self.body)
