"""The SQL of Walrus's objects and buckets, built once (constructing a statement costs more
than running it), and the records their rows become."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update

from karri.timestamps import iso8601
from karri.walrus.locks import CONFIG as LOCK_CONFIG
from karri.walrus.locks import lock_of
from karri.walrus.models import Bucket, ObjectVersion, Segment
from karri.walrus.types import BucketInfo, ListedObject, ObjectInfo

OBJECTS = ObjectVersion.__table__
BUCKETS = Bucket.__table__

# The hot statements, built once: constructing a statement costs more than running it.
_c = OBJECTS.c
_SAME_KEY = (_c.bucket == bindparam("b")) & (_c.key == bindparam("k"))
Q_BUCKET = select(BUCKETS).where(BUCKETS.c.name == bindparam("b"))
# The bucket's Object Lock configuration alone: not every PUT decodes its policy and CORS.
Q_BUCKET_MODE = select(
    BUCKETS.c.versioning, BUCKETS.c.owner, BUCKETS.c.configs[LOCK_CONFIG].label("object_lock")
).where(BUCKETS.c.name == bindparam("b"))
Q_LATEST = select(OBJECTS).where(_SAME_KEY, _c.is_latest.is_(True))
Q_VERSION = select(OBJECTS).where(_SAME_KEY, _c.version_id == bindparam("v"))
# Only a multipart object's row has segments to look up (not an inline one, not a marker).
_SEGMENTED = (_c.blob.is_(None) & _c.data.is_(None) & _c.delete_marker.is_(False)).label(
    "segmented"
)
Q_VERSION_BRIEF = select(
    _c.seq, _c.blob, _SEGMENTED, _c.is_latest, _c.delete_marker, _c.lock_mode, _c.lock_until,
    _c.legal_hold,
).where(_SAME_KEY, _c.version_id == bindparam("v"))  # fmt: skip
Q_NEWEST_SEQ = select(func.max(_c.seq)).where(_SAME_KEY)
Q_LIVE = select(_c.seq, _c.etag).where(
    _SAME_KEY, _c.is_latest.is_(True), _c.delete_marker.is_(False)
)
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
        part_list=tuple((size, sums) for size, sums in row.part_list or ()),
        blob=row.blob,
        data=row.data,
        lock=lock_of(row),
    )


def bucket_info(row: Bucket) -> BucketInfo:
    return BucketInfo(
        row.name, row.owner, row.location, row.versioning, row.created_at, row.acl, row.tags,
        row.configs or {},
    )  # fmt: skip


def listed(row: Any) -> ListedObject:
    return ListedObject(
        row.key, row.version_id, row.size, row.etag, iso8601(row.last_modified), row.owner,
        row.is_latest, row.delete_marker,
    )  # fmt: skip
