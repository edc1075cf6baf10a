"""Walrus's tables: buckets, object versions, multipart uploads and their parts.

Object bytes live in blob files (see ``blobs.py``); a row names its blob by id, so a
key never becomes a path. A small object's bytes are kept in its row instead (``data``):
one durable transaction stores it, with no file to create, fsync and later unlink. JSON
columns hold what is read and written whole (ACLs, tags, user metadata, checksums).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from karri.db.base import Base, UTCDateTime, utcnow


class Bucket(Base):
    __tablename__ = "buckets"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    location: Mapped[str] = mapped_column(String(64), default="")
    versioning: Mapped[str] = mapped_column(String(16), default="")  # "", Enabled, Suspended
    acl: Mapped[dict[str, Any]] = mapped_column(JSON)
    tags: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The bucket's configurations by sub-resource name ("policy", "cors", ...): each one
    # is read and written whole, in the form its owner module keeps (see BucketInfo).
    configs: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class ObjectVersion(Base):
    """One version of a key; non-versioned buckets hold one row per key ("null" version)."""

    __tablename__ = "objects"
    __table_args__ = (
        Index("ix_objects_listing", "bucket", "key", "is_latest"),
        Index("uq_objects_version", "bucket", "key", "version_id", unique=True),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bucket: Mapped[str] = mapped_column(ForeignKey("buckets.name", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(1024))
    version_id: Mapped[str] = mapped_column(String(64))
    is_latest: Mapped[bool] = mapped_column(Boolean, default=True)
    delete_marker: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    etag: Mapped[str] = mapped_column(String(64), default="")
    blob: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    last_modified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # Content-Type, ...
    meta: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # x-amz-meta-*
    checksums: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    acl: Mapped[dict[str, Any]] = mapped_column(JSON)
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    parts: Mapped[int] = mapped_column(Integer, default=0)
    # A multipart object's parts as [size, {algorithm: base64 checksum}], in order:
    # GetObjectAttributes and ``?partNumber`` reads (segments may be joined later).
    part_list: Mapped[list | None] = mapped_column(JSON, nullable=True)
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # small objects
    # Object Lock (see ``locks.py``): this version's retention and legal hold.
    lock_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    lock_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    legal_hold: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # None: never set
    # The multipart upload this version completed: a retried completion answers with it.
    upload_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Upload(Base):
    """A multipart upload in progress."""

    __tablename__ = "multipart_uploads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[str] = mapped_column(ForeignKey("buckets.name", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(1024))
    owner: Mapped[str] = mapped_column(String(64))
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    meta: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    acl: Mapped[dict[str, Any]] = mapped_column(JSON)
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    checksum: Mapped[str] = mapped_column(String(16), default="")  # algorithm asked for
    checksum_type: Mapped[str] = mapped_column(String(16), default="")
    # The Object Lock the completed object gets (``x-amz-object-lock-*`` at its creation).
    lock_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    lock_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    legal_hold: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # None: never set
    # Who started it when not the owner account itself: an IAM user's or session's ARN.
    initiator: Mapped[str] = mapped_column(String(256), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Part(Base):
    __tablename__ = "multipart_parts"

    upload_id: Mapped[str] = mapped_column(
        ForeignKey("multipart_uploads.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(64))
    blob: Mapped[str] = mapped_column(String(32), index=True)
    checksums: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    last_modified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Segment(Base):
    """A piece of a multipart object: completing an upload makes its parts the object's
    segments (no copy); ``Walrus.object_path`` joins them into one file on demand."""

    __tablename__ = "object_segments"

    object_seq: Mapped[int] = mapped_column(
        ForeignKey("objects.seq", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    blob: Mapped[str] = mapped_column(String(32), index=True)
    size: Mapped[int] = mapped_column(BigInteger)


class AccountConfig(Base):
    """An account's S3-wide settings by name ("public-access-block", as s3control keeps
    it): read and written whole, like a bucket's ``configs``."""

    __tablename__ = "walrus_account_configs"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    configs: Mapped[dict[str, Any]] = mapped_column(JSON)
