"""What the Walrus interface hands back: plain frozen records, detached from the DB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from karri.walrus.acl import private
from karri.walrus.blobstore import OpenBlob
from karri.walrus.errors import S3Error
from karri.walrus.locks import UNLOCKED, Lock

OWNERSHIP = "ownership"  # the configuration holding S3 Object Ownership's setting
OWNER_ENFORCED = "BucketOwnerEnforced"


@dataclass(frozen=True)
class BucketInfo:
    name: str
    owner: str
    location: str
    versioning: str  # "" (never enabled), "Enabled" or "Suspended"
    created_at: datetime
    acl: dict[str, Any]
    tags: dict[str, str] | None
    # Configurations by sub-resource name ("policy", "cors", "lifecycle", ...); a name
    # that is absent is not configured. Written by ``Buckets.configure``.
    configs: dict[str, Any] = field(default_factory=dict)

    def config(self, name: str) -> Any:
        """One configuration, or None when the bucket has none of that name."""
        return self.configs.get(name)

    @property
    def acls_disabled(self) -> bool:
        """S3 Object Ownership's ``BucketOwnerEnforced``: the owner owns every object."""
        return self.configs.get(OWNERSHIP) == OWNER_ENFORCED

    def object_acl(self, acl: dict[str, Any]) -> dict[str, Any]:
        """What decides about one of the bucket's objects: its ACL, or, with ACLs off,
        the bucket owner's full control alone (whatever the object's ACL once said)."""
        return private(self.owner) if self.acls_disabled else acl


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
    # A multipart object's parts: (size, checksums) each, in order; () when not kept.
    part_list: tuple[tuple[int, dict[str, str]], ...] = ()
    blob: str | None = None  # the one file holding the bytes, or None when segmented
    segments: tuple[tuple[str, int], ...] = ()  # (blob, size) of a multipart object
    data: bytes | None = field(default=None, repr=False)  # a small object's bytes, inline
    lock: Lock = UNLOCKED  # Object Lock retention and legal hold


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
    lock: Lock = UNLOCKED  # what the completed object gets
    initiator: str = ""  # an IAM user's or session's ARN; "" when the owner account


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


def replaced_while_read() -> S3Error:
    return S3Error("InternalError", "The object was replaced while it was being read.", 500)


class ObjectReader:
    """An open object: its record and its bytes. Use as a context manager, or ``close``.

    A single-blob object's bytes stay readable even if it is overwritten or deleted
    meanwhile, by this process or another, for as long as its store keeps an open blob's
    bytes (a file: while open). A multipart object holds one blob open at a time,
    whatever its number of parts (a client that stalls must not pin hundreds of
    descriptors): its first segment is open from the start and each next one is opened
    (``open_segment``, which must not block) as reading reaches it. A segment removed
    before it was reached (the object was replaced while a slow reader read it) ends the
    read with ``replaced_while_read``.
    """

    def __init__(
        self,
        info: ObjectInfo,
        blob: OpenBlob | None,
        open_segment: Callable[[str], OpenBlob] | None = None,
        first_segment: OpenBlob | None = None,
    ):
        self.info = info
        self.data = info.data  # a small object's bytes: no blob at all
        self._blob = blob
        self._open_segment = open_segment
        # The one open segment: (its index in ``info.segments``, its blob).
        self._current = (0, first_segment) if first_segment is not None else None

    def _segment(self, index: int) -> OpenBlob:
        if self._current is not None and self._current[0] == index:
            return self._current[1]
        self._close_segment()
        assert self._open_segment is not None
        try:
            blob = self._open_segment(self.info.segments[index][0])
        except (FileNotFoundError, ValueError):
            raise replaced_while_read() from None
        self._current = (index, blob)
        return blob

    def _close_segment(self) -> None:
        if self._current is not None:
            self._current[1].close()
            self._current = None

    @property
    def fd(self) -> int:
        """The descriptor of a single-file object."""
        fd = self._blob.fileno() if self._blob is not None else None
        if fd is None or fd < 0:
            raise ValueError("only a single-file object has a descriptor (see Walrus.object_path)")
        return fd

    @property
    def path(self) -> Path:
        """A read-only path to these very bytes, valid while the reader is open."""
        return Path(f"/proc/self/fd/{self.fd}")

    def spans(self, start: int = 0, end: int | None = None) -> Iterator[tuple[OpenBlob, int, int]]:
        """(open blob, offset in it, length) pieces covering bytes ``start``..``end``."""
        if self.data is not None:
            raise ValueError("an inline object has no blob: read its data")
        end = self.info.size if end is None else end
        if self._blob is not None:
            if start < end:
                yield self._blob, start, end - start
            return
        position = 0
        for index, (_blob_id, size) in enumerate(self.info.segments):
            low, high = max(start, position), min(end, position + size)
            if low < high:
                yield self._segment(index), low - position, high - low
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
        for blob, offset, length in self.spans(start, end):
            stop = offset + length
            while offset < stop:
                data = blob.pread(min(chunk, stop - offset), offset)
                if not data:
                    raise OSError("object blob shorter than its record")
                offset += len(data)
                yield data

    def close(self) -> None:
        if self._blob is not None:
            self._blob.close()
        self._close_segment()

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
