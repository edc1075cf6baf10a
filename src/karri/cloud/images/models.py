"""Images, their launch permissions and import tasks, as the cloud controller records them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from karri.db.base import Base, UTCDateTime, utcnow


class Image(Base):
    """An EMI, EKI or ERI. ``state``: pending → available | failed; deregistered at the end
    (the row stays so that instances launched from it still name it)."""

    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(String(255))
    image_type: Mapped[str] = mapped_column(String(16))  # machine | kernel | ramdisk
    architecture: Mapped[str] = mapped_column(String(16))
    kernel_id: Mapped[str | None] = mapped_column(String(32))
    ramdisk_id: Mapped[str | None] = mapped_column(String(32))
    root_device_type: Mapped[str] = mapped_column(String(16), default="instance-store")
    root_device_name: Mapped[str] = mapped_column(String(32), default="/dev/sda1")
    virtualization_type: Mapped[str] = mapped_column(String(16), default="hvm")
    block_device_mappings: Mapped[list] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_reason: Mapped[str | None] = mapped_column(Text)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16))  # bundle | import
    location: Mapped[str] = mapped_column(String(1100))  # bucket/key of the manifest
    size: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes of the unpacked image
    stored_bucket: Mapped[str | None] = mapped_column(String(64))  # where the cloud keeps
    stored_key: Mapped[str | None] = mapped_column(String(1100))  # the unpacked image
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LaunchPermission(Base):
    """An account other than the owner that may launch an image (``Group=all`` is
    ``Image.is_public``)."""

    __tablename__ = "image_launch_permissions"

    image_id: Mapped[str] = mapped_column(ForeignKey("images.id"), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(12), primary_key=True, index=True)


class ImportTask(Base):
    """An ImportImage task: convert a disk image in Walrus into an EMI."""

    __tablename__ = "image_import_tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # active|completed|deleted
    status_message: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str | None] = mapped_column(String(255))
    architecture: Mapped[str] = mapped_column(String(16), default="x86_64")
    platform: Mapped[str] = mapped_column(String(16), default="Linux")
    disk_format: Mapped[str] = mapped_column(String(8))
    source_bucket: Mapped[str] = mapped_column(String(64))
    source_key: Mapped[str] = mapped_column(String(1100))
    disk_size: Mapped[int] = mapped_column(BigInteger, default=0)
    image_id: Mapped[str | None] = mapped_column(String(32))
    client_token: Mapped[str | None] = mapped_column(String(64))
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def snapshot_id(self) -> str | None:
        """The snapshot the converted disk became (once it has)."""
        return (self.options or {}).get("snapshot_id")

    @property
    def license_type(self) -> str:
        return (self.options or {}).get("license_type", "BYOL")
