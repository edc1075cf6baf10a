"""Where registered images live: unpacked, as objects in a system-owned Walrus bucket.

A registered image is an ordinary Walrus object (``karri-images/<image-id>/image``) owned
by the cloud's system account and readable by nobody else. Nodes fetch it cheaply: the
object's blob file is hard-linked into the node's image cache (a copy when the cache is on
another file system), so an image is written once at registration and never again.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from karri.walrus import SYSTEM_ACCOUNT, S3Error, Walrus

IMAGES_BUCKET = "karri-images"


def stored_key(image_id: str) -> str:
    return f"{image_id}/image"


class ImageStore:
    def __init__(self, walrus: Walrus) -> None:
        self.walrus = walrus
        self._ready = False

    def ensure_bucket(self) -> None:
        if not self._ready:
            self.walrus.ensure_bucket(IMAGES_BUCKET, SYSTEM_ACCOUNT)
            self._ready = True

    def writer(self):
        self.ensure_bucket()
        return self.walrus.writer()

    def commit(self, image_id: str, writer) -> int:
        """Make a finished writer the image's stored bytes; returns their size."""
        info = self.walrus.commit_object(
            IMAGES_BUCKET,
            stored_key(image_id),
            writer,
            owner=SYSTEM_ACCOUNT,
            acl={"owner": SYSTEM_ACCOUNT, "grants": [[SYSTEM_ACCOUNT, "FULL_CONTROL"]]},
        )
        return info.size

    def delete(self, image_id: str) -> None:
        with contextlib.suppress(S3Error):
            self.walrus.delete_object(IMAGES_BUCKET, stored_key(image_id))

    def fetcher(self, image_id: str) -> Callable[[Path], None]:
        """A function that puts the image's bytes at a path (for the node's image cache)."""

        def fetch(dest: Path) -> None:
            with self.walrus.open_object(IMAGES_BUCKET, stored_key(image_id)) as reader:
                source = self.walrus.object_path(IMAGES_BUCKET, stored_key(image_id))
                try:
                    os.link(source, dest)
                    if os.stat(dest).st_size == reader.info.size:
                        return
                    os.unlink(dest)  # overwritten between the open and the link
                except OSError:
                    pass
                with open(dest, "wb") as out:
                    for chunk in reader.chunks(chunk=8 << 20):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())

        return fetch
