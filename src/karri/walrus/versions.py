"""The writes the group committer runs (``commits.py``): a new version of a key, a
deletion. Each is a function of the open connection returning (its result, the blobs it
no longer references), and S3's versioning rules live here."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import delete, select

from karri.db.base import utcnow
from karri.walrus import acl as acls
from karri.walrus.errors import (
    S3Error,
    invalid_argument,
    invalid_part,
    no_such_bucket,
    no_such_key,
    no_such_upload,
    no_such_version,
    precondition_failed,
)
from karri.walrus.locks import UNLOCKED, check_delete, default_lock, lock_of
from karri.walrus.models import Part, Upload
from karri.walrus.queries import (
    D_SEGMENTS,
    D_SEQ,
    INSERT,
    INSERT_SEGMENT,
    OBJECTS,
    Q_BUCKET_MODE,
    Q_KEY_ROWS,
    Q_LIVE,
    Q_NEWEST_SEQ,
    Q_SEGMENTS,
    Q_VERSION_BRIEF,
    U_LATEST,
    U_NOT_LATEST,
    object_info,
)
from karri.walrus.types import DeleteResult, ObjectInfo

NULL_VERSION = "null"


def new_version_id() -> str:
    return secrets.token_urlsafe(24)


def drop(connection: Any, row: Any) -> list[str | None]:
    """Delete one version's row (a Q_VERSION_BRIEF or Q_KEY_ROWS row, and its segments);
    returns the blobs it held."""
    blobs: list[str | None] = [row.blob]
    if row.segmented:
        blobs += connection.execute(Q_SEGMENTS, {"s": row.seq}).scalars()
        connection.execute(D_SEGMENTS, {"s": row.seq})
    connection.execute(D_SEQ, {"s": row.seq})
    return blobs


def add_version(
    values: dict[str, Any],
    upload_id: str | None,
    segments: list[tuple[str, int]],
    if_absent: bool,
    if_match: str | None,
    bucket_owner: str | None,
    connection: Any,
) -> tuple[ObjectInfo, list[str | None]]:
    """Insert ``values`` as the latest version of its key (a group-commit write).

    The conditions of a conditional write (``if_absent``, ``if_match``: an ETag) are
    judged here, in the transaction that commits it: of racing writers exactly one wins.
    A version that sets no retention gets its bucket's default one."""
    key = {"b": values["bucket"], "k": values["key"]}
    mode = connection.execute(Q_BUCKET_MODE, key).first()
    if mode is None or bucket_owner not in (None, mode.owner):
        raise no_such_bucket(values["bucket"])
    if if_absent or if_match is not None:
        check_condition(connection.execute(Q_LIVE, key).first(), if_absent, if_match)
    if values["lock_mode"] is None:
        default = default_lock(mode.object_lock, values["last_modified"])
        values["lock_mode"], values["lock_until"] = default.mode, default.until
    stale: list[str | None] = []
    values["upload_id"] = upload_id
    if upload_id is not None:
        stale += finish_upload(connection, upload_id, {blob for blob, _size in segments})
    if mode.versioning == "Enabled":
        values["version_id"] = new_version_id()
    else:
        values["version_id"] = NULL_VERSION
        old = connection.execute(Q_VERSION_BRIEF, key | {"v": NULL_VERSION}).first()
        if old is not None:
            stale += drop(connection, old)
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


def check_condition(live: Any, if_absent: bool, if_match: str | None) -> None:
    """S3's answer to a conditional write whose condition does not hold on ``live`` (the
    key's current version, None when it has none or a delete marker)."""
    if if_absent and live is not None:
        raise precondition_failed()
    if if_match is not None:
        if live is None:
            raise no_such_key()
        if not any(c.strip().strip('"') in (live.etag, "*") for c in if_match.split(",")):
            raise precondition_failed()


def finish_upload(connection: Any, upload_id: str, kept: set[str]) -> list[str]:
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


