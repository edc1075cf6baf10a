"""Volume, attachment and snapshot states as AWS reports them."""

from __future__ import annotations

from karri.cloud.volumes.models import Volume, VolumeAttachment

# Volumes. "in-use" is not stored: a volume is in use while it has an attachment.
CREATING = "creating"
AVAILABLE = "available"
IN_USE = "in-use"
DELETING = "deleting"
ERROR = "error"

# Attachments ("detached" is not stored: the attachment row goes).
ATTACHING = "attaching"
ATTACHED = "attached"
DETACHING = "detaching"
DETACHED = "detached"

# Snapshots. "deleting" is karri's own: hidden from Describe while the worker removes it.
PENDING = "pending"
COMPLETED = "completed"
SNAPSHOT_ERROR = "error"
SNAPSHOT_DELETING = "deleting"


def volume_state(volume: Volume, attachment: VolumeAttachment | None) -> str:
    if attachment is not None and volume.state == AVAILABLE:
        return IN_USE
    return volume.state


def io_status(volume: Volume) -> str:
    """DescribeVolumeStatus's VolumeStatus.Status."""
    if volume.state == ERROR:
        return "impaired"
    if volume.state == CREATING:
        return "insufficient-data"
    return "ok"


def io_enabled(volume: Volume) -> str:
    """The io-enabled check: failed only for a volume whose I/O is impaired."""
    if volume.state == ERROR:
        return "failed"
    if volume.state == CREATING:
        return "insufficient-data"
    return "passed"
