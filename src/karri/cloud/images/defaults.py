"""The default image set: karri-tiny-kernel (EKI), karri-tiny-ramdisk (ERI) and karri-tiny
(EMI), public, owned by the ``eucalyptus`` account, registered on first start.

The files come from ``karri.node.guestimage`` (built once per machine, cached outside the
data dir); each new data dir only bundles and registers them, through the same bundle path
as users' images (bundle, upload to a Walrus bucket with ``aws-exec-read``, RegisterImage).
"""

from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import select

from karri.cloud.certs import CloudCertificate
from karri.cloud.images.bundle import BundleSpec, create_bundle
from karri.cloud.images.models import Image
from karri.cloud.images.requests import RegisterRequest
from karri.db.engine import Database
from karri.node.guestimage import build_hash, ensure_built
from karri.walrus import Walrus, acl

log = logging.getLogger("karri.images")

BUNDLE_BUCKET = "karri-default-images"


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


class Registrar(Protocol):
    """The images service, registering its own default set as a user would."""

    db: Database
    walrus: Walrus
    certificate: CloudCertificate

    def register(self, account_id: str, request: RegisterRequest) -> str: ...
    def set_public(self, image_id: str, public: bool = True) -> None: ...
    def deregister(self, account_id: str, image_id: str | None) -> None: ...


def install(
    images: Registrar, admin_account_id: str, scratch: Path, built: Path | None = None
) -> dict[str, str]:
    """Register the default set (what is missing of it) and make it public.

    Returns the name → image id of the whole set."""
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
    for failed in _failed(images, admin_account_id):  # a start cut short: its name is free again
        images.deregister(admin_account_id, failed)
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
            RegisterRequest(
                image_location=f"{BUNDLE_BUCKET}/{prefix}/{manifest_path.name}",
                name=default.name,
                description=default.description,
            ),
        )
        images.set_public(image_id)
        existing[default.name] = image_id
        log.info("registered %s as %s", default.name, image_id)
    return existing


def _failed(images: Registrar, account_id: str) -> list[str]:
    """The default images whose unpacking failed (a stop during the first start)."""
    with images.db.session() as session:
        return list(
            session.scalars(
                select(Image.id).where(
                    Image.account_id == account_id,
                    Image.name.in_([d.name for d in SET]),
                    Image.state == "failed",
                )
            )
        )


def _existing(images: Registrar, account_id: str) -> dict[str, str]:
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