def delete_version(
    bucket: str, key: str, version_id: str | None, bypass: bool, connection: Any
) -> tuple[DeleteResult, list[str | None]]:
    """Walrus.delete_object as a group-commit write. A version under Object Lock stays
    (AccessDenied); ``bypass`` lifts a GOVERNANCE retention."""
    params = {"b": bucket, "k": key}
    stale: list[str | None] = []
    mode = connection.execute(Q_BUCKET_MODE, params).first()
    if mode is None:
        raise no_such_bucket(bucket)
    if version_id is not None:
        row = connection.execute(Q_VERSION_BRIEF, params | {"v": version_id}).first()
        if row is None:
            if version_id != NULL_VERSION and not plausible_version(version_id):
                raise invalid_argument("Invalid version id specified")
            return DeleteResult(version_id, False), stale
        check_delete(lock_of(row), utcnow(), bypass)
        stale += drop(connection, row)
        if row.is_latest:
            newest = connection.execute(Q_NEWEST_SEQ, params).scalar()
            if newest is not None:
                connection.execute(U_LATEST, {"s": newest})
        return DeleteResult(version_id, row.delete_marker), stale
    if mode.versioning == "":
        for found in connection.execute(Q_KEY_ROWS, params).all():
            stale += drop(connection, found)
        return DeleteResult(None, False), stale
    marker = new_version_id() if mode.versioning == "Enabled" else NULL_VERSION
    if marker == NULL_VERSION:
        old = connection.execute(Q_VERSION_BRIEF, params | {"v": NULL_VERSION}).first()
        if old is not None:
            stale += drop(connection, old)
    connection.execute(U_NOT_LATEST, params)
    connection.execute(
        INSERT,
        dict(
            bucket=bucket, key=key, version_id=marker, is_latest=True, delete_marker=True,
            owner=mode.owner, size=0, etag="", blob=None, data=None, last_modified=utcnow(),
            headers={}, meta={}, checksums={}, acl=acls.private(mode.owner), tags={}, parts=0,
            **UNLOCKED.columns(),
            part_list=None,
            upload_id=None,
        ),
    )  # fmt: skip
    return DeleteResult(marker, True), stale


def found(row: Any, bucket: str, bucket_exists: Callable[[], bool], version_id: str | None) -> Any:
    """``row`` if it is a readable version, else S3's error for its absence (telling a
    missing bucket from a missing key) or for its delete marker."""
    if row is None:
        if not bucket_exists():
            raise no_such_bucket(bucket)
        if version_id is not None:
            if version_id != NULL_VERSION and not plausible_version(version_id):
                raise invalid_argument("Invalid version id specified")
            raise no_such_version()
        raise no_such_key()
    if row.delete_marker:
        if version_id is None:
            raise S3Error(
                "NoSuchKey",
                "The specified key does not exist.",
                404,
                delete_marker=row.version_id,
            )
        raise S3Error(
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            405,
            delete_marker=row.version_id,
        )
    return row


def plausible_version(version_id: str) -> bool:
    return 8 <= len(version_id) <= 64 and all(c.isalnum() or c in "-_." for c in version_id)


def expire_version(
    bucket: str, key: str, seq: int, kind: str, connection: Any
) -> tuple[DeleteResult | None, list[str | None]]:
    """A lifecycle action on version ``seq`` of ``key``, if it is still what the scan saw
    (None otherwise): ``current`` deletes the key as a DELETE would (a delete marker in
    a versioned bucket); ``noncurrent`` removes that noncurrent version for good;
    ``marker`` removes a delete marker that is the key's only version."""
    table = OBJECTS
    rows = connection.execute(
        select(table.c.seq, table.c.version_id, table.c.is_latest, table.c.delete_marker).where(
            table.c.bucket == bucket, table.c.key == key
        )
    ).all()
    row = next((r for r in rows if r.seq == seq), None)
    if row is None:
        return None, []
    if kind == "current" and row.is_latest and not row.delete_marker:
        return delete_version(bucket, key, None, False, connection)
    if kind == "noncurrent" and not row.is_latest:
        return delete_version(bucket, key, row.version_id, False, connection)
    if kind == "marker" and row.is_latest and row.delete_marker and len(rows) == 1:
        return delete_version(bucket, key, row.version_id, False, connection)
    return None, []
