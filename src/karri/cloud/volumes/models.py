"""Volumes, their attachments, snapshots and who may create volumes from them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, false
from sqlalchemy.orm import Mapped, mapped_column

from karri.db.base import Base, UTCDateTime, utcnow


class Volume(Base):
    __tablename__ = "volumes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    size_gib: Mapped[int] = mapped_column(Integer)
    snapshot_id: Mapped[str | None] = mapped_column(String(32), index=True)
    zone: Mapped[str] = mapped_column(String(64))
    volume_type: Mapped[str] = mapped_column(String(16), default="standard")
    iops: Mapped[int | None] = mapped_column(Integer)
    throughput: Mapped[int | None] = mapped_column(Integer)
    # creating | available | in-use | deleting | error ("deleted" rows are removed)
    state: Mapped[str] = mapped_column(String(16), default="creating", index=True)
    state_message: Mapped[str | None] = mapped_column(String(255))
    auto_enable_io: Mapped[bool] = mapped_column(default=False)
    # Encrypted at rest with its account's EBS key (``volumes/keys.py``)
    encrypted: Mapped[bool] = mapped_column(default=False, server_default=false())
    client_token: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VolumeAttachment(Base):
    """A volume's one attachment; the row goes when the volume is detached."""

    __tablename__ = "volume_attachments"

    volume_id: Mapped[str] = mapped_column(
        ForeignKey("volumes.id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[str] = mapped_column(String(32), index=True)
    device: Mapped[str] = mapped_column(String(32))
    # attaching | attached | detaching (detached: the row is removed)
    state: Mapped[str] = mapped_column(String(16), default="attaching")
    delete_on_termination: Mapped[bool] = mapped_column(default=False)
    force: Mapped[bool] = mapped_column(default=False)
    attach_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Snapshot(Base):
    __tablename__ = "snapshots"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    volume_id: Mapped[str] = mapped_column(String(32), index=True)
    volume_size: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(255), default="")
    # pending | completed | error | deleting (hidden, being removed)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    state_message: Mapped[str | None] = mapped_column(String(255))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    # The snapshot a CopySnapshot copies; None for a snapshot of a volume.
    source_snapshot_id: Mapped[str | None] = mapped_column(String(32))
    # Set once the volume's point-in-time copy exists (the volume may change from then on).
    checkpointed: Mapped[bool] = mapped_column(default=False)
    # The snapshot its object is a diff of (an incremental export; ``volumes.exports``):
    # that one's object stays while this row exists, even once it is deleted.
    base_snapshot_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # Bytes of the snapshot object in Walrus, once uploaded.
    stored_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # The stream is an encrypted volume's ciphertext (its account's key opens it)
    encrypted: Mapped[bool] = mapped_column(default=False, server_default=false())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SnapshotPermission(Base):
    """createVolumePermission: an account id, or ``all`` (public)."""

    __tablename__ = "snapshot_permissions"

    snapshot_id: Mapped[str] = mapped_column(
        ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    grantee: Mapped[str] = mapped_column(String(16), primary_key=True, index=True)


class CaptureIntent(Base):
    """A CreateImage under way, written before the instance is touched: the image it makes
    (its id chosen up front) and whether the instance is to be started again once its
    volumes are copied. The row goes once nothing is left to do; after a crash the EBS
    worker finishes (or, if the image was never registered, undoes) what it records."""

    __tablename__ = "image_captures"

    image_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(12))
    instance_id: Mapped[str] = mapped_column(String(32), index=True)
    restart: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VolumeModification(Base):
    """A ModifyVolume: the volume's configuration before and the one asked for. Rows are
    kept (DescribeVolumesModifications shows a volume's latest; the rate limit counts
    them) until the volume goes."""

    __tablename__ = "volume_modifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id", ondelete="CASCADE"), index=True)
    # modifying | optimizing | completed | failed
    state: Mapped[str] = mapped_column(String(16), default="modifying", index=True)
    status_message: Mapped[str | None] = mapped_column(String(255))
    original_size: Mapped[int] = mapped_column(Integer)
    original_type: Mapped[str] = mapped_column(String(16))
    original_iops: Mapped[int | None] = mapped_column(Integer)
    original_throughput: Mapped[int | None] = mapped_column(Integer)
    target_size: Mapped[int] = mapped_column(Integer)
    target_type: Mapped[str] = mapped_column(String(16))
    target_iops: Mapped[int | None] = mapped_column(Integer)
    target_throughput: Mapped[int | None] = mapped_column(Integer)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    start_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EbsEncryption(Base):
    """An account's EBS key (its data key, wrapped by the cloud's master key) and whether
    its new volumes are encrypted by default."""

    __tablename__ = "ebs_encryption"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(36))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    by_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
