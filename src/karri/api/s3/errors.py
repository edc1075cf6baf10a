"""S3 error documents."""

from __future__ import annotations

from karri.api.s3.xml import HEADER, esc
from karri.api.xmltext import xml_safe
from karri.errors import CloudError
from karri.walrus import S3Error

NOT_IMPLEMENTED = (
    "NotImplemented",
    "A header or query you provided implies functionality that is not implemented.",
    501,
)


def error_body(
    code: str, message: str, resource: str, request_id: str, fields: dict[str, str] | None = None
) -> bytes:
    extra = "".join(f"<{k}>{esc(xml_safe(v))}</{k}>" for k, v in (fields or {}).items())
    return (
        f"{HEADER}<Error><Code>{esc(code)}</Code><Message>{esc(xml_safe(message))}</Message>"
        f"{extra}<Resource>{esc(xml_safe(resource))}</Resource>"
        f"<RequestId>{request_id}</RequestId></Error>"
    ).encode()


class WithFields(S3Error):
    """An error whose document says more than its code and message (``<Region>``)."""

    def __init__(self, code: str, message: str, status: int, fields: dict[str, str]) -> None:
        super().__init__(code, message, status)
        self.fields = fields


class AnsweredWithHeaders(S3Error):
    """An error the S3 API answers with headers of its own (``content-range``)."""

    def __init__(self, code: str, message: str, status: int, headers: dict[str, str]) -> None:
        super().__init__(code, message, status)
        self.headers = headers


def error_headers(error: CloudError) -> dict[str, str]:
    """What an error's data says in HTTP: a key whose latest version (or a version that)
    is a delete marker answers with the marker's headers, and a method refused on a
    marker with the one method it allows."""
    if isinstance(error, AnsweredWithHeaders):
        return error.headers
    marker = getattr(error, "delete_marker", None)
    if marker is None:
        return {}
    headers = {"x-amz-delete-marker": "true", "x-amz-version-id": marker}
    if error.code == "MethodNotAllowed":
        headers["allow"] = "DELETE"
    return headers
