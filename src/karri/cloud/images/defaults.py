"""The default image set: karri-tiny-kernel (EKI), karri-tiny-ramdisk (ERI) and karri-tiny
(EMI), public, owned by the ``eucalyptus`` account, registered on first start.

The files come from ``src/karri/node/tinyimage/build.sh`` (Debian packages fetched with
apt). A build is cached outside the data dir, keyed by a hash of the script and its guest
files, so only the first build on a machine pays for it (about a minute); each new data
dir then only bundles and registers the cached files, through the same bundle path as
users' images (bundle, upload to a Walrus bucket with ``aws-exec-read``, RegisterImage).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from karri.cloud.images.bundle import BundleSpec, create_bundle
from karri.cloud.images.models import Image

log = logging.getLogger("karri.images")

TINYIMAGE = Path(__file__).resolve().parents[2] / "node" / "tinyimage"
BUNDLE_BUCKET = "karri-default-images"
OUTPUTS = ("vmlinux", "initrd", "rootfs.img")
BUILD_TIMEOUT = 900


@dataclass(frozen=True)
class DefaultImage:
    name: str
    kind: str
    file: str
    description: str


SET = (
    # The uncompressed kernel: QEMU boots it directly (PVH), which spares TCG guests the
    # slow decompression (about 20 s of every boot and reboot on a loaded 2-core host).
    DefaultImage("karri-tiny-kernel", "kernel", "vmlinux", "Debian's linux-image-amd64 kernel"),
    DefaultImage("karri-tiny-ramdisk", "ramdisk", "initrd", "busybox initramfs for karri-tiny"),
    DefaultImage("karri-tiny", "machine", "rootfs.img", "tiny busybox guest (ext4 root)"),
)


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


def install(images, admin_account_id: str, scratch: Path, built: Path | None = None) -> dict:
    """Register the default set (what is missing of it) and make it public.

    Returns the name → image id of the whole set. ``images`` is the ``Images`` service.
    """
    from karri.walrus import acl

    existing = _existing(images, admin_account_id)
    if all(d.name in existing for d in SET):
        for image_id in existing.values():
            images.set_public(image_id)
        return existing
    built = built or ensure_built()
    walrus = images.walrus
    walrus.ensure_bucket(BUNDLE_BUCKET, admin_account_id)
    exec_read = acl.canned("aws-exec-read", admin_account_id, admin_account_id, bucket=False)
    scratch.mkdir(parents=True, exist_ok=True)
    for default in SET:
        if default.name in existing:
            continue
        path = built / default.file
        spec = BundleSpec(
            name=default.file,
            image_type=default.kind,
            account_id=admin_account_id,
            kernel_id=existing.get("karri-tiny-kernel") if default.kind == "machine" else None,
            ramdisk_id=existing.get("karri-tiny-ramdisk") if default.kind == "machine" else None,
        )
        prefix = f"{build_hash()}/{default.name}"
        with tempfile.TemporaryDirectory(dir=scratch) as tmp, open(path, "rb") as source:
            manifest, manifest_path = create_bundle(
                source,
                path.stat().st_size,
                spec,
                images.certificate.public_key(),
                Path(tmp),
                prefix=default.name,
            )
            for part in manifest.parts:
                with open(Path(tmp) / part.filename, "rb") as handle:
                    walrus.put_object(
                        BUNDLE_BUCKET, f"{prefix}/{part.filename}", handle, acl=exec_read
                    )
            walrus.put_object(
                BUNDLE_BUCKET,
                f"{prefix}/{manifest_path.name}",
                io.BytesIO(manifest_path.read_bytes()),
                acl=exec_read,
            )
        image_id = images.register(
            admin_account_id,
            {
                "ImageLocation": f"{BUNDLE_BUCKET}/{prefix}/{manifest_path.name}",
                "Name": default.name,
                "Description": default.description,
            },
        )
        images.set_public(image_id)
        existing[default.name] = image_id
        log.info("registered %s as %s", default.name, image_id)
    return existing


def _existing(images, account_id: str) -> dict[str, str]:
    names = [d.name for d in SET]
    with images.db.session() as session:
        rows = session.execute(
            select(Image.name, Image.id).where(
                Image.account_id == account_id,
                Image.name.in_(names),
                Image.state.in_(("pending", "available")),
            )
        ).all()
    return {name: image_id for name, image_id in rows}
