"""Node failures; the cloud controller maps them to AWS error codes."""

from __future__ import annotations


class NodeError(Exception):
    """Something the node could not do."""


class NodeUnreachable(NodeError):
    """The node did not answer (in time, or at all, or as a node does): raised on the
    cloud's side of a call to a node on another host."""


class UnknownInstance(NodeError, KeyError):
    def __init__(self, instance_id: str) -> None:
        super().__init__(f"no instance {instance_id} on this node")
        self.instance_id = instance_id

    def __str__(self) -> str:
        return str(self.args[0])


class InstanceExists(NodeError):
    """A launch for an instance whose QEMU process is still there."""


class InsufficientCapacity(NodeError):
    """The launch would overcommit vCPUs or memory beyond the configured ratio."""


class LaunchError(NodeError):
    """QEMU refused to start; the message carries its own words."""


class VolumeError(NodeError):
    """An attach or detach the guest or QEMU refused (already attached, not attached...)."""


class DetachTimeout(VolumeError):
    """The guest did not release the disk in time; it stays `detaching` until it does."""


class NetworkError(NodeError):
    """The instances' network namespace could not be set up as asked."""


class AddressTaken(NetworkError):
    """The public address asked for is held by another owner on the host (another karri)."""


class ImageError(NodeError):
    """An image could not be fetched, or its bytes are not what its reference says."""
