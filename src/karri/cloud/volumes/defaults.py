"""The EBS-backed variant of the default image: ``karri-tiny-ebs``, public, owned by the
``eucalyptus`` account, registered from a snapshot of karri-tiny's root disk, so that a new
user can try stop and start at once.

It is made in the background once karri-tiny is available (the images service builds that
on first start): the image's bytes (from the images service's fetcher) become a snapshot,
which is made public, and an EBS-backed EMI with karri-tiny's kernel and ramdisk is
registered on it. A start interrupted half-way picks up the snapshot it had begun.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from karri.cloud.filters import Page
from karri.cloud.images.models import Image
from karri.cloud.images.requests import RegisterRequest
from karri.cloud.images.views import ImageView
from karri.cloud.permissions import PUBLIC, Grantee, PermissionModification
from karri.cloud.volumes import states
from karri.cloud.volumes.mappings import root_from_snapshot
from karri.cloud.volumes.models import Snapshot
from karri.cloud.volumes.snapshots import Snapshots

log = logging.getLogger("karri.ebs")

NAME = "karri-tiny-ebs"
SOURCE = "karri-tiny"
ROOT_DEVICE = "/dev/sda1"
SNAPSHOT_DESCRIPTION = "karri-tiny root disk (for karri-tiny-ebs)"
WAIT_SECONDS = 1800.0
POLL_SECONDS = 2.0


class SourceImages(Protocol):
    """The images service: karri-tiny's bytes in, karri-tiny-ebs registered."""

    def describe(
        self, account_id: str, *, owners: Sequence[str], filters: Sequence[Mapping[str, Any]]
    ) -> Page[ImageView]: ...
    def register(self, account_id: str, request: RegisterRequest) -> str: ...
    def set_public(self, image_id: str, public: bool = True) -> None: ...
    def fetcher(self, image_id: str) -> Callable[[Path], None]: ...


def _image(images: SourceImages, account_id: str, name: str) -> Image | None:
    page = images.describe(
        account_id,
        owners=["self"],
        filters=[{"Name": "name", "Values": [name]}, {"Name": "state", "Values": ["available"]}],
    )
    return page.items[0].image if page.items else None


class DefaultEbsImage:
    def __init__(
        self, snapshots: Snapshots, images: SourceImages, admin_account_id: str, scratch: Path
    ) -> None:
        self.snapshots = snapshots
        self.images = images
        self.admin = admin_account_id
        self.scratch = scratch
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="ebs-default-image", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            self.install()
        except Exception:
            log.exception("ebs: registering %s failed", NAME)

    def _wait(self, what: str, check) -> Any:
        deadline = time.monotonic() + WAIT_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            found = check()
            if found:
                return found
            self._stop.wait(POLL_SECONDS)
        raise TimeoutError(f"gave up waiting for {what}")

    def install(self) -> str:
        existing = _image(self.images, self.admin, NAME)
        if existing is not None:
            return existing.id
        source = self._wait(SOURCE, lambda: _image(self.images, self.admin, SOURCE))
        snapshot_id = self._snapshot(source.id)
        self._wait(f"snapshot {snapshot_id}", lambda: self._completed(snapshot_id))
        self.snapshots.modify_attribute(
            self.admin,
            snapshot_id,
            None,
            PermissionModification(add=(Grantee(group=PUBLIC),)),
        )
        image_id = self.images.register(
            self.admin,
            RegisterRequest(
                name=NAME,
                description="karri-tiny with an EBS root volume (stop and start keep it)",
                architecture=source.architecture,
                root_device_name=ROOT_DEVICE,
                kernel_id=source.kernel_id,
                ramdisk_id=source.ramdisk_id,
                block_device_mappings=(root_from_snapshot(ROOT_DEVICE, snapshot_id),),
            ),
        )
        self.images.set_public(image_id)
        log.info("ebs: registered %s as %s (snapshot %s)", NAME, image_id, snapshot_id)
        return image_id

    def _snapshot(self, image_id: str) -> str:
        """The snapshot of the image's root disk: one begun earlier, or a new one."""
        with self.snapshots.db.session() as session:
            earlier = session.scalar(
                select(Snapshot.id).where(
                    Snapshot.account_id == self.admin,
                    Snapshot.description == SNAPSHOT_DESCRIPTION,
                    Snapshot.state.in_((states.PENDING, states.COMPLETED)),
                )
            )
        if earlier:
            return earlier
        self.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.scratch) as tmp:
            path = Path(tmp) / "root.img"
            self.images.fetcher(image_id)(path)
            view = self.snapshots.create_from_file(self.admin, path, SNAPSHOT_DESCRIPTION)
        return view.snapshot.id

    def _completed(self, snapshot_id: str) -> bool:
        with self.snapshots.db.session() as session:
            snapshot = session.get(Snapshot, snapshot_id)
            if snapshot is None or snapshot.state == states.SNAPSHOT_ERROR:
                raise RuntimeError(f"snapshot {snapshot_id} failed")
            return snapshot.state == states.COMPLETED
