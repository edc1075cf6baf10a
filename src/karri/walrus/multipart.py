"""Multipart uploads: parts are blobs of their own, fsynced as they arrive. Completing
an upload makes the chosen parts the object's segments in one transaction: no byte is
copied or written twice. ``Walrus.object_path`` joins a segmented object into one file
(in the kernel, with copy_file_range) when a component wants a single path."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from karri.db.base import utcnow
from karri.db.engine import Database
from karri.walrus.blobstore import BlobStore, BlobWriter
from karri.walrus.body import ObjectBody
from karri.walrus.checksums import Digests, multipart_etag
from karri.walrus.claims import ClaimedChecksum, check_claim, object_checksums
from karri.walrus.errors import S3Error, invalid_part, no_such_bucket, no_such_upload
from karri.walrus.listing import scan, successor
from karri.walrus.locks import Lock, lock_of
from karri.walrus.models import Bucket, ObjectVersion, Part, Upload
from karri.walrus.objects import Objects
from karri.walrus.queries import object_info
from karri.walrus.shared import WriteLock
from karri.walrus.types import ObjectInfo, PartInfo, UploadInfo, byte_ranges

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10_000


@dataclass(frozen=True)
class RequestedPart:
    """A part as CompleteMultipartUpload names it."""

    number: int
    etag: str  # unquoted
    checksums: dict[str, str]


def upload_info(row: Upload) -> UploadInfo:
    return UploadInfo(
        row.id,
        row.bucket,
        row.key,
        row.owner,
        row.created_at,
        row.headers or {},
        row.meta or {},
        row.acl,
        row.tags or {},
        row.checksum,
        row.checksum_type,
        lock_of(row),
        row.initiator or "",
    )


def part_info(row: Part) -> PartInfo:
    return PartInfo(
        row.number, row.size, row.etag, row.last_modified, row.checksums or {}, row.blob
    )


class Uploads:
    """The multipart uploads of one store (``Walrus.uploads``); completing one is a commit
    of ``objects``."""

    def __init__(
        self, db: Database, writing: WriteLock, blobs: BlobStore, objects: Objects
    ) -> None:
        self._db = db
        self._writing = writing
        self._blobs = blobs
        self._objects = objects

    @contextlib.contextmanager
    def _write(self) -> Iterator[Session]:
        with self._writing, self._db.write_session() as session:
            yield session

    def create_upload(
        self,
        bucket: str,
        key: str,
        *,
        owner: str,
        acl: dict,
        headers: dict[str, str] | None = None,
        meta: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        checksum: str = "",
        checksum_type: str = "",
        lock: Lock | None = None,
        initiator: str = "",
    ) -> UploadInfo:
        """A new upload; ``lock``: the Object Lock the completed object gets."""
        with self._write() as session:
            if session.get(Bucket, bucket) is None:
                raise no_such_bucket(bucket)
            row = Upload(
                id=secrets.token_urlsafe(36),
                bucket=bucket,
                key=key,
                owner=owner,
                headers=headers or {},
                meta=meta or {},
                acl=acl,
                tags=tags or {},
                checksum=checksum,
                checksum_type=checksum_type,
                initiator=initiator,
                created_at=utcnow(),
                **(lock or Lock()).columns(),
            )
            session.add(row)
            return upload_info(row)

    def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        with self._db.session() as session:
            row = session.get(Upload, upload_id)
            if row is None or row.bucket != bucket or row.key != key:
                if session.get(Bucket, bucket) is None:
                    raise no_such_bucket(bucket)
                raise no_such_upload()
            return upload_info(row)

    def commit_part(
        self,
        upload_id: str,
        number: int,
        writer: BlobWriter,
        *,
        checksums: dict[str, str] | None = None,
    ) -> PartInfo:
        """Make a written blob part ``number`` of the upload (replacing an earlier one)."""
        etag = writer.digests.etag
        size = writer.size
        blob = writer.commit()
        stale = None
        try:
            with self._write() as session:
                if session.get(Upload, upload_id) is None:
                    raise no_such_upload()
                old = session.get(Part, (upload_id, number))
                if old is not None:
                    stale = old.blob
                    session.delete(old)
                    session.flush()
                row = Part(
                    upload_id=upload_id,
                    number=number,
                    size=size,
                    etag=etag,
                    blob=blob,
                    checksums=checksums or {},
                    last_modified=utcnow(),
                )
                session.add(row)
                info = part_info(row)
        except BaseException:
            self._blobs.unlink([blob])
            raise
        self._blobs.unlink_later([stale])
        return info

    def put_part(
        self, upload_id: str, number: int, body: ObjectBody, checksums: dict[str, str]
    ) -> PartInfo:
        """Make ``body`` part ``number`` of the upload, with its verified ``checksums``."""
        writer = body.writer()
        try:
            return self.commit_part(upload_id, number, writer, checksums=checksums)
        except BaseException:
            writer.abort()
            raise

    def copy_part(
        self, upload: UploadInfo, number: int, source: ObjectInfo, start: int, length: int
    ) -> PartInfo:
        """Part ``number`` from bytes ``start`` .. ``start + length`` of ``source``
        (UploadPartCopy), with the upload's checksum of them."""
        checksums = [upload.checksum] if upload.checksum else []
        if source.data is not None:  # a small object kept inline
            writer = self._blobs.writer(Digests(checksums=checksums))
            writer.write(source.data[start : start + length])
        else:
            writer = self._blobs.concatenate(
                byte_ranges(source, start, start + length),
                Digests(checksums=checksums),
                hash_data=True,
            )
        try:
            values = {a: writer.digests.checksum(a) for a in checksums}
            return self.commit_part(upload.upload_id, number, writer, checksums=values)
        except BaseException:
            writer.abort()
            raise

    def list_parts(
        self, upload_id: str, *, marker: int = 0, max_parts: int = 1000
    ) -> tuple[list[PartInfo], bool]:
        with self._db.session() as session:
            rows = session.scalars(
                select(Part)
                .where(Part.upload_id == upload_id, Part.number > marker)
                .order_by(Part.number)
                .limit(max_parts + 1)
            ).all()
            return [part_info(r) for r in rows[:max_parts]], len(rows) > max_parts

    def list_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> tuple[list[UploadInfo], list[str], bool]:
        with self._db.session() as session:
            if session.get(Bucket, bucket) is None:
                raise no_such_bucket(bucket)

            def fetch(lower: str, inclusive: bool, resume, limit: int):
                condition = Upload.key >= lower if inclusive else Upload.key > lower
                query = select(Upload).where(Upload.bucket == bucket, condition)
                if prefix:
                    query = query.where(Upload.key < successor(prefix))
                rows = session.scalars(
                    query.order_by(Upload.key, Upload.created_at, Upload.id).limit(limit)
                ).all()
                return rows

            rows, prefixes, truncated, _last = scan(
                fetch,
                lambda row: row.key,
                prefix=prefix,
                delimiter=delimiter,
                after=key_marker if not upload_id_marker else "",
                max_keys=max_uploads,
            )
            if upload_id_marker:
                rows = [r for r in rows if (r.key, r.id) > (key_marker, upload_id_marker)]
            return [upload_info(r) for r in rows], prefixes, truncated

    def completed_upload(self, bucket: str, key: str, upload_id: str) -> ObjectInfo | None:
        """The key's current version if upload ``upload_id`` made it (a completion
        retried answers with it, as S3 does), else None."""
        with self._db.session() as session:
            row = session.scalars(
                select(ObjectVersion).where(
                    ObjectVersion.bucket == bucket,
                    ObjectVersion.key == key,
                    ObjectVersion.is_latest.is_(True),
                    ObjectVersion.upload_id == upload_id,
                )
            ).first()
            return None if row is None else object_info(row)

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self.get_upload(bucket, key, upload_id)
        with self._write() as session:
            blobs = list(session.scalars(select(Part.blob).where(Part.upload_id == upload_id)))
            session.execute(delete(Part).where(Part.upload_id == upload_id))
            if session.execute(delete(Upload).where(Upload.id == upload_id)).rowcount == 0:
                raise no_such_upload()  # completed (or aborted) since it was looked up
        self._blobs.unlink(blobs)

    def complete_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        requested: Sequence[RequestedPart],
        claim: ClaimedChecksum | None = None,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        """Check the named parts (and the object checksum the client ``claim``s),
        concatenate them, and commit the object (under the conditions of a conditional
        write: see ``Objects.commit_object_later``)."""
        upload = self.get_upload(bucket, key, upload_id)
        if not requested:
            raise S3Error(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against "
                "our published schema",
                400,
            )
        with self._db.session() as session:
            stored = {
                row.number: part_info(row)
                for row in session.scalars(select(Part).where(Part.upload_id == upload_id))
            }
        chosen = _check_parts(requested, stored)
        checksums = object_checksums(upload, chosen, claim)
        if claim is not None:
            check_claim(upload, claim, checksums)
        # The parts become the object's segments: no byte is copied or written again.
        info = self._objects.commit_object(
            bucket,
            key,
            None,
            owner=upload.owner,
            acl=upload.acl,
            headers=upload.headers,
            meta=upload.meta,
            tags=upload.tags,
            checksums=checksums,
            etag=multipart_etag(part.etag for part in chosen),
            parts=len(chosen),
            part_list=[(part.size, part.checksums) for part in chosen],
            upload_id=upload_id,
            size=sum(part.size for part in chosen),
            segments=[(part.blob, part.size) for part in chosen],
            if_absent=if_absent,
            if_match=if_match,
            lock=upload.lock,
        )
        return info


def _check_parts(requested: Sequence[RequestedPart], stored: dict[int, PartInfo]) -> list[PartInfo]:
    chosen: list[PartInfo] = []
    previous = 0
    for part in requested:
        if part.number <= previous:
            raise S3Error(
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts must be ordered by "
                "part number.",
                400,
            )
        previous = part.number
        found = stored.get(part.number)
        if found is None or found.etag != part.etag.strip('"'):
            raise invalid_part()
        for algorithm, value in part.checksums.items():
            if found.checksums.get(algorithm) not in (None, value):
                raise S3Error(
                    "InvalidPart",
                    f"The {algorithm} checksum of part {part.number} does not match.",
                    400,
                )
        chosen.append(found)
    for part in chosen[:-1]:
        if part.size < MIN_PART_SIZE:
            raise S3Error(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed object size.",
                400,
            )
    return chosen
