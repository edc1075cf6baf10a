"""The Walrus Python interface that other components use, on a real database and disk."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from karri.db.engine import Database
from karri.walrus import CLOUD, SYSTEM_ACCOUNT, S3Error, Walrus
from karri.walrus import acl as acls
from karri.walrus.checksums import multipart_etag
from karri.walrus.multipart import RequestedPart

ALICE, BOB = "111111111111", "222222222222"


@pytest.fixture
def walrus(tmp_path: Path) -> Walrus:
    return Walrus(Database(f"sqlite:///{tmp_path / 'k.db'}"), tmp_path / "walrus")


def blobs_on_disk(walrus: Walrus) -> list[Path]:
    walrus.blobs.drain()
    return [p for p in walrus.blobs.blobs.rglob("*") if p.is_file()]


def commit_part(walrus: Walrus, upload_id: str, number: int, data: bytes) -> str:
    """Write ``data`` as part ``number`` of the upload; its ETag."""
    writer = walrus.writer()
    writer.write(data)
    return walrus.commit_part(upload_id, number, writer).etag


def upload_parts(walrus: Walrus, upload_id: str, parts: list[bytes]) -> list[RequestedPart]:
    """Each of ``parts`` as parts 1, 2, ... of the upload, named as a complete names them."""
    return [
        RequestedPart(number, commit_part(walrus, upload_id, number, data), {})
        for number, data in enumerate(parts, 1)
    ]


def test_put_from_iterator_open_head_path_delete(walrus: Walrus) -> None:
    walrus.ensure_bucket("images", ALICE)
    chunks = [os.urandom(100_000) for _ in range(5)]
    info = walrus.put_object("images", "a/b/../c %.img", iter(chunks))
    data = b"".join(chunks)
    assert (info.size, info.etag) == (len(data), hashlib.md5(data).hexdigest())
    assert info.owner == ALICE
    with walrus.open_object("images", "a/b/../c %.img") as reader:
        assert reader.read() == data
        assert b"".join(reader.chunks(10, 20)) == data[10:20]
        assert reader.path.read_bytes() == data
    path = walrus.object_path("images", "a/b/../c %.img")
    assert path.read_bytes() == data
    assert path.stat().st_mode & 0o222 == 0  # read-only
    assert walrus.blobs.root in path.parents
    assert walrus.head_object("images", "a/b/../c %.img").etag == info.etag
    walrus.delete_object("images", "a/b/../c %.img")
    with pytest.raises(S3Error) as error:
        walrus.head_object("images", "a/b/../c %.img")
    assert error.value.code == "NoSuchKey"
    assert blobs_on_disk(walrus) == []


def test_reader_survives_overwrite_and_delete(walrus: Walrus) -> None:
    walrus.ensure_bucket("bk1", ALICE)
    walrus.put_object("bk1", "k", b"old" * 1000)
    with walrus.open_object("bk1", "k") as reader:
        walrus.put_object("bk1", "k", b"new")
        walrus.delete_object("bk1", "k")
        assert reader.read() == b"old" * 1000


def test_ensure_bucket_is_idempotent_and_names_are_global(walrus: Walrus) -> None:
    first = walrus.ensure_bucket("snapshots-x", SYSTEM_ACCOUNT)
    assert walrus.ensure_bucket("snapshots-x", SYSTEM_ACCOUNT) == first
    with pytest.raises(S3Error) as error:
        walrus.ensure_bucket("snapshots-x", ALICE)
    assert error.value.code == "BucketAlreadyExists"
    with pytest.raises(S3Error) as error:
        walrus.create_bucket("Bad_Name", ALICE)
    assert error.value.code == "InvalidBucketName"


def test_listing_prefix_delimiter_and_pages(walrus: Walrus) -> None:
    walrus.ensure_bucket("list", ALICE)
    keys = ["a", "b/1", "b/2", "b/3/x", "c", "c/", "d%", "é"]
    for key in keys:
        walrus.put_object("list", key, b"x")
    listing = walrus.list_objects("list", delimiter="/")
    assert [o.key for o in listing.objects] == ["a", "c", "d%", "é"]
    assert listing.prefixes == ["b/", "c/"]
    assert [o.key for o in walrus.list_objects("list", "b/").objects] == ["b/1", "b/2", "b/3/x"]
    assert walrus.list_objects("list", "b/", delimiter="/").prefixes == ["b/3/"]
    seen, after = [], ""
    while True:
        page = walrus.list_objects("list", delimiter="/", after=after, max_keys=2)
        seen += [o.key for o in page.objects] + page.prefixes
        if not page.truncated:
            break
        after = page.next_marker
    assert seen == ["a", "b/", "c", "c/", "d%", "é"]


def test_versioning_keeps_versions_and_writes_delete_markers(walrus: Walrus) -> None:
    walrus.ensure_bucket("ver", ALICE)
    walrus.update_bucket("ver", versioning="Enabled")
    v1 = walrus.put_object("ver", "k", b"one").version_id
    v2 = walrus.put_object("ver", "k", b"two").version_id
    assert v1 != v2
    assert walrus.get_object("ver", "k") == b"two"
    assert walrus.get_object("ver", "k", v1) == b"one"
    marker = walrus.delete_object("ver", "k")
    assert marker.delete_marker
    with pytest.raises(S3Error) as error:
        walrus.head_object("ver", "k")
    assert error.value.delete_marker == marker.version_id
    versions = walrus.list_versions("ver").objects
    assert [(v.version_id, v.is_latest, v.delete_marker) for v in versions] == [
        (marker.version_id, True, True),
        (v2, False, False),
        (v1, False, False),
    ]
    walrus.delete_object("ver", "k", marker.version_id)
    assert walrus.get_object("ver", "k") == b"two"
    with pytest.raises(S3Error) as error:
        walrus.delete_bucket("ver")
    assert error.value.code == "BucketNotEmpty"


def test_multipart_concatenates_parts(walrus: Walrus) -> None:
    walrus.ensure_bucket("mpu", ALICE)
    upload = walrus.create_upload("mpu", "big", owner=ALICE, acl=acls.private(ALICE))
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
    requested = upload_parts(walrus, upload.upload_id, parts)
    with pytest.raises(S3Error) as error:
        walrus.complete_upload("mpu", "big", upload.upload_id, requested[::-1])
    assert error.value.code == "InvalidPartOrder"
    info = walrus.complete_upload("mpu", "big", upload.upload_id, requested)
    assert info.etag == multipart_etag([part.etag for part in requested])
    whole = b"".join(parts)
    assert walrus.get_object("mpu", "big") == whole
    assert len(blobs_on_disk(walrus)) == 2  # the parts became the object's segments
    with walrus.open_object("mpu", "big") as reader:
        edge = 5 * 1024 * 1024
        assert b"".join(reader.chunks(edge - 10, edge + 10)) == whole[edge - 10 : edge + 10]
    with walrus.open_object("mpu", "big") as reader:
        walrus.delete_object("mpu", "big")
        walrus.blobs.drain()
        # The segment a reader holds outlives the delete; one it had not reached is gone.
        assert reader.read(edge) == whole[:edge]
        with pytest.raises(S3Error) as error:
            reader.read()
        assert error.value.code == "InternalError"
    assert blobs_on_disk(walrus) == []


def test_a_multipart_reader_holds_one_file_at_a_time(walrus: Walrus) -> None:
    walrus.ensure_bucket("mpf", ALICE)
    upload = walrus.create_upload("mpf", "many", owner=ALICE, acl=acls.private(ALICE))
    parts = [os.urandom(5 * 1024 * 1024) for _ in range(4)] + [b"end"]
    walrus.complete_upload(
        "mpf", "many", upload.upload_id, upload_parts(walrus, upload.upload_id, parts)
    )

    def open_files() -> int:
        return sum(1 for fd in os.listdir("/proc/self/fd") if _is_blob(walrus, fd))

    before = open_files()
    with walrus.open_object("mpf", "many") as reader:
        assert open_files() == before + 1
        for blob, offset, length in reader.spans():
            assert blob.pread(3, offset + length - 3)
            assert open_files() == before + 1
        assert reader.read() == b"".join(parts)
    assert open_files() == before


def _is_blob(walrus: Walrus, fd: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith(str(walrus.blobs.root))
    except OSError:
        return False


def test_object_path_joins_a_multipart_object(walrus: Walrus) -> None:
    walrus.ensure_bucket("mpj", ALICE)
    upload = walrus.create_upload("mpj", "img", owner=ALICE, acl=acls.private(ALICE))
    parts = [os.urandom(5 * 1024 * 1024), b"tail"]
    walrus.complete_upload(
        "mpj", "img", upload.upload_id, upload_parts(walrus, upload.upload_id, parts)
    )
    path = walrus.object_path("mpj", "img")
    assert path.read_bytes() == b"".join(parts)
    assert len(blobs_on_disk(walrus)) == 1
    assert walrus.head_object("mpj", "img").segments == ()
    walrus.copy_object(
        walrus.head_object("mpj", "img"), "mpj", "copy", owner=ALICE, acl=acls.private(ALICE)
    )
    assert walrus.get_object("mpj", "copy") == b"".join(parts)


def test_access_checks_follow_acls(walrus: Walrus) -> None:
    walrus.ensure_bucket("bundles", ALICE)
    walrus.put_object(
        "bundles",
        "img.manifest.xml",
        b"<m/>",
        acl=acls.canned("aws-exec-read", ALICE, bucket=False),
    )
    walrus.put_object("bundles", "private", b"p")
    assert walrus.may_read(ALICE, "bundles", "img.manifest.xml")
    assert walrus.may_read(CLOUD, "bundles", "img.manifest.xml")
    assert not walrus.may_read(BOB, "bundles", "img.manifest.xml")
    assert not walrus.may_read(CLOUD, "bundles", "private")
    assert not walrus.may_read("", "bundles", "private")
    assert not walrus.may_read(ALICE, "bundles", "missing")


def test_sweep_removes_leftovers_only(walrus: Walrus) -> None:
    walrus.ensure_bucket("swp", ALICE)
    walrus.put_object("swp", "kept", b"kept")
    half = walrus.writer()
    half.write(b"torn")  # a crash mid-PUT: a temporary file
    orphan = walrus.writer()
    orphan.write(b"orphan")
    orphan.commit()  # a crash between rename and commit: an unreferenced blob
    assert walrus.sweep() == (1, 1)
    assert walrus.get_object("swp", "kept") == b"kept"
    assert len(blobs_on_disk(walrus)) == 1
    assert list(walrus.blobs.tmp.iterdir()) == []


def test_small_objects_live_in_their_row_until_a_file_is_asked_for(walrus: Walrus) -> None:
    walrus.ensure_bucket("small", ALICE)
    data = os.urandom(3000)
    etag = hashlib.md5(data).hexdigest()
    common = dict(owner=ALICE, acl=acls.private(ALICE))
    info = walrus.commit_object_later("small", "k", None, data=data, etag=etag, **common).result()
    assert (info.size, info.etag, info.blob) == (len(data), etag, None)
    assert blobs_on_disk(walrus) == []
    with walrus.open_object("small", "k") as reader:
        assert reader.read() == data
        assert b"".join(reader.chunks(10, 20)) == data[10:20]
    copied = walrus.copy_object(walrus.head_object("small", "k"), "small", "copy", **common)
    assert (copied.data, copied.blob) == (data, None)
    path = walrus.object_path("small", "k")  # zero-copy consumers get a file after all
    assert path.read_bytes() == data
    assert walrus.head_object("small", "k").data is None
    assert walrus.get_object("small", "k") == data
    walrus.delete_object("small", "k")
    walrus.delete_object("small", "copy")
    assert blobs_on_disk(walrus) == []


def test_a_failing_write_fails_alone_in_its_group_commit(walrus: Walrus) -> None:
    walrus.ensure_bucket("group", ALICE)
    common = dict(owner=ALICE, acl=acls.private(ALICE), etag="0" * 32)
    writes = [
        walrus.commit_object_later("group" if i != 7 else "nobucket", f"k{i}", None,
                                   data=b"x" * i, **common)
        for i in range(20)
    ]  # fmt: skip
    outcomes = [w.exception() for w in writes]
    assert [i for i, error in enumerate(outcomes) if error is not None] == [7]
    assert isinstance(outcomes[7], S3Error) and outcomes[7].code == "NoSuchBucket"
    listed = walrus.list_objects("group").objects
    assert sorted(o.key for o in listed) == sorted(f"k{i}" for i in range(20) if i != 7)


def test_processes_sharing_a_store_keep_versions_and_readers_whole(tmp_path: Path) -> None:
    """Two Walrus instances over one database and data dir stand for two S3 processes:
    concurrent writes to one key leave exactly one latest version, and a reader in one
    keeps the segment of a multipart object it holds when the other deletes it."""
    url, root = f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "walrus"
    first, second = Walrus(Database(url), root), Walrus(Database(url, run_migrations=False), root)
    first.ensure_bucket("shared", ALICE)
    assert first.get_bucket("shared").versioning == ""
    second.update_bucket("shared", versioning="Enabled")
    assert first.get_bucket("shared").versioning == "Enabled"  # no stale bucket cache
    with ThreadPoolExecutor(8) as pool:
        stores = [first, second] * 20
        list(pool.map(lambda i: stores[i].put_object("shared", "k", b"%d" % i), range(40)))
    versions = first.list_versions("shared").objects
    assert len(versions) == 40
    assert sum(v.is_latest for v in versions) == 1

    upload = first.create_upload("shared", "big", owner=ALICE, acl=acls.private(ALICE))
    parts = [os.urandom(5 * 1024 * 1024), b"tail"]
    requested = upload_parts(first, upload.upload_id, parts)
    version = first.complete_upload("shared", "big", upload.upload_id, requested).version_id
    with first.open_object("shared", "big") as reader:
        second.delete_object("shared", "big", version)
        second.blobs.drain()
        assert reader.read(len(parts[0])) == parts[0]  # the segment it holds


def test_complete_fails_whole_if_a_part_changes_meanwhile(walrus: Walrus, monkeypatch) -> None:
    walrus.ensure_bucket("race", ALICE)
    upload = walrus.create_upload("race", "k", owner=ALICE, acl=acls.private(ALICE))
    requested = upload_parts(walrus, upload.upload_id, [os.urandom(5 * 1024 * 1024), b"tail"])
    commit = walrus.objects.commit_object

    def part_uploaded_again_first(*args, **kwargs):
        commit_part(walrus, upload.upload_id, 2, b"another tail")
        return commit(*args, **kwargs)

    monkeypatch.setattr(walrus.objects, "commit_object", part_uploaded_again_first)
    with pytest.raises(S3Error) as error:
        walrus.complete_upload("race", "k", upload.upload_id, requested)
    assert error.value.code == "InvalidPart"
    assert walrus.list_parts(upload.upload_id)[0][1].size == len(b"another tail")


def test_abort_of_an_upload_completed_meanwhile_is_no_such_upload(
    walrus: Walrus, monkeypatch
) -> None:
    walrus.ensure_bucket("race", ALICE)
    upload = walrus.create_upload("race", "k", owner=ALICE, acl=acls.private(ALICE))
    parts = [os.urandom(5 * 1024 * 1024), b"tail"]
    requested = upload_parts(walrus, upload.upload_id, parts)
    lookup = walrus.uploads.get_upload

    def completed_after_the_lookup(*args):
        found = lookup(*args)
        monkeypatch.setattr(walrus.uploads, "get_upload", lookup)
        walrus.complete_upload("race", "k", upload.upload_id, requested)
        return found

    monkeypatch.setattr(walrus.uploads, "get_upload", completed_after_the_lookup)
    with pytest.raises(S3Error) as error:
        walrus.abort_upload("race", "k", upload.upload_id)
    assert error.value.code == "NoSuchUpload"
    assert walrus.get_object("race", "k") == b"".join(parts)


def test_bucket_configurations_are_kept_one_by_one(walrus: Walrus) -> None:
    walrus.ensure_bucket("conf", ALICE)
    assert walrus.get_bucket("conf").config("policy") is None
    walrus.configure_bucket("conf", "policy", {"Statement": []})
    walrus.configure_bucket("conf", "cors", [{"AllowedOrigins": ["*"]}])
    walrus.configure_bucket("conf", "policy", None)
    bucket = walrus.get_bucket("conf")
    assert bucket.configs == {"cors": [{"AllowedOrigins": ["*"]}]}
    with pytest.raises(S3Error) as missing:
        walrus.configure_bucket("nowhere", "cors", [])
    assert missing.value.code == "NoSuchBucket"
