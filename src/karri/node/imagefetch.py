"""Getting an image's bytes for the image cache from its ``ImageRef``.

Two ways, decided by the node's settings, not guessed: a node that shares the cloud's data
dir (``NodeSettings.cloud_walrus``, the one-host case) hard-links Walrus's blob file,
checking its size (the cloud's own immutable file on this host; the hundredth launch
copies nothing and the first reads nothing). Any other node, or when the link cannot be
made (another file system, the blob gone), streams the presigned URL and checks size and
SHA-256 as it writes; a copy that differs is an ``ImageError`` and its file is removed.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from karri.node.errors import ImageError
from karri.node.spec import ImageRef

CHUNK = 1 << 20
TIMEOUT = 60.0


def fetcher(ref: ImageRef, cloud_walrus: Path | None) -> Callable[[Path], None]:
    """For ``ImageCache.ensure``: puts the image's verified bytes at a path (blocking)."""

    def fetch(dest: Path) -> None:
        if cloud_walrus is not None and ref.blob and link(cloud_walrus, ref, dest):
            return
        download(ref, dest)

    return fetch


def link(cloud_walrus: Path, ref: ImageRef, dest: Path) -> bool:
    """Hard-link the cloud's blob file of the image to ``dest``; False if it cannot be."""
    root = cloud_walrus.resolve()
    source = (root / (ref.blob or "")).resolve()
    if not source.is_relative_to(root) or source == root:
        raise ImageError(f"{ref.image_id}: the blob {ref.blob!r} is outside Walrus")
    try:
        os.link(source, dest)
    except OSError:
        return False
    if os.stat(dest).st_size == ref.size:
        return True
    dest.unlink()  # not the bytes the reference names (replaced meanwhile): fetch them
    return False


def download(ref: ImageRef, dest: Path, *, opener: Callable = urllib.request.urlopen) -> None:
    """Stream ``ref.url`` into ``dest``, refusing bytes that are not ``ref``'s."""
    digest = hashlib.sha256()
    size = 0
    try:
        try:
            with opener(ref.url, timeout=TIMEOUT) as response, open(dest, "wb") as out:
                while chunk := response.read(CHUNK):
                    size += len(chunk)
                    if size > ref.size:
                        raise ImageError(f"{ref.image_id}: more than its {ref.size} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as error:
            raise ImageError(f"{ref.image_id}: fetching it answered {error.code}") from None
        except (urllib.error.URLError, OSError) as error:
            raise ImageError(f"{ref.image_id}: cannot fetch it: {error}") from None
        if size != ref.size:
            raise ImageError(f"{ref.image_id}: {size} bytes, not {ref.size}")
        if digest.hexdigest() != ref.sha256.lower():
            raise ImageError(f"{ref.image_id}: its SHA-256 is not {ref.sha256}")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
