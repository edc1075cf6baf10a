"""Buckets: their records, S3's rules for creating and deleting them, and a per-process
cache of them that every process's change invalidates (``shared.SharedCounter``)."""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from karri.db.base import utcnow
from karri.db.engine import Database
from karri.db.reads import CompiledQuery
from karri.walrus import acl as acls
from karri.walrus.blobstore import BlobStore
from karri.walrus.errors import S3Error, access_denied, bucket_already_exists, no_such_bucket
from karri.walrus.locks import CONFIG as LOCK_CONFIG
from karri.walrus.models import Bucket, ObjectVersion, Part, Upload
from karri.walrus.names import SYSTEM_PREFIX, check_bucket_name
from karri.walrus.queries import Q_BUCKET, bucket_info
from karri.walrus.shared import SharedCounter, WriteLock
from karri.walrus.types import BucketInfo

TTL = 2.0  # seconds a cached bucket record is trusted, unless a change says otherwise


class Buckets:
    """The buckets of one store (``Walrus.buckets``)."""

    def __init__(self, db: Database, root: Path, writing: WriteLock, blobs: BlobStore) -> None:
        self._db = db
        self._writing = writing
        self._blobs = blobs
        self._cache: dict[str, tuple[float, BucketInfo]] = {}
        self._changes = SharedCounter(root / "bucket-changes")
        self._seen = self._changes.value()  # what ``_cache`` was filled under
        self._read = CompiledQuery(db.engine, Q_BUCKET)

    @contextlib.contextmanager
    def _change(self) -> Iterator[Session]:
        """A write transaction on a bucket's record: every process's cache drops it."""
        with self._writing, self._db.write_session() as session:
            yield session
        self._cache.clear()
        self._changes.bump()

    def exists(self, name: str) -> bool:
        return self._read.first(b=name) is not None

    def create(
        self,
        name: str,
        owner: str,
        *,
        location: str = "",
        acl: dict | None = None,
        object_lock: bool = False,
        system_name: bool = True,
        configs: dict[str, Any] | None = None,
    ) -> BucketInfo:
        """A new bucket; ``object_lock``: with Object Lock enabled (and so versioning);
        ``configs``: its first configurations (see ``configure``). ``system_name=False``
        (a client's CreateBucket): names under SYSTEM_PREFIX are taken already
        (BucketAlreadyExists), whether karri made that bucket yet or not."""
        check_bucket_name(name)
        with self._change() as session:
            existing = session.get(Bucket, name)
            if existing is not None:
                if existing.owner == owner:
                    raise S3Error(
                        "BucketAlreadyOwnedByYou",
                        "Your previous request to create the named bucket succeeded "
                        "and you already own it.",
                        409,
                    )
                raise bucket_already_exists()
            if not system_name and name.startswith(SYSTEM_PREFIX):
                raise bucket_already_exists()
            row = Bucket(
                name=name,
                owner=owner,
                location=location,
                versioning="Enabled" if object_lock else "",
                acl=acl or acls.private(owner),
                created_at=utcnow(),
                configs=({LOCK_CONFIG: {}} if object_lock else {}) | (configs or {}) or None,
            )
            session.add(row)
            return bucket_info(row)

    def ensure(self, name: str, owner: str, *, acl: dict | None = None) -> BucketInfo:
        """The bucket ``name`` owned by ``owner``, created if missing (idempotent)."""
        try:
            return self.create(name, owner, acl=acl)
        except S3Error as error:
            if error.code != "BucketAlreadyOwnedByYou":
                raise
            return self.get(name)

    def get(self, name: str) -> BucketInfo:
        now = time.monotonic()
        changes = self._changes.value()
        if changes != self._seen:  # another process changed a bucket
            self._cache.clear()
            self._seen = changes
        cached = self._cache.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        row = self._read.first(b=name)
        if row is None:
            raise no_such_bucket(name)
        info = bucket_info(row)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[name] = (now + TTL, info)
        return info

    def peek(self, name: str) -> BucketInfo | None:
        """The cached record while it is fresh, else None: never asks the database (for
        the event loop, which must not wait on it)."""
        if self._changes.value() != self._seen:
            return None
        cached = self._cache.get(name)
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def list(
        self,
        owner: str,
        *,
        prefix: str = "",
        after: str = "",
        limit: int | None = None,
        locations: tuple[str, ...] | None = None,
    ) -> builtins.list[BucketInfo]:
        """``owner``'s buckets in name order: those named after ``after``, starting with
        ``prefix`` and (if given) at one of ``locations``, at most ``limit`` of them."""
        query = select(Bucket).where(Bucket.owner == owner, Bucket.name > after)
        if locations is not None:
            query = query.where(Bucket.location.in_(locations))
        if prefix:
            query = query.where(Bucket.name.startswith(prefix, autoescape=True))
        with self._db.session() as session:
            rows = session.scalars(query.order_by(Bucket.name).limit(limit))
            return [bucket_info(row) for row in rows]

    def delete(self, name: str) -> None:
        """Only an empty bucket (no objects, versions or delete markers) can go."""
        with self._change() as session:
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
        self._blobs.unlink(blobs)

    def update(self, name: str, **fields: Any) -> BucketInfo:
        """Change ``acl``, ``versioning`` ("Enabled"/"Suspended") or ``tags`` (None clears)."""
        allowed = {"acl", "versioning", "tags"}
        if not set(fields) <= allowed:
            raise TypeError(f"unknown bucket fields: {set(fields) - allowed}")
        with self._change() as session:
            row = session.get(Bucket, name)
            if row is None:
                raise no_such_bucket(name)
            if fields.get("versioning", "Enabled") != "Enabled" and LOCK_CONFIG in (
                row.configs or {}
            ):
                raise S3Error(
                    "InvalidBucketState",
                    "An Object Lock configuration is present on this bucket, so the "
                    "versioning state cannot be changed.",
                    409,
                )
            for field_name, value in fields.items():
                setattr(row, field_name, value)
            return bucket_info(row)

    def configure(self, name: str, config: str, value: Any) -> BucketInfo:
        """Set one of the bucket's configurations (``policy``, ``cors``, ...), or remove
        it with ``None``; the others stay as they are. Object Lock (``object-lock``) is
        enabled only on a versioned bucket, and never removed."""
        with self._change() as session:
            row = session.get(Bucket, name)
            if row is None:
                raise no_such_bucket(name)
            if config == LOCK_CONFIG and (value is None or row.versioning != "Enabled"):
                raise S3Error(
                    "InvalidBucketState",
                    "Versioning must be 'Enabled' on the bucket to apply a Object Lock "
                    "configuration",
                    409,
                )
            configs = dict(row.configs or {})
            if value is None:
                configs.pop(config, None)
            else:
                configs[config] = value
            row.configs = configs or None
            return bucket_info(row)

    def require(self, principal: str, name: str, permission: str | None) -> BucketInfo:
        """The bucket, or ``NoSuchBucket``/``AccessDenied``. ``None`` means owner only."""
        bucket = self.get(name)
        if permission is None:
            if principal != bucket.owner:
                raise access_denied()
        elif not acls.allows(bucket.acl, principal, permission):
            raise access_denied()
        return bucket

    # -- objects: writing ---------------------------------------------------------------
