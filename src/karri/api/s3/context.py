"""One S3 request as the handlers see it, and the replies they give back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from karri.api.s3.auth import Identity
from karri.numbers import integer
from karri.walrus import ObjectReader, Walrus, invalid_argument


@dataclass
class Request:
    request_id: str
    method: str
    bucket: str
    key: str
    pairs: list[tuple[str, str]]  # the decoded query, in order
    query: dict[str, str]
    header: dict[str, str]  # lower-case names; repeated headers joined with ","
    identity: Identity
    walrus: Walrus
    receive: Any
    send: Any
    scope: dict
    body: bytes = b""  # small request documents, read and checked before dispatch

    @property
    def principal(self) -> str:
        return self.identity.principal

    def int_param(self, name: str, default: int, *, low: int = 0, high: int = 1000) -> int:
        value = self.query.get(name)
        if value is None or value == "":
            return default
        number = integer(value)
        if number is None:
            raise invalid_argument(f"Provided {name} not an integer or within integer range")
        if number < low:
            raise invalid_argument(
                f"Argument {name} must be an integer between {low} and 2147483647"
            )
        return min(number, high)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/xml"


@dataclass
class FileReply:
    """An object's bytes (or a range of them), sent zero-copy where possible."""

    reader: ObjectReader
    start: int
    length: int
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
