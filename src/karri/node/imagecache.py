"""The node's image cache: each image fetched and unpacked once, shared read-only.

``DATA_DIR/node/images/<image-id>/image`` holds an image's bytes (a root disk, a kernel or
a ramdisk). Instances use it as the read-only backing file of their own qcow2 overlay, so
the hundredth launch of an image copies nothing. Concurrent first launches wait for one
fetch (a lock per image). Each instance using an entry leaves a marker in ``users/`` (kept
on disk, so a restarted node still knows); a deregistered image's entry is freed when its
last user releases it.

The cache knows nothing of the cloud: the caller hands ``ensure`` a ``fetch`` function
that puts the image's bytes at a path (the node's is ``imagefetch.fetcher``: a hard link
of Walrus's blob on the cloud's own host, else the presigned URL, verified).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import shutil
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

Fetch = Callable[[Path], "Awaitable[None] | None"]
IMAGE_ID = re.compile(r"^[a-z]{3}-[0-9a-f]{8,17}$")
USER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
IMAGE_FILE = "image"
PARTIAL = ".image.partial"
FORGOTTEN = "deregistered"


class ImageCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0  # how many fetches this cache has run (for tests and benchmarks)

    def _entry(self, image_id: str) -> Path:
        if not IMAGE_ID.match(image_id):
            raise ValueError(f"not an image id: {image_id!r}")
        return self.root / image_id

    def file(self, image_id: str) -> Path:
        """Where the image's bytes are once cached."""
        return self._entry(image_id) / IMAGE_FILE

    def path(self, image_id: str) -> Path | None:
        """The cached file, if the image is cached."""
        file = self._entry(image_id) / IMAGE_FILE
        return file if file.exists() else None

    async def ensure(self, image_id: str, fetch: Fetch, *, user: str | None = None) -> Path:
        """The image's file, fetched on first use; ``user`` (an instance id) is recorded."""
        entry = self._entry(image_id)
        file = entry / IMAGE_FILE
        lock = self._locks.setdefault(image_id, asyncio.Lock())
        async with lock:
            if user is not None:
                self._mark(entry, user)
            if not file.exists():
                await self._fetch(entry, fetch)
        return file

    async def _fetch(self, entry: Path, fetch: Fetch) -> None:
        entry.mkdir(parents=True, exist_ok=True)
        partial = entry / PARTIAL
        partial.unlink(missing_ok=True)
        try:
            if inspect.iscoroutinefunction(fetch):
                await fetch(partial)
            else:
                result = await asyncio.to_thread(fetch, partial)
                if inspect.isawaitable(result):
                    await result
            if not partial.exists():
                raise RuntimeError(f"fetching {entry.name} produced no file")
            os.replace(partial, entry / IMAGE_FILE)
            self.fetches += 1
        finally:
            partial.unlink(missing_ok=True)

    def _mark(self, entry: Path, user: str) -> None:
        if not USER.match(user):
            raise ValueError(f"not a user id: {user!r}")
        users = entry / "users"
        users.mkdir(parents=True, exist_ok=True)
        (users / user).touch()

    def users(self, image_id: str) -> set[str]:
        users = self._entry(image_id) / "users"
        return {p.name for p in users.iterdir()} if users.is_dir() else set()

    def release(self, image_id: str, user: str) -> None:
        """``user`` no longer needs the image (its instance is gone)."""
        entry = self._entry(image_id)
        (entry / "users" / user).unlink(missing_ok=True)
        if (entry / FORGOTTEN).exists():
            self._free_if_unused(entry)

    def forget(self, image_id: str) -> None:
        """The image was deregistered: free its entry now, or when its last user leaves."""
        entry = self._entry(image_id)
        if not entry.exists():
            return
        (entry / FORGOTTEN).touch()
        self._free_if_unused(entry)

    def reconcile(self, live_users: Iterable[str]) -> None:
        """After a restart: drop the markers of users that no longer exist."""
        live = set(live_users)
        for entry in self.root.iterdir():
            users = entry / "users"
            if users.is_dir():
                for marker in users.iterdir():
                    if marker.name not in live:
                        marker.unlink(missing_ok=True)
            (entry / PARTIAL).unlink(missing_ok=True)
            if (entry / FORGOTTEN).exists():
                self._free_if_unused(entry)

    def _free_if_unused(self, entry: Path) -> None:
        users = entry / "users"
        if users.is_dir() and any(users.iterdir()):
            return
        lock = self._locks.get(entry.name)
        if lock is not None and lock.locked():
            return  # a launch is fetching it right now
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(entry)
        self._locks.pop(entry.name, None)
