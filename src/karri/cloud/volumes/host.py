"""The node as EBS sees it: plug volumes in and out of running guests, copy them.

``VolumeHost`` is all the EBS worker needs from a node; whoever owns the node (the
instances reconciler) hands an implementation to ``Ebs.use_host``. Calls block (the worker
runs them in its threads).
"""

from __future__ import annotations

from typing import Protocol

from karri.node import DiskLimits
from karri.storage import VolumeTarget


class HostUnavailable(RuntimeError):
    """The node is down or went down during the call: try again later."""


class GuestGone(RuntimeError):
    """The instance's guest ended between the check that it runs and the call."""


class CannotGrow(RuntimeError):
    """The guest's QEMU cannot see the volume grow where it runs (over NBD, from another
    host): the volume must be detached or its instance stopped first."""


class VolumeHost(Protocol):
    def running(self, instance_id: str) -> bool:
        """Whether the instance's guest (its QEMU process) is up on the node."""

    def attached(self, instance_id: str) -> set[str]:
        """The volume ids plugged into the running guest."""

    def attach(
        self,
        instance_id: str,
        volume_id: str,
        target: VolumeTarget,
        limits: DiskLimits,
        secret: str | None = None,
    ) -> None:
        """Hot-plug the volume (serial: its id), throttled to its type's ``limits``; an
        encrypted one opened with ``secret``. Raises on failure (``GuestGone`` if the
        guest ended meanwhile)."""

    def resize(self, instance_id: str, volume_id: str, size_bytes: int) -> None:
        """Grow the plugged-in volume (or EBS root) and its file; the guest sees it."""

    def throttle(self, instance_id: str, volume_id: str, limits: DiskLimits) -> None:
        """Change the plugged-in volume's (or EBS root's) I/O limits."""

    def detach(self, instance_id: str, volume_id: str, force: bool) -> bool:
        """Hot-unplug; False while the guest has not let go (the attachment stays
        ``detaching``), True once the volume file is free."""

    def backup(
        self, instance_id: str, volume_id: str, target: VolumeTarget, secret: str | None = None
    ) -> None:
        """Copy the plugged-in volume as it is at this instant into ``target`` (a QEMU
        backup job: consistent while the guest keeps writing). Returns when complete."""
