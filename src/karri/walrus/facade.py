"""Walrus, the one way into karri's object store: ``Walrus(db, data_dir / "walrus")``.

The store is composed of its parts, each one idea: ``Buckets`` (records, rules, cache),
``Objects`` (versions: write, read, delete), ``Listings`` and ``Uploads`` (multipart).
The facade hands out their methods under the names the rest of karri knows. Every method
is thread-safe; the synchronous ones run in a worker thread in async code, the ``*_later``
ones and ``put`` return a Future to await on the event loop.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select

from karri.db.engine import Database
from karri.walrus import acl as acls
from karri.walrus.accounts import AccountConfigs
from karri.walrus.blobs import FileBlobStore
from karri.walrus.blobstore import BlobStore
from karri.walrus.body import ObjectBody
from karri.walrus.buckets import Buckets
from karri.walrus.checksums import Digests
from karri.walrus.errors import S3Error
from karri.walrus.expiry import LifecycleSweep
from karri.walrus.listing import Listings
from karri.walrus.models import ObjectVersion, Part, Segment
from karri.walrus.multipart import Uploads
from karri.walrus.objects import Objects
from karri.walrus.radosblobs import CephTarget, RadosBlobStore
from karri.walrus.shared import WriteLock

log = logging.getLogger("karri.walrus")


def blob_store(
    root: Path,
    backend: str = "files",
    ceph_conf: str | None = None,
    ceph_user: str = "admin",
    rados_pool: str = "karri-objects",
) -> BlobStore:
    """Where object bytes live: files under ``root``, or a RADOS pool (connected on
    first use)."""
    if backend == "files":
        return FileBlobStore(root)
    if backend == "rados":
        return RadosBlobStore(CephTarget(ceph_conf, ceph_user, rados_pool))
    raise ValueError(f"unknown Walrus backend {backend!r}")


class Walrus:
    """The object store of one cloud. Permission checks are explicit (``may``,
    ``require_bucket``): a component acting for the cloud skips them, the S3 API applies
    S3's rules."""

    def __init__(self, db: Database, root: Path, blobs: BlobStore | None = None) -> None:
        """``blobs``: where object bytes live (default: files under ``root``)."""
        self.db = db
        root.mkdir(parents=True, exist_ok=True)
        self.blobs = blobs if blobs is not None else FileBlobStore(root)
        # One writer at a time across the processes serving this store; each write
        # transaction also takes the database's write lock first (see take_write_lock).
        writing = WriteLock(root / "write.lock")
        self.buckets = Buckets(db, root, writing, self.blobs)
        self.objects = Objects(db, self.blobs, writing, self.buckets)
        self.listings = Listings(db.engine, self.buckets)
        self.uploads = Uploads(db, writing, self.blobs, self.objects)
        # One pass of every bucket's lifecycle rules as of a time (the caller's clock).
        self.apply_lifecycle = LifecycleSweep(db, self.objects, self.uploads).run

        self.create_bucket = self.buckets.create
        self.ensure_bucket = self.buckets.ensure
        self.get_bucket = self.buckets.get
        self.peek_bucket = self.buckets.peek
        self.list_buckets = self.buckets.list
        self.delete_bucket = self.buckets.delete
        self.update_bucket = self.buckets.update
        self.configure_bucket = self.buckets.configure
        self.require_bucket = self.buckets.require
        self.accounts = AccountConfigs(db, root, writing)
        self.account_config = self.accounts.get
        self.configure_account = self.accounts.configure

        self.put = self.objects.put
        self.writer = self.objects.writer
        self.put_object = self.objects.put_object
        self.commit_object = self.objects.commit_object
        self.commit_object_later = self.objects.commit_object_later
        self.copy_object = self.objects.copy_object
        self.update_object = self.objects.update_object
        self.lock_object = self.objects.lock_object
        self.head_object = self.objects.head_object
        self.open_object = self.objects.open_object
        self.object_path = self.objects.object_path
        self.get_object = self.objects.get_object
        self.delete_object = self.objects.delete_object
        self.delete_object_later = self.objects.delete_object_later

        self.list_objects = self.listings.current
        self.list_versions = self.listings.versions

        self.create_upload = self.uploads.create_upload
        self.get_upload = self.uploads.get_upload
        self.put_part = self.uploads.put_part
        self.copy_part = self.uploads.copy_part
        self.commit_part = self.uploads.commit_part
        self.list_parts = self.uploads.list_parts
        self.list_uploads = self.uploads.list_uploads
        self.abort_upload = self.uploads.abort_upload
        self.complete_upload = self.uploads.complete_upload
        self.completed_upload = self.uploads.completed_upload

    def body(self, digests: Digests, *, inline: bool = False) -> ObjectBody:
        """A new object's (or part's) bytes, to push in and then ``put``: see ``body.py``."""
        return ObjectBody(self.blobs, digests, inline=inline)

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
            info = self.get_bucket(bucket)
            if key is None:
                return acls.allows(info.acl, principal, permission)
            acl = info.object_acl(self.head_object(bucket, key, version_id).acl)
            return acls.allows(acl, principal, permission)
        except S3Error:
            return False

    def may_read(
        self, principal: str, bucket: str, key: str, version_id: str | None = None
    ) -> bool:
        """May ``principal`` read this object? (aws-exec-read lets ``acl.CLOUD`` read it.)"""
        return self.may(principal, bucket, acls.READ, key, version_id)

    def sweep_while_serving(self) -> dict[str, int]:
        """``sweep``, for stores whose sweep is safe at any time (RADOS; `karri up` runs
        it hourly: orphans too young at start-up, or left by another front end)."""
        if not self.blobs.sweeps_while_serving:
            return {}
        _temps, orphans = self.sweep()
        return {"orphans": orphans}

    def sweep(self) -> tuple[int, int]:
        """Remove what a crash left behind: unfinished writes and unreferenced blobs."""

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

        try:
            temps, orphans = self.blobs.sweep(referenced)
        except S3Error as error:  # the storage cluster out of reach: the next start sweeps
            log.warning("walrus: no sweep of leftovers: %s", error.message)
            return 0, 0
        if temps or orphans:
            log.warning("walrus: removed %d unfinished writes and %d orphan blobs", temps, orphans)
        return temps, orphans
