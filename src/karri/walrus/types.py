"""What the Walrus interface hands back: plain frozen records, detached from the DB."""

from __future__ import annotations

import os
from collections.abc import Iterator
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
    blob: str | None = None  # the one file holding the bytes, or None when segmented
    segments: tuple[tuple[str, int], ...] = ()  # (blob, size) of a multipart object
    data: bytes | None = field(default=None, repr=False)  # a small object's bytes, inline


class ListedObject(NamedTuple):
    """One entry of a listing: what ListObjects and ListObjectVersions show."""

    key: str
    version_id: str
    size: int
    etag: str
    last_modified: str  # ISO 8601 UTC with milliseconds, as listings show it
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


def byte_ranges(info: ObjectInfo, start: int, end: int) -> list[tuple[str, int, int]]:
    """(blob, offset, length) pieces holding bytes ``start``..``end`` of an object."""
    if not info.segments:
        return [(info.blob or "", start, end - start)] if start < end else []
    pieces, position = [], 0
    for blob_id, size in info.segments:
        low, high = max(start, position), min(end, position + size)
        if low < high:
            pieces.append((blob_id, low - position, high - low))
        position += size
    return pieces


class ObjectReader:
    """An open object: its record and its bytes.

    The bytes stay readable even if the object is overwritten or deleted meanwhile, by
    this process or another: every file holding them (a multipart object's segments
    too) is open from the start. Use as a context manager, or call ``close``.
    """

    def __init__(self, info: ObjectInfo, fd: int | None, segment_fds: tuple[int, ...] = ()):
        self.info = info
        self.data = info.data  # a small object's bytes: no descriptor at all
        self._fd = fd
        self._segment_fds = segment_fds  # one per ``info.segments`` entry

    @property
    def fd(self) -> int:
        """The descriptor of a single-file object."""
        if self._fd is None:
            raise ValueError("only a single-file object has a descriptor (see Walrus.object_path)")
        return self._fd

    @property
    def path(self) -> Path:
        """A read-only path to these very bytes, valid while the reader is open."""
        return Path(f"/proc/self/fd/{self.fd}")

    def spans(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int]]:
        """(descriptor, offset in it, length) pieces covering bytes ``start``..``end``."""
        if self.data is not None:
            raise ValueError("an inline object has no descriptor: read its data")
        end = self.info.size if end is None else end
        if self._fd is not None:
            if start < end:
                yield self._fd, start, end - start
            return
        position = 0
        for fd, (_blob_id, size) in zip(self._segment_fds, self.info.segments, strict=True):
            low, high = max(start, position), min(end, position + size)
            if low < high:
                yield fd, low - position, high - low
            position += size
            if position >= end:
                break

    def read(self, size: int = -1, offset: int = 0) -> bytes:
        end = self.info.size if size < 0 else min(self.info.size, offset + size)
        return b"".join(self.chunks(offset, end))

    def chunks(self, start: int = 0, end: int | None = None, chunk: int = 1 << 20):
        """The bytes from ``start`` to ``end`` (exclusive), a chunk at a time."""
        if self.data is not None:
            yield self.data[start:end]
            return
        for fd, offset, length in self.spans(start, end):
            stop = offset + length
            while offset < stop:
                data = os.pread(fd, min(chunk, stop - offset), offset)
                if not data:
                    raise OSError("object file shorter than its record")
                offset += len(data)
                yield data

    def close(self) -> None:
        if self._fd is not None and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for fd in self._segment_fds:
            os.close(fd)
        self._segment_fds = ()

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
