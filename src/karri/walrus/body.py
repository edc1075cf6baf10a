"""A new object's bytes on their way in, and the options of the version they become.

MinIO hands its object layer a reader that carries the hash checks; here the S3 API
receives the network bytes on its event loop and pushes them in (from the worker thread
that decodes them, 4 MiB at a time while the loop receives the next), so ``ObjectBody``
is that reader turned around: written to, never read from, and no thread hop or copy is
added on the way. Its ``digests`` (MD5, the declared SHA-256, flexible checksums) are what
the caller checks its claims against before it hands the body to ``Walrus.put``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from karri.walrus.blobstore import BlobStore, BlobWriter
from karri.walrus.checksums import Digests
from karri.walrus.locks import Lock

# Objects up to this size keep their bytes in their database row: no file at all.
INLINE_MAX = 64 * 1024


class ObjectBody:
    """Bytes pushed in order by one thread at a time, hashed by ``digests`` as they come.

    ``inline`` (the caller knows the body is at most INLINE_MAX bytes): kept in memory, to
    be stored in the version's row. Otherwise they stream into a blob file created on the
    first write, in the thread that writes. ``abort`` removes whatever was written."""

    def __init__(self, blobs: BlobStore, digests: Digests, *, inline: bool = False) -> None:
        self.digests = digests
        self._blobs = blobs
        self._data: bytearray | None = bytearray() if inline else None
        self._writer: BlobWriter | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._data is not None:
            self.digests.update(data)
            self._data.extend(data)
        else:
            self.writer().write(data)

    @property
    def data(self) -> bytes | None:
        """An inline body's bytes."""
        return None if self._data is None else bytes(self._data)

    def writer(self) -> BlobWriter:
        """The blob being written (created if nothing was written yet)."""
        if self._writer is None:
            self._writer = self._blobs.writer(self.digests)
        return self._writer

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


@dataclass(frozen=True)
class PutOptions:
    """What a new version is besides its bytes.

    ``checksums``: the flexible checksums the caller verified (algorithm -> base64).
    ``if_absent`` (``If-None-Match: *``): PreconditionFailed if the key has a live version
    when the commit runs, so that of racing writers exactly one succeeds. ``bucket_owner``:
    the owner of the bucket the request was allowed to write to; if the bucket was deleted
    and another account made one of that name meanwhile, the commit is NoSuchBucket."""

    owner: str
    acl: dict[str, Any]
    headers: dict[str, str] | None = None
    meta: dict[str, str] | None = None
    tags: dict[str, str] | None = None
    checksums: dict[str, str] | None = None
    if_absent: bool = False
    bucket_owner: str | None = None
    if_match: str | None = None  # ``If-Match``: the ETag the live version must have
    lock: Lock | None = None  # Object Lock retention and legal hold (None: the default)
