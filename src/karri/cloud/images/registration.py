"""RegisterImage from a bundle: what is checked at once, and the unpacking that follows.

At once (so that a bad request registers nothing): the manifest is readable by the caller
and is a manifest, the image type, architecture and size are acceptable, every part is
there and readable, and the bundle was encrypted for this cloud. In the background: the
parts are streamed through their digests, decrypted, gunzipped and untarred into the
image store; the image becomes ``available``, or ``failed`` with the reason.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from karri.cloud.certs import CloudCertificate
from karri.cloud.images import bundle
from karri.cloud.images.manifest import Manifest, ManifestError, parse
from karri.cloud.images.store import ImageStore
from karri.cloud.images.views import ARCHITECTURES
from karri.errors import CloudError
from karri.walrus import S3Error, Walrus


def invalid_manifest(message: str) -> CloudError:
    return CloudError("InvalidManifest", message)


def split_location(location: str) -> tuple[str, str]:
    """``bucket/key`` (a leading ``/`` and an ``s3://`` prefix are tolerated)."""
    path = location.removeprefix("s3://").lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise CloudError(
            "InvalidParameterValue",
            f"Invalid image location '{location}': expected bucket/path.manifest.xml",
        )
    return bucket, key


def part_key(manifest_key: str, filename: str) -> str:
    """Parts sit next to their manifest (euca-upload-bundle puts them there)."""
    directory = posixpath.dirname(manifest_key)
    return f"{directory}/{filename}" if directory else filename


@dataclass(frozen=True)
class Bundle:
    bucket: str
    key: str
    manifest: Manifest


def check_bundle(
    walrus: Walrus,
    certificate: CloudCertificate,
    account_id: str,
    location: str,
    *,
    max_bytes: int,
    architecture: str | None = None,
) -> Bundle:
    """Everything about a bundle that can be known without reading its parts."""
    bucket, key = split_location(location)
    if not walrus.may_read(account_id, bucket, key):
        raise invalid_manifest(f"The manifest {bucket}/{key} does not exist or you may not read it")
    try:
        document = walrus.get_object(bucket, key)
    except S3Error:
        raise invalid_manifest(f"The manifest {bucket}/{key} could not be read") from None
    try:
        manifest = parse(document)
    except ManifestError as error:
        raise invalid_manifest(f"Invalid manifest {bucket}/{key}: {error}") from None
    arch = architecture or manifest.architecture
    if arch not in ARCHITECTURES:
        raise CloudError(
            "InvalidParameterValue",
            f"Unsupported architecture '{arch}': this cloud runs {', '.join(ARCHITECTURES)}",
        )
    manifest.architecture = arch
    if manifest.size > max_bytes:
        raise CloudError(
            "ResourceLimitExceeded",
            f"The image is {manifest.size} bytes; this cloud registers images of at most "
            f"{max_bytes} bytes",
        )
    for part in manifest.parts:
        name = part_key(key, part.filename)
        try:
            walrus.head_object(bucket, name)
        except S3Error:
            raise invalid_manifest(
                f"Part {part.filename} of the bundle is missing from {bucket}/{name}"
            ) from None
        if not walrus.may_read(account_id, bucket, name):
            raise invalid_manifest(f"You may not read part {bucket}/{name}")
    try:
        bundle.decrypt_key(certificate.decrypt, manifest)
    except bundle.BundleError as error:
        raise invalid_manifest(str(error)) from None
    return Bundle(bucket, key, manifest)


def unpack(
    walrus: Walrus,
    certificate: CloudCertificate,
    store: ImageStore,
    image_id: str,
    location: str,
    max_bytes: int,
) -> int:
    """Stream the bundle into the image store; returns the image's size.

    Raises ``bundle.BundleError`` or ``ManifestError`` (client faults) with the reason.
    """
    bucket, key = split_location(location)
    try:
        manifest = parse(walrus.get_object(bucket, key))
    except S3Error:
        raise ManifestError(f"the manifest {bucket}/{key} is gone") from None
    aes_key, iv = bundle.decrypt_key(certificate.decrypt, manifest)
    writer = store.writer()
    try:
        parts = (_chunks(walrus, bucket, part_key(key, p.filename)) for p in manifest.parts)
        bundle.unbundle(manifest, aes_key, iv, parts, writer, max_size=max_bytes)
        return store.commit(image_id, writer)
    except BaseException:
        writer.abort()
        raise


def _chunks(walrus: Walrus, bucket: str, key: str) -> Iterator[bytes]:
    try:
        reader = walrus.open_object(bucket, key)
    except S3Error:
        raise bundle.BundleError(f"part {bucket}/{key} is missing") from None
    with contextlib.closing(reader):
        yield from reader.chunks()
