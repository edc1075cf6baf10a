"""A node gets an image by its reference: a hard link of the cloud's blob when it shares
the cloud's data dir, else the presigned URL, streamed and checked (size, SHA-256)."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from karri.api.auth import sigv4
from karri.api.auth.credentials import KeyStore, Principal, SigningKey
from karri.node import ImageError, ImageRef, ImageRoot, InstanceSpec, Node, NodeSettings
from karri.node.imagecache import ImageCache
from karri.node.imagefetch import fetcher
from karri.signing import presign_get

IMAGE = "emi-0badc0de"
DATA = b"an image's bytes " * 100_000  # ~1.7 MB: several chunks
SHA = hashlib.sha256(DATA).hexdigest()
BLOB = "blobs/ab/ab" + "0" * 30


class Files(http.server.BaseHTTPRequestHandler):
    served: dict[str, bytes] = {}
    hits: list[str] = []

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.hits.append(path)
        body = self.served.get(path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Files.served = {"/image": DATA, "/other": DATA[:-1] + b"X", "/short": DATA[:1000]}
    Files.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def ref(url: str, *, size: int = len(DATA), sha256: str = SHA, blob: str | None = None):
    return ImageRef(IMAGE, size, sha256, url, blob)


def ensure(cache: ImageCache, image: ImageRef, walrus: Path | None = None) -> Path:
    return asyncio.run(cache.ensure(IMAGE, fetcher(image, walrus), user="i-00000001"))


def test_fetched_by_url_and_verified(tmp_path: Path, server: str) -> None:
    cache = ImageCache(tmp_path / "images")
    path = ensure(cache, ref(f"{server}/image"))
    assert path.read_bytes() == DATA and cache.fetches == 1
    assert ensure(cache, ref(f"{server}/image")) == path and cache.fetches == 1  # once
    assert Files.hits == ["/image"]


@pytest.mark.parametrize(
    ("path", "size", "sha256", "says"),
    [
        ("/other", len(DATA), SHA, "SHA-256"),  # same size, other bytes
        ("/short", len(DATA), SHA, "bytes, not"),  # fewer bytes than the reference says
        ("/image", len(DATA) - 1, SHA, "more than"),  # more: refused while streaming
        ("/image", len(DATA), "0" * 64, "SHA-256"),  # the reference's digest differs
        ("/missing", len(DATA), SHA, "answered 404"),
    ],
)
def test_bytes_that_differ_are_refused_and_removed(
    tmp_path: Path, server: str, path: str, size: int, sha256: str, says: str
) -> None:
    cache = ImageCache(tmp_path / "images")
    with pytest.raises(ImageError, match=says):
        ensure(cache, ref(f"{server}{path}", size=size, sha256=sha256))
    entry = tmp_path / "images" / IMAGE
    assert cache.path(IMAGE) is None
    assert [p.name for p in entry.iterdir() if p.name != "users"] == []  # no partial file
    assert ensure(cache, ref(f"{server}/image")).read_bytes() == DATA  # a good one later


def test_unreachable_url_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cannot fetch"):
        ensure(ImageCache(tmp_path / "images"), ref("http://127.0.0.1:9/image"))


def walrus_with_blob(tmp_path: Path, data: bytes = DATA) -> Path:
    walrus = tmp_path / "walrus"
    (walrus / BLOB).parent.mkdir(parents=True)
    (walrus / BLOB).write_bytes(data)
    return walrus


def test_a_node_sharing_the_data_dir_hard_links_the_blob(tmp_path: Path, server: str) -> None:
    walrus = walrus_with_blob(tmp_path)
    path = ensure(ImageCache(tmp_path / "images"), ref(f"{server}/image", blob=BLOB), walrus)
    assert path.stat().st_ino == (walrus / BLOB).stat().st_ino  # no copy
    assert Files.hits == []  # the URL was not used


def test_a_node_on_another_host_fetches_even_with_a_blob_named(tmp_path: Path, server: str) -> None:
    walrus_with_blob(tmp_path)
    path = ensure(ImageCache(tmp_path / "images"), ref(f"{server}/image", blob=BLOB), None)
    assert path.read_bytes() == DATA and path.stat().st_nlink == 1
    assert Files.hits == ["/image"]


def test_a_blob_of_another_size_is_fetched_instead(tmp_path: Path, server: str) -> None:
    walrus = walrus_with_blob(tmp_path, DATA[:10])  # replaced since the reference was made
    path = ensure(ImageCache(tmp_path / "images"), ref(f"{server}/image", blob=BLOB), walrus)
    assert path.read_bytes() == DATA and Files.hits == ["/image"]
    assert (walrus / BLOB).read_bytes() == DATA[:10]  # the cloud's file untouched


def test_a_blob_outside_walrus_is_refused(tmp_path: Path, server: str) -> None:
    walrus = walrus_with_blob(tmp_path)
    (tmp_path / "secret").write_bytes(DATA)
    with pytest.raises(ImageError, match="outside"):
        ensure(ImageCache(tmp_path / "images"), ref(f"{server}/i", blob="../secret"), walrus)


def test_presigned_urls_verify_with_karris_own_verifier() -> None:
    secret = "s3cr3t/with+chars"
    now = datetime(2026, 12, 6, 5, 0, 0, tzinfo=UTC)
    url = presign_get(
        "http://127.0.0.1:8774", "/karri-images/emi-1/image", "AKISKEY", secret, "r1", 900, now=now
    )
    parts = urlsplit(url)
    query = [tuple(p.split("=", 1)) for p in parts.query.split("&")]
    request = sigv4.HttpRequest(
        "GET",
        parts.path,
        [(unquote(k), unquote(v)) for k, v in query],
        [("host", parts.netloc)],
    )
    keys = KeyStore(lambda key_id: SigningKey(secret, Principal(key_id, "000000000000", "s")))
    verified = sigv4.verify(
        request, keys, sigv4.UNSIGNED_PAYLOAD, s3=True, now=now, endpoint=("r1", "s3")
    )
    assert verified.principal.account_id == "000000000000"
    with pytest.raises(Exception, match="expired"):
        sigv4.verify(request, keys, sigv4.UNSIGNED_PAYLOAD, s3=True, now=now.replace(hour=6))


def test_the_node_takes_the_fast_path_only_when_its_settings_say_so(
    tmp_path: Path, server: str
) -> None:
    walrus = walrus_with_blob(tmp_path)
    image = ImageRoot(ref(f"{server}/image", blob=BLOB))
    spec = InstanceSpec("i-00000001", 1, 128, image, "d0:0d:00:00:00:01", "172.31.0.5")
    accel = tmp_path / "accel.json"
    shared = Node(tmp_path / "one-host", NodeSettings(cloud_walrus=walrus, accelerator_cache=accel))
    other = Node(tmp_path / "other-host", NodeSettings(accelerator_cache=accel))
    asyncio.run(shared._ensure_images(spec))
    assert shared.images.file(IMAGE).stat().st_ino == (walrus / BLOB).stat().st_ino
    assert Files.hits == []
    asyncio.run(other._ensure_images(spec))
    assert other.images.file(IMAGE).read_bytes() == DATA and Files.hits == ["/image"]
    shared.forget_image(IMAGE)  # deregistered: kept while its instance uses it
    assert shared.images.users(IMAGE) == {"i-00000001"}
    shared.images.release(IMAGE, "i-00000001")
    assert shared.images.path(IMAGE) is None
