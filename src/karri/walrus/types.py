"""What the Walrus interface hands back: plain frozen records, detached from the DB."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple


@dataclass(frozen=True)
class BucketInfo:
    name: str
    owner: str
    location: str
    versioning: str  # "" (never enabled), "Enabled" or "Suspended"
    created_at: datetime
    acl: dict[str, Any]
    tags: dict[str, str] | None


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    version_id: str  # "null" in a bucket that never had versioning
    size: int
    etag: str  # unquoted: the MD5 hex, or ``md5-N`` for multipart objects
    last_modified: datetime
    owner: str
    headers: dict[str, str] = field(default_factory=dict)  # content-type, cache-control, ...
    meta: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* without the prefix
    checksums: dict[str, str] = field(default_factory=dict)  # algorithm -> base64 value
    acl: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    delete_marker: bool = False
    is_latest: bool = True
    parts: int = 0
    blob: str | None = None


class ListedObject(NamedTuple):
    """One entry of a listing: what ListObjects and ListObjectVersions show."""

    key: str
    version_id: str
    size: int
    etag: str
    last_modified: datetime
    owner: str
    is_latest: bool
    delete_marker: bool


@dataclass(frozen=True)
class DeleteResult:
    version_id: str | None  # the version removed, or the delete marker written
    delete_marker: bool


@dataclass(frozen=True)
class Listing:
    objects: list[ListedObject]
    prefixes: list[str]
    truncated: bool
    next_marker: str  # the last key or common prefix returned, when truncated
    next_version_marker: str = ""


@dataclass(frozen=True)
class UploadInfo:
    upload_id: str
    bucket: str
    key: str
    owner: str
    created_at: datetime
    headers: dict[str, str]
    meta: dict[str, str]
    acl: dict[str, Any]
    tags: dict[str, str]
    checksum: str
    checksum_type: str


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str
    last_modified: datetime
    checksums: dict[str, str]
    blob: str


class ObjectReader:
    """An open object: its record and a descriptor on its bytes.

    The descriptor keeps the bytes readable even if the object is overwritten or deleted
    meanwhile. Use as a context manager, or call ``close``.
    """

    def __init__(self, info: ObjectInfo, fd: int) -> None:
        self.info = info
        self.fd = fd

    @property
    def path(self) -> Path:
        """A read-only path to these very bytes, valid while the reader is open."""
        return Path(f"/proc/self/fd/{self.fd}")

    def read(self, size: int = -1, offset: int = 0) -> bytes:
        if size < 0:
            size = self.info.size - offset
        return os.pread(self.fd, size, offset)

    def chunks(self, start: int = 0, end: int | None = None, chunk: int = 1 << 20):
        """The bytes from ``start`` to ``end`` (exclusive), a chunk at a time."""
        end = self.info.size if end is None else end
        while start < end:
            data = os.pread(self.fd, min(chunk, end - start), start)
            if not data:
                break
            start += len(data)
            yield data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
