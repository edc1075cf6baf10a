"""A node on another host gets an image through its reference: a presigned URL of the
cloud's own Walrus (the system key), streamed and checked, never the cloud's files."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from karri.cli.common import open_cloud
from karri.cloud.images.store import IMAGES_BUCKET, stored_key
from karri.node import ImageError, ImageRef
from karri.node.imagecache import ImageCache
from karri.node.imagefetch import fetcher
from tests.conftest import Karri


def machine_image(ec2: Any, timeout: float = 180) -> str:
    """The default set's instance-store machine image, once available."""
    deadline = time.monotonic() + timeout
    while True:
        images = ec2.describe_images(
            Filters=[
                {"Name": "image-type", "Values": ["machine"]},
                {"Name": "root-device-type", "Values": ["instance-store"]},
                {"Name": "state", "Values": ["available"]},
            ]
        )["Images"]
        if images:
            return images[0]["ImageId"]
        assert time.monotonic() < deadline, "no default image became available"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def cloud(karri: Karri) -> Iterator[Any]:
    """The running cloud's controller, opened beside it (as `karri` commands do)."""
    opened = open_cloud(karri.data_dir)
    yield opened
    opened.db.dispose()


@pytest.fixture(scope="module")
def image(ec2: Any, cloud: Any) -> tuple[ImageRef, bytes]:
    image_id = machine_image(ec2)
    ref = cloud.images.image_ref(image_id)
    with cloud.walrus.open_object(IMAGES_BUCKET, stored_key(image_id)) as reader:
        stored = b"".join(reader.chunks())
    return ref, stored


def fetch(cache: ImageCache, ref: ImageRef, walrus: Path | None = None) -> Path:
    return asyncio.run(cache.ensure(ref.image_id, fetcher(ref, walrus), user="i-00000001"))


def test_a_node_fetches_the_image_by_its_presigned_url(
    karri: Karri, cloud: Any, image: tuple[ImageRef, bytes], tmp_path: Path
) -> None:
    ref, stored = image
    assert ref.url.startswith(f"{karri.s3_url}/{IMAGES_BUCKET}/{ref.image_id}/image?")
    assert "X-Amz-Signature=" in ref.url and "X-Amz-Expires=900" in ref.url
    assert (ref.size, ref.sha256) == (len(stored), hashlib.sha256(stored).hexdigest())
    # recorded when the image was stored, not hashed again for each reference
    info = cloud.walrus.head_object(IMAGES_BUCKET, stored_key(ref.image_id))
    assert info.meta["sha256"] == ref.sha256
    cache = ImageCache(tmp_path / "node" / "images")
    path = fetch(cache, ref)  # no Walrus directory: a node on another host
    assert path.read_bytes() == stored
    assert path.stat().st_ino != (karri.data_dir / "walrus" / str(ref.blob)).stat().st_ino


def test_a_node_sharing_the_data_dir_links_the_blob(
    karri: Karri, image: tuple[ImageRef, bytes], tmp_path: Path
) -> None:
    ref, _ = image
    walrus = karri.data_dir / "walrus"
    no_url = dataclasses.replace(ref, url="http://127.0.0.1:9/unused")
    path = fetch(ImageCache(tmp_path / "images"), no_url, walrus)
    assert path.stat().st_ino == (walrus / str(ref.blob)).stat().st_ino


def test_the_url_opens_that_object_only_and_only_signed(
    karri: Karri, image: tuple[ImageRef, bytes], tmp_path: Path
) -> None:
    ref, _ = image
    base, query = ref.url.split("?", 1)
    signature = query.rsplit("=", 1)[1]
    forged = ref.url[: -len(signature)] + ("0" if signature[0] != "0" else "1") + signature[1:]
    other = ref.url.replace(f"/{ref.image_id}/image?", f"/{ref.image_id}/other?")
    for url, code in ((base, 403), (forged, 403), (other, 403)):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(url, timeout=30)
        assert error.value.code == code, url
    cache = ImageCache(tmp_path / "images")
    with pytest.raises(ImageError, match="answered 403"):
        fetch(cache, dataclasses.replace(ref, url=forged))
    assert cache.path(ref.image_id) is None


def test_bytes_other_than_the_reference_says_are_refused(
    image: tuple[ImageRef, bytes], tmp_path: Path
) -> None:
    ref, _ = image
    cache = ImageCache(tmp_path / "images")
    with pytest.raises(ImageError, match="SHA-256"):
        fetch(cache, dataclasses.replace(ref, sha256="0" * 64))
    assert cache.path(ref.image_id) is None
    assert not list((tmp_path / "images" / ref.image_id).glob("*partial*"))
