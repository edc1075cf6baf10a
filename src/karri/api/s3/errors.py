"""S3 error documents."""

from __future__ import annotations

from karri.api.s3.xml import HEADER, esc
from karri.api.xmltext import xml_safe

NOT_IMPLEMENTED = (
    "NotImplemented",
    "A header or query you provided implies functionality that is not implemented.",
    501,
)


def error_body(code: str, message: str, resource: str, request_id: str) -> bytes:
    return (
        f"{HEADER}<Error><Code>{esc(code)}</Code><Message>{esc(xml_safe(message))}</Message>"
        f"<Resource>{esc(xml_safe(resource))}</Resource><RequestId>{request_id}</RequestId>"
        "</Error>"
    ).encode()
