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
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from karri.db.base import utcnow
from karri.db.engine import Database
from karri.walrus import acl as acls
from karri.walrus.blobs import BlobStore, BlobWriter
from karri.walrus.checksums import Digests
from karri.walrus.errors import (
    S3Error,
    access_denied,
    no_such_bucket,
    no_such_key,
    no_such_upload,
    no_such_version,
)
from karri.walrus.listing import current_fetcher, scan, versions_fetcher
from karri.walrus.models import Bucket, ObjectVersion, Part, Segment, Upload
from karri.walrus.multipart import MultipartMixin
from karri.walrus.names import check_bucket_name, check_key
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
BUCKET_TTL = 2.0  # seconds a cached bucket record is trusted (this process updates it)

# The hot statements, built once: constructing a statement costs more than running it.
_c = OBJECTS.c
_SAME_KEY = (_c.bucket == bindparam("b")) & (_c.key == bindparam("k"))
Q_BUCKET = select(BUCKETS).where(BUCKETS.c.name == bindparam("b"))
Q_BUCKET_MODE = select(BUCKETS.c.versioning, BUCKETS.c.owner).where(
    BUCKETS.c.name == bindparam("b")
)
Q_LATEST = select(OBJECTS).where(_SAME_KEY, _c.is_latest.is_(True))
Q_VERSION = select(OBJECTS).where(_SAME_KEY, _c.version_id == bindparam("v"))
Q_VERSION_BRIEF = select(_c.seq, _c.blob, _c.is_latest, _c.delete_marker).where(
    _SAME_KEY, _c.version_id == bindparam("v")
)
Q_NEWEST_SEQ = select(func.max(_c.seq)).where(_SAME_KEY)
D_SEQ = delete(OBJECTS).where(_c.seq == bindparam("s"))
U_NOT_LATEST = update(OBJECTS).where(_SAME_KEY, _c.is_latest.is_(True)).values(is_latest=False)
U_LATEST = update(OBJECTS).where(_c.seq == bindparam("s")).values(is_latest=True)
INSERT = insert(OBJECTS)
SEGMENTS = Segment.__table__
Q_SEGMENTS = (
    select(SEGMENTS.c.blob, SEGMENTS.c.size)
    .where(SEGMENTS.c.object_seq == bindparam("s"))
    .order_by(SEGMENTS.c.number)
)
D_SEGMENTS = delete(SEGMENTS).where(SEGMENTS.c.object_seq == bindparam("s"))
INSERT_SEGMENT = insert(SEGMENTS)
Q_KEY_ROWS = select(_c.seq, _c.blob).where(_SAME_KEY)


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
    )


def _drop(connection: Any, seq: int, blob: str | None) -> list[str | None]:
    """Delete one version's row (and segments); returns the blobs it held."""
    blobs: list[str | None] = [blob]
    if blob is None:
        blobs += connection.execute(Q_SEGMENTS, {"s": seq}).scalars()
        connection.execute(D_SEGMENTS, {"s": seq})
    connection.execute(D_SEQ, {"s": seq})
    return blobs


def listed(row: Any) -> ListedObject:
    return ListedObject(
        row.key, row.version_id, row.size, row.etag, row.last_modified, row.owner,
        row.is_latest, row.delete_marker,
    )  # fmt: skip


