"""Walrus: buckets and objects, bytes on disk and records in the database.

This is the interface the rest of karri uses (``cloud.walrus``); the S3 API is one
client of it. Every method is synchronous and thread-safe: async callers run them in
a worker thread. Permission checks are explicit (``may``/``require``), so components
acting for the cloud itself can skip them and the S3 API can apply S3's rules.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from karri.db.base import utcnow
from karri.db.engine import Database
from karri.db.reads import CompiledQuery
from karri.timestamps import iso8601
from karri.walrus import acl as acls
from karri.walrus.blobs import BlobStore, BlobWriter
from karri.walrus.checksums import Digests
from karri.walrus.commits import GroupCommitter
from karri.walrus.errors import (
    S3Error,
    access_denied,
    invalid_argument,
    no_such_bucket,
    no_such_key,
    no_such_upload,
    no_such_version,
    precondition_failed,
)
from karri.walrus.listing import CurrentListing, scan, versions_fetcher
from karri.walrus.models import Bucket, ObjectVersion, Part, Segment, Upload
from karri.walrus.multipart import MultipartMixin, invalid_part
from karri.walrus.names import check_bucket_name, check_key
from karri.walrus.shared import SharedCounter, WriteLock
from karri.walrus.types import (
    BucketInfo,
    DeleteResult,
    ListedObject,
    Listing,
    ObjectInfo,
    ObjectReader,
)

log = logging.getLogger("karri.walrus")

NULL_VERSION = "null"
STREAM_CHUNK = 1024 * 1024


def new_version_id() -> str:
    return secrets.token_urlsafe(24)


def bucket_info(row: Bucket) -> BucketInfo:
    return BucketInfo(
        row.name, row.owner, row.location, row.versioning, row.created_at, row.acl, row.tags
    )


OBJECTS = ObjectVersion.__table__
BUCKETS = Bucket.__table__
BUCKET_TTL = 2.0  # seconds a cached bucket record is trusted, unless a change says otherwise

# The hot statements, built once: constructing a statement costs more than running it.
_c = OBJECTS.c
_SAME_KEY = (_c.bucket == bindparam("b")) & (_c.key == bindparam("k"))
Q_BUCKET = select(BUCKETS).where(BUCKETS.c.name == bindparam("b"))
Q_BUCKET_MODE = select(BUCKETS.c.versioning, BUCKETS.c.owner).where(
    BUCKETS.c.name == bindparam("b")
)
Q_LATEST = select(OBJECTS).where(_SAME_KEY, _c.is_latest.is_(True))
Q_VERSION = select(OBJECTS).where(_SAME_KEY, _c.version_id == bindparam("v"))
# Only a multipart object's row has segments to look up (not an inline one, not a marker).
_SEGMENTED = (_c.blob.is_(None) & _c.data.is_(None) & _c.delete_marker.is_(False)).label(
    "segmented"
)
Q_VERSION_BRIEF = select(_c.seq, _c.blob, _SEGMENTED, _c.is_latest, _c.delete_marker).where(
    _SAME_KEY, _c.version_id == bindparam("v")
)
Q_NEWEST_SEQ = select(func.max(_c.seq)).where(_SAME_KEY)
Q_LIVE = select(_c.seq).where(_SAME_KEY, _c.is_latest.is_(True), _c.delete_marker.is_(False))
D_SEQ = delete(OBJECTS).where(_c.seq == bindparam("s"))
U_NOT_LATEST = update(OBJECTS).where(_SAME_KEY, _c.is_latest.is_(True)).values(is_latest=False)
U_LATEST = update(OBJECTS).where(_c.seq == bindparam("s")).values(is_latest=True)
INSERT = insert(OBJECTS).values(
    {c.name: bindparam(c.name) for c in OBJECTS.columns if c.name != "seq"}
)
SEGMENTS = Segment.__table__
Q_SEGMENTS = (
    select(SEGMENTS.c.blob, SEGMENTS.c.size)
    .where(SEGMENTS.c.object_seq == bindparam("s"))
    .order_by(SEGMENTS.c.number)
)
D_SEGMENTS = delete(SEGMENTS).where(SEGMENTS.c.object_seq == bindparam("s"))
INSERT_SEGMENT = insert(SEGMENTS)
Q_KEY_ROWS = select(_c.seq, _c.blob, _SEGMENTED).where(_SAME_KEY)
# What the group committer runs for PUT and DELETE, on the DB-API directly.
HOT_WRITES = [
    Q_BUCKET_MODE, Q_VERSION_BRIEF, Q_KEY_ROWS, Q_NEWEST_SEQ, Q_SEGMENTS, D_SEQ, D_SEGMENTS,
    U_NOT_LATEST, U_LATEST, INSERT,
]  # fmt: skip


def object_info(row: Any, segments: tuple[tuple[str, int], ...] = ()) -> ObjectInfo:
    """An ObjectInfo from an ORM row or a Core row (every column of ``objects``)."""
    return ObjectInfo(
        segments=segments,
        bucket=row.bucket,
        key=row.key,
        version_id=row.version_id,
        size=row.size,
        etag=row.etag,
        last_modified=row.last_modified,
        owner=row.owner,
        headers=row.headers or {},
        meta=row.meta or {},
        checksums=row.checksums or {},
        acl=row.acl,
        tags=row.tags or {},
        delete_marker=row.delete_marker,
        is_latest=row.is_latest,
        parts=row.parts,
        blob=row.blob,
        data=row.data,
    )


def _drop(connection: Any, row: Any) -> list[str | None]:
    """Delete one version's row (a Q_VERSION_BRIEF or Q_KEY_ROWS row, and its segments);
    returns the blobs it held."""
    blobs: list[str | None] = [row.blob]
    if row.segmented:
        blobs += connection.execute(Q_SEGMENTS, {"s": row.seq}).scalars()
        connection.execute(D_SEGMENTS, {"s": row.seq})
    connection.execute(D_SEQ, {"s": row.seq})
    return blobs


def listed(row: Any) -> ListedObject:
    return ListedObject(
        row.key, row.version_id, row.size, row.etag, iso8601(row.last_modified), row.owner,
        row.is_latest, row.delete_marker,
    )  # fmt: skip


class Walrus(MultipartMixin):
    """The object store of one cloud: ``Walrus(db, data_dir / "walrus")``."""

    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.blobs = BlobStore(root)
        # One writer at a time across the processes serving this store; each write
        # transaction also takes the database's write lock first (see take_write_lock).
        self._writing = WriteLock(root / "write.lock")
        self._buckets: dict[str, tuple[float, BucketInfo]] = {}
        self._bucket_changes = SharedCounter(root / "bucket-changes")
        self._buckets_seen = self._bucket_changes.value()  # what ``_buckets`` was filled under
        # Reads outside a write transaction skip SQLAlchemy's execution layer.
        self._read_latest = CompiledQuery(db.engine, Q_LATEST)
        self._read_version = CompiledQuery(db.engine, Q_VERSION)
        self._read_segments = CompiledQuery(db.engine, Q_SEGMENTS)
        self._read_bucket = CompiledQuery(db.engine, Q_BUCKET)
        self._current_listing = CurrentListing(db.engine)
        self._commits = GroupCommitter(db, self._writing, self.blobs.unlink_later, hot=HOT_WRITES)

    @contextlib.contextmanager
    def _write(self) -> Iterator[Session]:
        with self._writing, self.db.write_session() as session:
            yield session

    @contextlib.contextmanager
    def _change_bucket(self) -> Iterator[Session]:
        """``_write`` for a bucket's own record: every process's bucket cache drops it."""
        with self._write() as session:
            yield session
        self._buckets.clear()
        self._bucket_changes.bump()

    @contextlib.contextmanager
    def _write_core(self) -> Iterator[Any]:
        """A Core transaction under the write lock: the hot paths skip the ORM."""
        with self._writing, self.db.write_connection() as connection:
            yield connection

    # -- start-up -------------------------------------------------------------------

    def sweep(self) -> tuple[int, int]:
        """Remove what a crash left behind: temporary files and unreferenced blobs."""

        def referenced(names: set[str]) -> set[str]:
            found: set[str] = set()
            listed = list(names)
            with self.db.session() as session:
                for i in range(0, len(listed), 500):
                    batch = listed[i : i + 500]
                    for model in (ObjectVersion, Part, Segment):
                        found.update(
                            session.scalars(select(model.blob).where(model.blob.in_(batch)))
                        )
            return found

        temps, orphans = self.blobs.sweep(referenced)
        if temps or orphans:
            log.warning("walrus: removed %d temporary files and %d orphan blobs", temps, orphans)
        return temps, orphans

    # -- buckets --------------------------------------------------------------------

    def create_bucket(
        self, name: str, owner: str, *, location: str = "", acl: dict | None = None
    ) -> BucketInfo:
        check_bucket_name(name)
        with self._change_bucket() as session:
            existing = session.get(Bucket, name)
            if existing is not None:
                if existing.owner == owner:
                    raise S3Error(
                        "BucketAlreadyOwnedByYou",
                        "Your previous request to create the named bucket succeeded "
                        "and you already own it.",
                        409,
                    )
                raise S3Error(
                    "BucketAlreadyExists",
                    "The requested bucket name is not available. The bucket namespace is "
                    "shared by all users of the system. Please select a different name "
                    "and try again.",
                    409,
                )
            row = Bucket(
                name=name,
                owner=owner,
                location=location,
                versioning="",
                acl=acl or acls.private(owner),
                created_at=utcnow(),
            )
            session.add(row)
            return bucket_info(row)

    def ensure_bucket(self, name: str, owner: str, *, acl: dict | None = None) -> BucketInfo:
        """The bucket ``name`` owned by ``owner``, created if missing (idempotent)."""
        try:
            return self.create_bucket(name, owner, acl=acl)
        except S3Error as error:
            if error.code != "BucketAlreadyOwnedByYou":
                raise
            return self.get_bucket(name)

    def get_bucket(self, name: str) -> BucketInfo:
        now = time.monotonic()
        changes = self._bucket_changes.value()
        if changes != self._buckets_seen:  # another process changed a bucket
            self._buckets.clear()
            self._buckets_seen = changes
        cached = self._buckets.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        row = self._read_bucket.first(b=name)
        if row is None:
            raise no_such_bucket(name)
        info = bucket_info(row)
        if len(self._buckets) > 10_000:
            self._buckets.clear()
        self._buckets[name] = (now + BUCKET_TTL, info)
        return info

    def list_buckets(self, owner: str) -> list[BucketInfo]:
        with self.db.session() as session:
            rows = session.scalars(
                select(Bucket).where(Bucket.owner == owner).order_by(Bucket.name)
            )
            return [bucket_info(row) for row in rows]

    def delete_bucket(self, name: str) -> None:
        """Only an empty bucket (no objects, versions or delete markers) can go."""
        with self._change_bucket() as session:
            row = session.get(Bucket, name)
            if row is None:
                raise no_such_bucket(name)
            if session.scalar(
                select(ObjectVersion.seq).where(ObjectVersion.bucket == name).limit(1)
            ):
                raise S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty", 409)
            uploads = select(Upload.id).where(Upload.bucket == name)
            blobs = list(session.scalars(select(Part.blob).where(Part.upload_id.in_(uploads))))
            session.execute(delete(Part).where(Part.upload_id.in_(uploads)))
            session.execute(delete(Upload).where(Upload.bucket == name))
            session.delete(row)
        self.blobs.unlink(blobs)

    def update_bucket(self, name: str, **fields: Any) -> BucketInfo:
        """Change ``acl``, ``versioning`` ("Enabled"/"Suspended") or ``tags`` (None clears)."""
        allowed = {"acl", "versioning", "tags"}
        if not set(fields) <= allowed:
            raise TypeError(f"unknown bucket fields: {set(fields) - allowed}")
        with self._change_bucket() as session:
            row = session.get(Bucket, name)
            if row is None:
                raise no_such_bucket(name)
            for field_name, value in fields.items():
                setattr(row, field_name, value)
            return bucket_info(row)

    # -- access -----------------------------------------------------------------------

    def may(
        self,
        principal: str,
        bucket: str,
        permission: str,
        key: str | None = None,
        version_id: str | None = None,
    ) -> bool:
        """Whether ``principal`` (account id, ``acl.CLOUD``, or "" for anonymous) holds
        ``permission`` on the bucket, or on the object when ``key`` is given."""
        try:
            if key is None:
                return acls.allows(self.get_bucket(bucket).acl, principal, permission)
            return acls.allows(self.head_object(bucket, key, version_id).acl, principal, permission)
        except S3Error:
            return False

    def may_read(
        self, principal: str, bucket: str, key: str, version_id: str | None = None
    ) -> bool:
        """May ``principal`` read this object? (aws-exec-read lets ``acl.CLOUD`` read it.)"""
        return self.may(principal, bucket, acls.READ, key, version_id)

    def require_bucket(self, principal: str, name: str, permission: str | None) -> BucketInfo:
        """The bucket, or ``NoSuchBucket``/``AccessDenied``. ``None`` means owner only."""
        bucket = self.get_bucket(name)
        if permission is None:
            if principal != bucket.owner:
                raise access_denied()
        elif not acls.allows(bucket.acl, principal, permission):
            raise access_denied()
        return bucket

    # -- objects: writing ---------------------------------------------------------------

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
        bucket_row = self.get_bucket(bucket)
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
        blob: str | None = None,
        size: int | None = None,
        upload_id: str | None = None,
        segments: list[tuple[str, int]] | None = None,
        data: bytes | None = None,
        if_absent: bool = False,
        bucket_owner: str | None = None,
    ) -> Future[ObjectInfo]:
        """Queue the new version for the next group commit; a Future of its ObjectInfo.

        The bytes are either ``writer`` (a finished BlobWriter: fsynced and renamed here),
        an already durable ``blob`` with its ``size`` and ``etag``, ``data`` (a small
        object's bytes, kept in its row, ``etag`` given), or ``segments``: the blobs of
        the multipart upload ``upload_id``, which the same transaction completes. The
        replaced version's bytes are removed after the commit. ``if_absent`` (a PUT with
        ``If-None-Match: *``): fail with PreconditionFailed if the key has a live version
        when the commit runs, so that of racing writers exactly one succeeds.
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
            delete_marker=False,
        )  # fmt: skip
        future = self._commits.submit(
            partial(_add_version, values, upload_id, list(segments or ()), if_absent, bucket_owner)
        )
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
    ) -> ObjectInfo:
        """A new version of ``key`` with the bytes of ``source`` (a hard link, no copy).

        ``headers``/``meta``/``tags`` of None keep the source's.
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
        )
        if source.data is not None:
            return self.commit_object(bucket, key, None, data=source.data, **fields)
        linked: list[str] = []
        try:
            if source.segments:
                for blob_id, _size in source.segments:
                    linked.append(self.blobs.link(blob_id))
            else:
                linked.append(self.blobs.link(source.blob or ""))
        except (FileNotFoundError, ValueError):
            self.blobs.unlink(linked)
            raise no_such_key() from None  # replaced since it was looked up
        segments = None
        blob: str | None = linked[0]
        if source.segments:
            blob = None
            sizes = [size for _blob, size in source.segments]
            segments = list(zip(linked, sizes, strict=True))
        return self.commit_object(
            bucket, key, None, blob=blob, size=source.size, segments=segments, **fields
        )

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

    # -- objects: reading ---------------------------------------------------------------

    def _find(self, connection: Any, bucket: str, key: str, version_id: str | None) -> Any:
        """The version's row (Core), or S3's error for its absence or its delete marker."""
        params = {"b": bucket, "k": key}
        if version_id is None:
            row = connection.execute(Q_LATEST, params).first()
        else:
            row = connection.execute(Q_VERSION, params | {"v": version_id}).first()
        return _found(
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
        row = _found(row, bucket, lambda: self._read_bucket.first(b=bucket) is not None, version_id)
        segments: tuple[tuple[str, int], ...] = ()
        if row.blob is None and row.data is None:  # a multipart object
            segments = tuple(self._read_segments.rows(s=row.seq))
        return object_info(row, segments)

    def open_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectReader:
        """The object's record and an open descriptor on its bytes (close it after)."""
        for _attempt in range(5):
            info = self.head_object(bucket, key, version_id)
            if info.data is not None:
                return ObjectReader(info, None)
            try:
                if info.segments:
                    fds = self.blobs.open_all([blob_id for blob_id, _size in info.segments])
                    return ObjectReader(info, None, fds)
                return ObjectReader(info, self.blobs.open(info.blob or ""))
            except (FileNotFoundError, ValueError):
                continue  # overwritten between the lookup and the open: look again
        raise S3Error("InternalError", "The object changed too often to be read", 500)

    def object_path(self, bucket: str, key: str, version_id: str | None = None) -> Path:
        """The read-only file holding the object's bytes, for zero-copy consumers.

        Valid until the object is overwritten or deleted; ``open_object`` holds the
        bytes for as long as it stays open.
        """
        info = self.head_object(bucket, key, version_id)
        if info.blob is None:
            info = self._one_file(info)
        return self.blobs.path(info.blob or "")

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
                    update(OBJECTS).where(_c.seq == row.seq).values(blob=blob, data=None)
                )
        self.blobs.unlink_later(stale)
        return self.head_object(info.bucket, info.key, info.version_id)

    def get_object(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        """The whole object in memory: for small objects (manifests) only."""
        with self.open_object(bucket, key, version_id) as reader:
            return reader.read()

    # -- objects: deleting ----------------------------------------------------------------

    def delete_object(self, bucket: str, key: str, version_id: str | None = None) -> DeleteResult:
        """Delete a version, or (no ``version_id``) the key as S3 does: in a versioned
        bucket that writes a delete marker. Deleting what does not exist succeeds."""
        return self.delete_object_later(bucket, key, version_id).result()

    def delete_object_later(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> Future[DeleteResult]:
        """``delete_object`` queued for the next group commit."""
        return self._commits.submit(partial(_delete, bucket, key, version_id))

    # -- listing ------------------------------------------------------------------------

    def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        *,
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
    ) -> Listing:
        """Current objects in key order (UTF-8 byte order), S3's ListObjects semantics.

        The listed records carry what a listing shows (no metadata, ACL or tags)."""
        self.get_bucket(bucket)
        rows, prefixes, truncated, last = scan(
            self._current_listing.fetcher(bucket, prefix),
            lambda row: row.key,
            prefix=prefix,
            delimiter=delimiter,
            after=after,
            max_keys=max_keys,
        )
        return Listing(rows, prefixes, truncated, last)

    def list_versions(
        self,
        bucket: str,
        prefix: str = "",
        *,
        delimiter: str = "",
        key_marker: str = "",
        version_marker: str = "",
        max_keys: int = 1000,
    ) -> Listing:
        self.get_bucket(bucket)
        with self.db.engine.connect() as connection:
            seq = None
            if key_marker and version_marker:
                seq = connection.execute(
                    select(OBJECTS.c.seq).where(
                        OBJECTS.c.bucket == bucket,
                        OBJECTS.c.key == key_marker,
                        OBJECTS.c.version_id == version_marker,
                    )
                ).scalar()
                if seq is None:
                    raise invalid_argument("Invalid version id specified")
            rows, prefixes, truncated, last = scan(
                versions_fetcher(connection, bucket, prefix, seq),
                lambda row: row.key,
                prefix=prefix,
                delimiter=delimiter,
                after=key_marker,
                max_keys=max_keys,
            )
            next_version = ""
            if truncated and rows and rows[-1].key == last:
                next_version = rows[-1].version_id
            return Listing([listed(r) for r in rows], prefixes, truncated, last, next_version)


def _add_version(
    values: dict[str, Any],
    upload_id: str | None,
    segments: list[tuple[str, int]],
    if_absent: bool,
    bucket_owner: str | None,
    connection: Any,
) -> tuple[ObjectInfo, list[str | None]]:
    """Insert ``values`` as the latest version of its key (a group-commit write)."""
    key = {"b": values["bucket"], "k": values["key"]}
    mode = connection.execute(Q_BUCKET_MODE, key).first()
    if mode is None or bucket_owner not in (None, mode.owner):
        raise no_such_bucket(values["bucket"])
    if if_absent and connection.execute(Q_LIVE, key).first() is not None:
        raise precondition_failed()
    stale: list[str | None] = []
    if upload_id is not None:
        stale += _finish_upload(connection, upload_id, {blob for blob, _size in segments})
    if mode.versioning == "Enabled":
        values["version_id"] = new_version_id()
    else:
        values["version_id"] = NULL_VERSION
        old = connection.execute(Q_VERSION_BRIEF, key | {"v": NULL_VERSION}).first()
        if old is not None:
            stale += _drop(connection, old)
    if mode.versioning:  # else the null version was the only one, and it is gone
        connection.execute(U_NOT_LATEST, key)
    seq = connection.execute(INSERT, values).inserted_primary_key[0]
    if segments:
        connection.execute(
            INSERT_SEGMENT,
            [
                {"object_seq": seq, "number": n, "blob": blob, "size": size}
                for n, (blob, size) in enumerate(segments, 1)
            ],
        )
    return object_info(SimpleNamespace(**values), tuple(segments)), stale


def _finish_upload(connection: Any, upload_id: str, kept: set[str]) -> list[str]:
    """Delete a completed upload's records; returns the part blobs it did not use."""
    uploads, parts = Upload.__table__, Part.__table__
    if connection.execute(select(uploads.c.id).where(uploads.c.id == upload_id)).first() is None:
        raise no_such_upload()
    blobs = list(
        connection.execute(select(parts.c.blob).where(parts.c.upload_id == upload_id)).scalars()
    )
    if not kept <= set(blobs):  # a part was uploaded again since the parts were checked
        raise invalid_part()
    connection.execute(delete(parts).where(parts.c.upload_id == upload_id))
    connection.execute(delete(uploads).where(uploads.c.id == upload_id))
    return [blob for blob in blobs if blob not in kept]


def _delete(
    bucket: str, key: str, version_id: str | None, connection: Any
) -> tuple[DeleteResult, list[str | None]]:
    """Walrus.delete_object as a group-commit write."""
    params = {"b": bucket, "k": key}
    stale: list[str | None] = []
    mode = connection.execute(Q_BUCKET_MODE, params).first()
    if mode is None:
        raise no_such_bucket(bucket)
    if version_id is not None:
        row = connection.execute(Q_VERSION_BRIEF, params | {"v": version_id}).first()
        if row is None:
            if version_id != NULL_VERSION and not _plausible_version(version_id):
                raise invalid_argument("Invalid version id specified")
            return DeleteResult(version_id, False), stale
        stale += _drop(connection, row)
        if row.is_latest:
            newest = connection.execute(Q_NEWEST_SEQ, params).scalar()
            if newest is not None:
                connection.execute(U_LATEST, {"s": newest})
        return DeleteResult(version_id, row.delete_marker), stale
    if mode.versioning == "":
        for found in connection.execute(Q_KEY_ROWS, params).all():
            stale += _drop(connection, found)
        return DeleteResult(None, False), stale
    marker = new_version_id() if mode.versioning == "Enabled" else NULL_VERSION
    if marker == NULL_VERSION:
        old = connection.execute(Q_VERSION_BRIEF, params | {"v": NULL_VERSION}).first()
        if old is not None:
            stale += _drop(connection, old)
    connection.execute(U_NOT_LATEST, params)
    connection.execute(
        INSERT,
        dict(
            bucket=bucket, key=key, version_id=marker, is_latest=True, delete_marker=True,
            owner=mode.owner, size=0, etag="", blob=None, data=None, last_modified=utcnow(),
            headers={}, meta={}, checksums={}, acl=acls.private(mode.owner), tags={}, parts=0,
        ),
    )  # fmt: skip
    return DeleteResult(marker, True), stale


def _succeeded(future: Future) -> bool:
    return not future.cancelled() and future.exception() is None


def _found(row: Any, bucket: str, bucket_exists: Callable[[], bool], version_id: str | None) -> Any:
    """``row`` if it is a readable version, else S3's error for its absence (telling a
    missing bucket from a missing key) or for its delete marker."""
    if row is None:
        if not bucket_exists():
            raise no_such_bucket(bucket)
        if version_id is not None:
            if version_id != NULL_VERSION and not _plausible_version(version_id):
                raise invalid_argument("Invalid version id specified")
            raise no_such_version()
        raise no_such_key()
    if row.delete_marker:
        headers = {"x-amz-delete-marker": "true", "x-amz-version-id": row.version_id}
        if version_id is None:
            raise S3Error("NoSuchKey", "The specified key does not exist.", 404, headers)
        raise S3Error(
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            405,
            headers | {"allow": "DELETE"},
        )
    return row


def _plausible_version(version_id: str) -> bool:
    return 8 <= len(version_id) <= 64 and all(c.isalnum() or c in "-_." for c in version_id)


def _chunks(data: bytes | Iterable[bytes] | IO[bytes]) -> Iterator[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield bytes(data)
    elif hasattr(data, "read"):
        while chunk := data.read(STREAM_CHUNK):  # type: ignore[union-attr]
            yield chunk
    else:
        yield from data  # type: ignore[misc]
