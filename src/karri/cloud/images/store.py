"""Where registered images live: unpacked, as objects in a system-owned Walrus bucket.

A registered image is an ordinary Walrus object (``karri-images/<image-id>/image``) owned
by the cloud's system account and readable by nobody else, its SHA-256 in its metadata.
A node gets it through an ``ImageRef`` (``ref``): size, SHA-256, a presigned URL, and the
blob file, which a node on the cloud's own host hard-links into its image cache (so an
image is written once at registration and never again; ``node/imagefetch.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from karri.node import ImageRef
from karri.walrus import SYSTEM_ACCOUNT, S3Error, Walrus

IMAGES_BUCKET = "karri-images"
SHA256_META = "sha256"


class ObjectUrls(Protocol):
    """Presigned GET URLs of the system account's objects (``cloud/systemkey.py``)."""

    def get(self, bucket: str, object_key: str) -> str: ...


def stored_key(image_id: str) -> str:
    return f"{image_id}/image"


class ImageStore:
    def __init__(self, walrus: Walrus) -> None:
        self.walrus = walrus
        self._ready = False
        self._digests: dict[tuple[str, str], str] = {}

    def ensure_bucket(self) -> None:
        if not self._ready:
            self.walrus.ensure_bucket(IMAGES_BUCKET, SYSTEM_ACCOUNT)
            self._ready = True

    def writer(self):
        self.ensure_bucket()
        return self.walrus.writer(sha256=True)

    def commit(self, image_id: str, writer) -> int:
        """Make a finished writer the image's stored bytes; returns their size."""
        info = self.walrus.commit_object(
            IMAGES_BUCKET,
            stored_key(image_id),
            writer,
            owner=SYSTEM_ACCOUNT,
            acl={"owner": SYSTEM_ACCOUNT, "grants": [[SYSTEM_ACCOUNT, "FULL_CONTROL"]]},
            meta={SHA256_META: writer.digests.sha256_hex()},
        )
        return info.size

    def ref(self, image_id: str, urls: ObjectUrls) -> ImageRef:
        """What a node needs to fetch the stored image and check it (S3Error if gone)."""
        key = stored_key(image_id)
        info = self.walrus.head_object(IMAGES_BUCKET, key)
        sha256 = info.meta.get(SHA256_META) or self._hashed(info.version_id, image_id)
        blob = self.walrus.object_path(IMAGES_BUCKET, key)  # None: no local files (RADOS)
        root = getattr(self.walrus.blobs, "root", None)
        local = None
        if blob is not None and root is not None and blob.is_relative_to(root):
            local = str(blob.relative_to(root))
        return ImageRef(image_id, info.size, sha256, urls.get(IMAGES_BUCKET, key), local)

    def _hashed(self, version_id: str, image_id: str) -> str:
        """The SHA-256 of an image stored before it was recorded, computed once."""
        known = self._digests.get((image_id, version_id))
        if known is None:
            digest = hashlib.sha256()
            with self.walrus.open_object(IMAGES_BUCKET, stored_key(image_id)) as reader:
                for chunk in reader.chunks(chunk=8 << 20):
                    digest.update(chunk)
            known = self._digests[(image_id, version_id)] = digest.hexdigest()
        return known

    def delete(self, image_id: str) -> None:
        with contextlib.suppress(S3Error):
            self.walrus.delete_object(IMAGES_BUCKET, stored_key(image_id))

    def fetcher(self, image_id: str) -> Callable[[Path], None]:
        """A function that puts the image's bytes at a path on the cloud's host (a hard link
        of the blob where it can; the default volumes' snapshots). Nodes use ``ref``."""

        def fetch(dest: Path) -> None:
            with self.walrus.open_object(IMAGES_BUCKET, stored_key(image_id)) as reader:
                source = self.walrus.object_path(IMAGES_BUCKET, stored_key(image_id))
                try:
                    if source is not None:  # a local file: a link, no copy
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