class Walrus(MultipartMixin):
    """The object store of one cloud: ``Walrus(db, data_dir / "walrus")``."""

    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.blobs = BlobStore(root)
        # SQLite serializes writers anyway; one lock per process also makes each
        # read-then-write (which version is latest?) atomic without database locks.
        self._writing = threading.Lock()
        self._buckets: dict[str, tuple[float, BucketInfo]] = {}

    @contextlib.contextmanager
    def _write(self) -> Iterator[Session]:
        with self._writing, self.db.session() as session:
            yield session
        self._buckets.clear()  # a write may have changed a bucket

    @contextlib.contextmanager
    def _write_core(self) -> Iterator[Any]:
        """A Core transaction under the write lock: the hot paths skip the ORM."""
        with self._writing, self.db.engine.begin() as connection:
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
        with self._write() as session:
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
        cached = self._buckets.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self.db.engine.connect() as connection:
            row = connection.execute(Q_BUCKET, {"b": name}).first()
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
        with self._write() as session:
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
        with self._write() as session:
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
    ) -> ObjectInfo:
        """Make a written blob the newest version of ``key`` (fsync, rename, commit).

        Either ``writer`` (a finished BlobWriter) or an already durable ``blob`` with its
        ``size`` and ``etag``. The replaced version's bytes are removed after the commit.
        ``upload_id`` names a multipart upload that the same transaction completes;
        ``segments`` (its parts' blobs) then hold the bytes instead of one ``blob``.
        """
        if writer is not None:
            etag = etag or writer.digests.etag
            size = writer.size
            blob = writer.commit()
        assert (blob is not None or segments) and size is not None and etag is not None
        row = ObjectVersion(
            bucket=bucket,
            key=key,
            owner=owner,
            size=size,
            etag=etag,
            blob=blob,
            headers=headers or {},
            meta=meta or {},
            checksums=checksums or {},
            acl=acl,
            tags=tags or {},
            parts=parts,
            last_modified=utcnow(),
        )
        try:
            stale = self._add_version(row, upload_id, segments or [])
        except BaseException:
            if blob is not None:
                self.blobs.unlink([blob])
            raise
        self.blobs.unlink_later(stale)
        return object_info(row, tuple(segments or ()))

    def _add_version(
        self, row: ObjectVersion, upload_id: str | None, segments: list[tuple[str, int]]
    ) -> list[str | None]:
        """Insert ``row`` as the latest version; returns blobs no longer referenced."""
        key = {"b": row.bucket, "k": row.key}
        with self._write_core() as connection:
            mode = connection.execute(Q_BUCKET_MODE, key).first()
            if mode is None:
                raise no_such_bucket(row.bucket)
            stale: list[str | None] = []
            if upload_id is not None:
                kept = {blob for blob, _size in segments}
                stale += self._finish_upload(connection, upload_id, kept)
            if mode.versioning == "Enabled":
                row.version_id = new_version_id()
            else:
                row.version_id = NULL_VERSION
                old = connection.execute(Q_VERSION_BRIEF, key | {"v": NULL_VERSION}).first()
                if old is not None:
                    stale += _drop(connection, old.seq, old.blob)
            connection.execute(U_NOT_LATEST, key)
            row.is_latest = True
            row.delete_marker = False
            values = {c.name: getattr(row, c.name) for c in OBJECTS.columns if c.name != "seq"}
            seq = connection.execute(INSERT, values).inserted_primary_key[0]
            if segments:
                connection.execute(
                    INSERT_SEGMENT,
                    [
                        {"object_seq": seq, "number": n, "blob": blob, "size": size}
                        for n, (blob, size) in enumerate(segments, 1)
                    ],
                )
            return stale

    def _finish_upload(self, connection: Any, upload_id: str, kept: set[str]) -> list[str]:
        """Delete a completed upload's records; returns the part blobs it did not use."""
        uploads, parts = Upload.__table__, Part.__table__
        if (
            connection.execute(select(uploads.c.id).where(uploads.c.id == upload_id)).first()
            is None
        ):
            raise no_such_upload()
        blobs = list(
            connection.execute(select(parts.c.blob).where(parts.c.upload_id == upload_id)).scalars()
        )
        connection.execute(delete(parts).where(parts.c.upload_id == upload_id))
        connection.execute(delete(uploads).where(uploads.c.id == upload_id))
        return [blob for blob in blobs if blob not in kept]

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
            bucket,
            key,
            None,
            owner=owner,
            acl=acl,
            headers=source.headers if headers is None else headers,
            meta=source.meta if meta is None else meta,
            tags=source.tags if tags is None else tags,
            checksums=source.checksums,
            etag=source.etag,
            parts=source.parts,
            blob=blob,
            size=source.size,
            segments=segments,
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
        if row is None:
            if connection.execute(Q_BUCKET_MODE, {"b": bucket}).first() is None:
                raise no_such_bucket(bucket)
            if version_id is not None:
                if version_id != NULL_VERSION and not _plausible_version(version_id):
                    raise S3Error("InvalidArgument", "Invalid version id specified", 400)
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

    def head_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo:
        with self.db.engine.connect() as connection:
            row = self._find(connection, bucket, key, version_id)
            segments: tuple[tuple[str, int], ...] = ()
            if row.blob is None:
                segments = tuple(
                    (seg.blob, seg.size) for seg in connection.execute(Q_SEGMENTS, {"s": row.seq})
                )
            return object_info(row, segments)

    def open_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectReader:
        """The object's record and an open descriptor on its bytes (close it after)."""
        for _attempt in range(5):
            info = self.head_object(bucket, key, version_id)
            if info.segments:
                blob_ids = [blob_id for blob_id, _size in info.segments]
                self.blobs.lease(blob_ids)
                if all(self.blobs.path(b).exists() for b in blob_ids):
                    return ObjectReader(
                        info, None, self.blobs.open, lambda ids=blob_ids: self.blobs.release(ids)
                    )
                self.blobs.release(blob_ids)
                continue
            try:
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
        if info.segments:
            info = self._join_segments(info)
        return self.blobs.path(info.blob or "")

    def _join_segments(self, info: ObjectInfo) -> ObjectInfo:
        """Make a multipart object one file (kernel copy, fsync, then the commit)."""
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
                connection.execute(update(OBJECTS).where(_c.seq == row.seq).values(blob=blob))
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
        params = {"b": bucket, "k": key}
        stale: list[str | None] = []
        with self._write_core() as connection:
            mode = connection.execute(Q_BUCKET_MODE, params).first()
            if mode is None:
                raise no_such_bucket(bucket)
            if version_id is not None:
                row = connection.execute(Q_VERSION_BRIEF, params | {"v": version_id}).first()
                if row is None:
                    if version_id != NULL_VERSION and not _plausible_version(version_id):
                        raise S3Error("InvalidArgument", "Invalid version id specified", 400)
                    return DeleteResult(version_id, False)
                stale += _drop(connection, row.seq, row.blob)
                if row.is_latest:
                    newest = connection.execute(Q_NEWEST_SEQ, params).scalar()
                    if newest is not None:
                        connection.execute(U_LATEST, {"s": newest})
                result = DeleteResult(version_id, row.delete_marker)
            elif mode.versioning == "":
                for found in connection.execute(Q_KEY_ROWS, params).all():
                    stale += _drop(connection, found.seq, found.blob)
                result = DeleteResult(None, False)
            else:
                marker = new_version_id() if mode.versioning == "Enabled" else NULL_VERSION
                if marker == NULL_VERSION:
                    null = params | {"v": NULL_VERSION}
                    old = connection.execute(Q_VERSION_BRIEF, null).first()
                    if old is not None:
                        stale += _drop(connection, old.seq, old.blob)
                connection.execute(U_NOT_LATEST, params)
                owner = mode.owner
                connection.execute(
                    INSERT,
                    dict(
                        bucket=bucket, key=key, version_id=marker, is_latest=True,
                        delete_marker=True, owner=owner, size=0, etag="", blob=None,
                        last_modified=utcnow(), headers={}, meta={}, checksums={},
                        acl=acls.private(owner), tags={}, parts=0,
                    ),
                )  # fmt: skip
                result = DeleteResult(marker, True)
        self.blobs.unlink_later(stale)
        return result

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
        with self.db.engine.connect() as connection:
            rows, prefixes, truncated, last = scan(
                current_fetcher(connection, bucket, prefix),
                lambda row: row.key,
                prefix=prefix,
                delimiter=delimiter,
                after=after,
                max_keys=max_keys,
            )
        return Listing([listed(r) for r in rows], prefixes, truncated, last)

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
                    raise S3Error(
                        "InvalidArgument",
                        "Invalid version id specified",
                        400,
                    )
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
