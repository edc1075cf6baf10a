"""Objects: writing a new version (streamed, inline, linked or from multipart segments),
reading one, changing its ACL or tags, and deleting it.

Writes of versions go through the group committer (``commits.py``, ``versions.py``); the
``*_later`` methods return its Future, so that async callers await the commit on their
event loop without a worker thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import IO, Any

from sqlalchemy import update

from karri.db.base import utcnow
from karri.db.engine import Database
from karri.db.reads import CompiledQuery
from karri.walrus import acl as acls
from karri.walrus.blobstore import BlobStore, BlobWriter
from karri.walrus.body import ObjectBody, PutOptions
from karri.walrus.buckets import Buckets
from karri.walrus.checksums import Digests
from karri.walrus.commits import GroupCommitter
from karri.walrus.errors import S3Error, no_such_key
from karri.walrus.locks import UNLOCKED, Lock, check_retention_change, lock_of
from karri.walrus.names import check_key
from karri.walrus.queries import (
    D_SEGMENTS,
    HOT_WRITES,
    OBJECTS,
    Q_BUCKET_MODE,
    Q_LATEST,
    Q_SEGMENTS,
    Q_VERSION,
    Q_VERSION_BRIEF,
    object_info,
)
from karri.walrus.shared import WriteLock
from karri.walrus.types import DeleteResult, ObjectInfo, ObjectReader
from karri.walrus.versions import add_version, delete_version, expire_version, found

STREAM_CHUNK = 1024 * 1024


class Objects:
    """The objects of one store (``Walrus.objects``)."""

    def __init__(
        self, db: Database, blobs: BlobStore, writing: WriteLock, buckets: Buckets
    ) -> None:
        self._db = db
        self.blobs = blobs
        self._writing = writing
        self._buckets = buckets
        # Reads outside a write transaction skip SQLAlchemy's execution layer.
        self._read_latest = CompiledQuery(db.engine, Q_LATEST)
        self._read_version = CompiledQuery(db.engine, Q_VERSION)
        self._read_segments = CompiledQuery(db.engine, Q_SEGMENTS)
        self._commits = GroupCommitter(db, writing, blobs.unlink_later, hot=HOT_WRITES)

    @contextlib.contextmanager
    def _write_core(self) -> Iterator[Any]:
        """A Core transaction under the write lock: the hot paths skip the ORM."""
        with self._writing, self._db.write_connection() as connection:
            yield connection

    def writer(self, *, sha256: bool = False, checksums: Iterable[str] = ()) -> BlobWriter:
        """A temporary blob to stream bytes into; hand it to ``commit_object``."""
        return self.blobs.writer(Digests(sha256=sha256, checksums=checksums))

    def put_object(
        self,
        bucket: str,
        key: str,
        data: bytes | Iterable[bytes] | IO[bytes],
        *,
        owner: str | None = None,
        headers: dict[str, str] | None = None,
        meta: dict[str, str] | None = None,
        acl: dict | None = None,
        checksums: Iterable[str] = (),
    ) -> ObjectInfo:
        """Store an object from bytes, an iterator of bytes or a binary file.

        Constant memory; durable when it returns. ``owner`` defaults to the bucket's.
        ``info.size`` and ``info.etag`` say what was stored.
        """
        check_key(key)
        bucket_row = self._buckets.get(bucket)
        owner = owner or bucket_row.owner
        writer = self.writer(checksums=checksums)
        try:
            for chunk in _chunks(data):
                writer.write(chunk)
            return self.commit_object(
                bucket,
                key,
                writer,
                owner=owner,
                headers=headers,
                meta=meta,
                acl=acl or acls.private(owner),
                checksums={name: writer.digests.checksum(name) for name in checksums},
            )
        except BaseException:
            writer.abort()
            raise

    def put(
        self, bucket: str, key: str, body: ObjectBody, options: PutOptions
    ) -> Future[ObjectInfo]:
        """Queue ``body`` as the newest version of ``key``; a Future of its ObjectInfo.

        A streamed body's blob is made durable (fsync, rename) here, in the caller's
        thread; an inline one is stored by the commit itself. A body that cannot be
        queued is aborted."""
        data = body.data
        if data is not None:
            return self.commit_object_later(
                bucket, key, None, data=data, etag=body.digests.etag, **vars(options)
            )
        try:
            return self.commit_object_later(bucket, key, body.writer(), **vars(options))
        except BaseException:
            body.abort()
            raise

    def commit_object(
        self, bucket: str, key: str, writer: BlobWriter | None, **fields: Any
    ) -> ObjectInfo:
        """Make a written blob the newest version of ``key`` (fsync, rename, commit).

        See ``commit_object_later`` for the fields; this waits for the commit."""
        return self.commit_object_later(bucket, key, writer, **fields).result()

    def commit_object_later(
        self,
        bucket: str,
        key: str,
        writer: BlobWriter | None,
        *,
        owner: str,
        acl: dict,
        headers: dict[str, str] | None = None,
        meta: dict[str, str] | None = None,
        checksums: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        etag: str | None = None,
        parts: int = 0,
        part_list: list[tuple[int, dict[str, str]]] | None = None,
        blob: str | None = None,
        size: int | None = None,
        upload_id: str | None = None,
        segments: list[tuple[str, int]] | None = None,
        data: bytes | None = None,
        if_absent: bool = False,
        if_match: str | None = None,
        bucket_owner: str | None = None,
        lock: Lock | None = None,
    ) -> Future[ObjectInfo]:
        """Queue the new version for the next group commit; a Future of its ObjectInfo.

        The bytes are either ``writer`` (a finished BlobWriter: fsynced and renamed here),
        an already durable ``blob`` with its ``size`` and ``etag``, ``data`` (a small
        object's bytes, kept in its row, ``etag`` given), or ``segments``: the blobs of
        the multipart upload ``upload_id``, which the same transaction completes. The
        replaced version's bytes are removed after the commit. ``if_absent`` (a PUT with
        ``If-None-Match: *``): fail with PreconditionFailed if the key has a live version
        when the commit runs, so that of racing writers exactly one succeeds; ``if_match``
        (``If-Match``): likewise, unless its ETag is the live version's (NoSuchKey without
        one). ``lock``: the version's Object Lock (else its bucket's default retention).
        ``bucket_owner``: the owner of the bucket the request was allowed to write to; if
        the bucket was deleted and another account made one of the same name meanwhile
        (a body can take long), the commit is NoSuchBucket instead of landing there.
        """
        if writer is not None:
            etag = etag or writer.digests.etag
            size = writer.size
            blob = writer.commit()
        elif data is not None:
            size = len(data)
        assert (blob is not None or segments or data is not None) and size is not None
        assert etag is not None
        values = dict(
            bucket=bucket, key=key, owner=owner, size=size, etag=etag, blob=blob, data=data,
            headers=headers or {}, meta=meta or {}, checksums=checksums or {}, acl=acl,
            tags=tags or {}, parts=parts, last_modified=utcnow(), is_latest=True,
            part_list=[list(part) for part in part_list] if part_list else None,
            delete_marker=False, **(lock or UNLOCKED).columns(),
        )  # fmt: skip
        future = self._commits.submit(
            partial(
                add_version, values, upload_id, list(segments or ()), if_absent, if_match,
                bucket_owner,
            )
        )  # fmt: skip
        if blob is not None:
            future.add_done_callback(
                lambda done: None if _succeeded(done) else self.blobs.unlink([blob])
            )
        return future

    def copy_object(
        self,
        source: ObjectInfo,
        bucket: str,
        key: str,
        *,
        owner: str,
        acl: dict,
        headers: dict[str, str] | None = None,
        meta: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        lock: Lock | None = None,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """A new version of ``key`` with the bytes of ``source`` (a hard link, no copy).

        ``headers``/``meta``/``tags`` of None keep the source's; the source's lock is not
        copied (``lock``, else the bucket's default retention). ``if_absent``/``if_match``:
        a conditional write (see ``commit_object_later``).
        """
        check_key(key)
        fields = dict(
            owner=owner,
            acl=acl,
            headers=source.headers if headers is None else headers,
            meta=source.meta if meta is None else meta,
            tags=source.tags if tags is None else tags,
            checksums=source.checksums,
            etag=source.etag,
            parts=source.parts,
            lock=lock,
            if_absent=if_absent,
            if_match=if_match,
            part_list=list(source.part_list),
        )
        if source.data is not None:
            return self.commit_object(bucket, key, None, data=source.data, **fields)
        linked: list[str] = []
        try:
            if source.segments:
                for blob_id, size in source.segments:
                    linked.append(self.blobs.link(blob_id, size))
            else:
                linked.append(self.blobs.link(source.blob or "", source.size))
        except (FileNotFoundError, ValueError):
            self.blobs.unlink(linked)
            raise no_such_key() from None  # replaced since it was looked up
        segments = None
        blob: str | None = linked[0]
        if source.segments:
            blob = None
            sizes = [size for _blob, size in source.segments]
            segments = list(zip(linked, sizes, strict=True))
        try:
            return self.commit_object(
                bucket, key, None, blob=blob, size=source.size, segments=segments, **fields
            )
        except BaseException:
            self.blobs.unlink(linked)  # links for a version that was not committed
            raise

    def update_object(
        self, bucket: str, key: str, version_id: str | None = None, **fields: Any
    ) -> ObjectInfo:
        """Change an existing version's ``acl`` or ``tags``."""
        if not set(fields) <= {"acl", "tags"}:
            raise TypeError("only acl and tags can change")
        with self._write_core() as connection:
            row = self._find(connection, bucket, key, version_id)
            connection.execute(update(OBJECTS).where(OBJECTS.c.seq == row.seq).values(**fields))
        return replace(object_info(row), **fields)

    def lock_object(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        *,
        retention: Lock | None = None,
        legal_hold: bool | None = None,
        bypass: bool = False,
    ) -> ObjectInfo:
        """Set a version's Object Lock retention (``retention``'s mode and date; a Lock
        without them removes it) or its legal hold, as the retention in force allows
        (``locks.check_retention_change``)."""
        with self._write_core() as connection:
            row = self._find(connection, bucket, key, version_id)
            lock = lock_of(row)
            if retention is not None:
                check_retention_change(lock, retention, utcnow(), bypass)
                lock = replace(lock, mode=retention.mode, until=retention.until)
            if legal_hold is not None:
                lock = replace(lock, legal_hold=legal_hold)
            connection.execute(
                update(OBJECTS).where(OBJECTS.c.seq == row.seq).values(**lock.columns())
            )
        return replace(object_info(row), lock=lock)

    # -- objects: reading ---------------------------------------------------------------

    def _find(self, connection: Any, bucket: str, key: str, version_id: str | None) -> Any:
        """The version's row (Core), or S3's error for its absence or its delete marker."""
        params = {"b": bucket, "k": key}
        if version_id is None:
            row = connection.execute(Q_LATEST, params).first()
        else:
            row = connection.execute(Q_VERSION, params | {"v": version_id}).first()
        return found(
            row,
            bucket,
            lambda: connection.execute(Q_BUCKET_MODE, {"b": bucket}).first() is not None,
            version_id,
        )

    def head_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo:
        if version_id is None:
            row = self._read_latest.first(b=bucket, k=key)
        else:
            row = self._read_version.first(b=bucket, k=key, v=version_id)
        row = found(row, bucket, lambda: self._buckets.exists(bucket), version_id)
        segments: tuple[tuple[str, int], ...] = ()
        if row.blob is None and row.data is None:  # a multipart object
            segments = tuple(self._read_segments.rows(s=row.seq))
        return object_info(row, segments)

    def open_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectReader:
        """The object's record and its bytes, open (close the reader after): see
        ObjectReader."""
        for _attempt in range(5):
            info = self.head_object(bucket, key, version_id)
            if info.data is not None:
                return ObjectReader(info, None)
            try:
                if info.segments:
                    first = self.blobs.open(info.segments[0][0])
                    later = partial(self.blobs.open, verify=False)
                    return ObjectReader(info, None, later, first)
                return ObjectReader(info, self.blobs.open(info.blob or ""))
            except (FileNotFoundError, ValueError):
                continue  # overwritten between the lookup and the open: look again
        raise S3Error("InternalError", "The object changed too often to be read", 500)

    def object_path(self, bucket: str, key: str, version_id: str | None = None) -> Path | None:
        """The read-only file holding the object's bytes, for zero-copy consumers; None
        when the store keeps no local files (read through ``open_object`` then).

        Valid until the object is overwritten or deleted; ``open_object`` holds the
        bytes for as long as it stays open.
        """
        info = self.head_object(bucket, key, version_id)
        probe = info.blob or next((blob for blob, _size in info.segments), None)
        if probe is not None and self.blobs.local_path(probe) is None:
            return None
        if info.blob is None:
            info = self._one_file(info)
        return self.blobs.local_path(info.blob or "")

    def _one_file(self, info: ObjectInfo) -> ObjectInfo:
        """Give a multipart or an inline object one file of its own (kernel copy or
        write, fsync, then the commit)."""
        if info.data is not None:
            writer = self.blobs.writer(Digests())
            writer.write(info.data)
        else:
            sources = [(blob_id, 0, size) for blob_id, size in info.segments]
            writer = self.blobs.concatenate(sources, Digests())
        blob = writer.commit()
        with self._write_core() as connection:
            row = connection.execute(
                Q_VERSION_BRIEF, {"b": info.bucket, "k": info.key, "v": info.version_id}
            ).first()
            if row is None or row.blob is not None:
                stale = [blob]  # deleted or joined meanwhile
            else:
                stale = [b for b, _size in connection.execute(Q_SEGMENTS, {"s": row.seq})]
                connection.execute(D_SEGMENTS, {"s": row.seq})
                connection.execute(
                    update(OBJECTS).where(OBJECTS.c.seq == row.seq).values(blob=blob, data=None)
                )
        self.blobs.unlink_later(stale)
        return self.head_object(info.bucket, info.key, info.version_id)

    def get_object(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        """The whole object in memory: for small objects (manifests) only."""
        with self.open_object(bucket, key, version_id) as reader:
            return reader.read()

    # -- objects: deleting ----------------------------------------------------------------

    def delete_object(
        self, bucket: str, key: str, version_id: str | None = None, *, bypass: bool = False
    ) -> DeleteResult:
        """Delete a version, or (no ``version_id``) the key as S3 does: in a versioned
        bucket that writes a delete marker. Deleting what does not exist succeeds; a
        version under Object Lock is AccessDenied (``bypass``: governance retention
        does not hold)."""
        return self.delete_object_later(bucket, key, version_id, bypass=bypass).result()

    def delete_object_later(
        self, bucket: str, key: str, version_id: str | None = None, *, bypass: bool = False
    ) -> Future[DeleteResult]:
        """``delete_object`` queued for the next group commit."""
        return self._commits.submit(partial(delete_version, bucket, key, version_id, bypass))

    def expire_later(self, bucket: str, key: str, seq: int, kind: str) -> Future:
        """A lifecycle deletion (``versions.expire_version``) queued for the next commit."""
        return self._commits.submit(partial(expire_version, bucket, key, seq, kind))


def _succeeded(future: Future) -> bool:
    return not future.cancelled() and future.exception() is None


def _chunks(data: bytes | Iterable[bytes] | IO[bytes]) -> Iterator[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield bytes(data)
    elif hasattr(data, "read"):
        while chunk := data.read(STREAM_CHUNK):  # type: ignore[union-attr]
            yield chunk
    else:
        yield from data  # type: ignore[misc]
