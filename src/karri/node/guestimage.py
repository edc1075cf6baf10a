"""The default guest: a Debian kernel, a busybox initramfs and a small ext4 root.

Built by ``tinyimage/build.sh`` (Debian packages fetched with apt) once per machine and
cached outside any data dir, keyed by a hash of the script and its guest files, so only the
first build pays (about a minute). The cloud registers it as its default image set; the
node boots its kernel and initramfs to decide whether KVM can run a real guest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("karri.node")

TINYIMAGE = Path(__file__).resolve().parent / "tinyimage"
OUTPUTS = ("vmlinux", "initrd", "rootfs.img")
BUILD_TIMEOUT = 900


def build_hash() -> str:
    """Changes whenever the build script, a guest file or a build setting changes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in TINYIMAGE.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(TINYIMAGE)).encode() + b"\0" + path.read_bytes())
    for name in sorted(k for k in os.environ if k.startswith("KARRI_TINY_")):
        digest.update(f"{name}={os.environ[name]}".encode())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """$KARRI_TINYIMAGE_CACHE, else /var/cache/karri/tinyimage, else ~/.cache/..."""
    configured = os.environ.get("KARRI_TINYIMAGE_CACHE")
    candidates = [Path(configured)] if configured else []
    candidates += [Path("/var/cache/karri/tinyimage"), Path.home() / ".cache/karri/tinyimage"]
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            if os.access(candidate, os.W_OK):
                return candidate
        except OSError:
            continue
    raise RuntimeError("no writable cache directory for the tiny image")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_built(root: Path | None = None) -> Path:
    """The directory holding vmlinux, initrd and rootfs.img, built once per machine.

    Concurrent clouds on one machine wait for a single build (a file lock).
    """
    root = root or cache_root()
    target = root / build_hash()
    if (target / ".complete").exists():
        return target
    with _locked(root / ".lock"):
        if (target / ".complete").exists():
            return target
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            log.info("building the tiny image set into %s (first start on this machine)", target)
            result = subprocess.run(
                ["bash", str(TINYIMAGE / "build.sh"), str(work), str(root / "debs")],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
            )
            if result.returncode != 0:
                raise RuntimeError(
                    f"build.sh failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
                )
            for name in OUTPUTS:
                if not (work / name).is_file():
                    raise RuntimeError(f"build.sh made no {name}")
            (work / ".complete").write_text("")
            shutil.rmtree(target, ignore_errors=True)
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target
