"""Reservations and instances as the cloud controller records them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from karri.db.base import Base, UTCDateTime, utcnow


class Reservation(Base):
    __tablename__ = "reservations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    client_token: Mapped[str | None] = mapped_column(String(64), index=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    reservation_id: Mapped[str] = mapped_column(ForeignKey("reservations.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    launch_index: Mapped[int] = mapped_column(Integer, default=0)
    image_id: Mapped[str] = mapped_column(String(32))
    kernel_id: Mapped[str | None] = mapped_column(String(32))
    ramdisk_id: Mapped[str | None] = mapped_column(String(32))
    instance_type: Mapped[str] = mapped_column(String(32))
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    disk_gib: Mapped[int] = mapped_column(Integer)
    key_name: Mapped[str | None] = mapped_column(String(255))
    public_key: Mapped[str | None] = mapped_column(Text)
    user_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    zone: Mapped[str] = mapped_column(String(64))
    security_groups: Mapped[list] = mapped_column(JSON, default=list)
    root_device_type: Mapped[str] = mapped_column(String(16), default="instance-store")
    root_device_name: Mapped[str] = mapped_column(String(32), default="/dev/sda1")
    architecture: Mapped[str] = mapped_column(String(16), default="x86_64")

    # state: what the instance is; desired: what the reconciler drives it to
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    desired: Mapped[str] = mapped_column(String(16), default="running")
    state_reason_code: Mapped[str | None] = mapped_column(String(64))
    state_reason_message: Mapped[str | None] = mapped_column(String(255))
    transition_reason: Mapped[str] = mapped_column(String(255), default="")
    shutdown_behavior: Mapped[str] = mapped_column(String(16), default="stop")
    disable_api_termination: Mapped[bool] = mapped_column(default=False)
    disable_api_stop: Mapped[bool] = mapped_column(default=False)
    source_dest_check: Mapped[bool] = mapped_column(default=True)

    vpc_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # The node that runs it (``nodes.name``); None: the cloud's own node (``karri up``'s)
    node: Mapped[str | None] = mapped_column(String(63), index=True)
    subnet_id: Mapped[str | None] = mapped_column(String(32), index=True)
    """Its VPC and subnet (None only for a row from before VPCs, until start-up moves it
    into its account's default VPC); the primary interface is ``network_interfaces``'s."""
    private_ip: Mapped[str | None] = mapped_column(String(15), index=True)
    mac: Mapped[str | None] = mapped_column(String(17))
    public_ip: Mapped[str | None] = mapped_column(String(15))
    associate_public_ip: Mapped[bool] = mapped_column(default=True)
    """Whether the node gives it a public address (the subnet's MapPublicIpOnLaunch, or
    AssociatePublicIpAddress of its interface)."""
    launch_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    terminated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    boot_count: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped by the database's triggers (migration ``c004_instance_render_versions``) in
    the transaction of any change to what DescribeInstances shows of the instance: its
    row, tags, interfaces and their addresses, elastic IP, volumes, instance profile,
    reservation, its VPC's DNS hostnames. Never written by the services."""
