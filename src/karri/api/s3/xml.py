"""S3's XML: documents written by hand (small and exact), requests read with defusedxml."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from karri.timestamps import iso8601
from karri.walrus import S3Error

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"})


def esc(value: object) -> str:
    return str(value).translate(_ESCAPES)


def timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as S3 writes it."""
    return iso8601(value)


def el(name: str, value: object) -> str:
    """``<name>value</name>``; booleans as ``true``/``false``, datetimes in ISO 8601."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = timestamp(value)
    else:
        text = esc(value)
    return f"<{name}>{text}</{name}>"


def document(root: str, parts: Iterable[str], *, namespace: bool = True) -> bytes:
    xmlns = f' xmlns="{NS}"' if namespace else ""
    return f"{HEADER}<{root}{xmlns}>{''.join(parts)}</{root}>".encode()


def malformed() -> S3Error:
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
        400,
    )


def parse(body: bytes, root: str) -> Element:
    """Parse a request document; XML bombs, entities and DTDs are refused."""
    if not body.strip():
        raise malformed()
    try:
        element = SafeET.fromstring(body, forbid_dtd=True)
    except (DefusedXmlException, SafeET.ParseError, ValueError, UnicodeError, LookupError):
        raise malformed() from None  # LookupError: an encoding Python does not know
    if local(element.tag) != root:
        raise malformed()
    return element


def local(tag: str) -> str:
    """A tag without its namespace."""
    return tag.rsplit("}", 1)[-1]


def children(element: Element, name: str) -> list[Element]:
    return [child for child in element if local(child.tag) == name]


def child(element: Element, name: str) -> Element | None:
    for item in element:
        if local(item.tag) == name:
            return item
    return None


def text(element: Element, name: str, default: str | None = None) -> str | None:
    found = child(element, name)
    if found is None:
        return default
    return found.text or ""
