"""Bucket lifecycle rules through boto3 and the AWS CLI against a real `karri up`: the
configuration calls and their errors, and the rules applied by a pass of the lifecycle
job whose clock the test drives (`karri lifecycle run --days N`)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Creds, Karri
from tests.integration.s3_helpers import code, http, signed, unique


@pytest.fixture(scope="module")
def s3(karri: Karri):
    return karri.client("s3")


@pytest.fixture
def bucket(s3) -> str:
    name = unique("life")
    s3.create_bucket(Bucket=name)
    return name


def run_pass(karri: Karri, days: float) -> dict[str, Any]:
    """One pass of the lifecycle job as of ``days`` from now."""
    return json.loads(karri.cli("lifecycle", "run", "--days", str(days)).stdout)


def keys(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def versions(s3, bucket: str) -> list[tuple[str, bool, bool]]:
    """(version id, is latest, is a delete marker), newest first."""
    listed = s3.list_object_versions(Bucket=bucket)
    entries = [
        (v["VersionId"], v["IsLatest"], False, v["LastModified"])
        for v in listed.get("Versions", [])
    ]
    entries += [
        (m["VersionId"], m["IsLatest"], True, m["LastModified"])
        for m in listed.get("DeleteMarkers", [])
    ]
    entries.sort(key=lambda e: (e[3], e[1]), reverse=True)
    return [e[:3] for e in entries]


RULES = [
    {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 30}},
    {
        "ID": "tagged-and-sized",
        "Filter": {
            "And": {
                "Prefix": "data/",
                "Tags": [{"Key": "class", "Value": "tmp"}, {"Key": "team", "Value": "a"}],
                "ObjectSizeGreaterThan": 10,
                "ObjectSizeLessThan": 1000,
            }
        },
        "Status": "Disabled",
        "Expiration": {"Date": "2031-01-01T00:00:00Z"},
    },
    {"ID": "tag", "Filter": {"Tag": {"Key": "k", "Value": "v"}}, "Status": "Enabled",
     "Expiration": {"Days": 5}},
    {"ID": "big", "Filter": {"ObjectSizeGreaterThan": 1048576}, "Status": "Enabled",
     "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}], "Expiration": {"Days": 60}},
    {"ID": "noncurrent", "Filter": {"Prefix": "old/"}, "Status": "Enabled",
     "NoncurrentVersionExpiration": {"NoncurrentDays": 7, "NewerNoncurrentVersions": 3},
     "NoncurrentVersionTransitions": [{"NoncurrentDays": 30, "StorageClass": "GLACIER_IR"}]},
    {"ID": "everything", "Filter": {}, "Status": "Enabled",
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
     "Expiration": {"ExpiredObjectDeleteMarker": True}},
]  # fmt: skip


def test_configuration_round_trip(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as error:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code(error) == ("NoSuchLifecycleConfiguration", 404)
    put = s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": RULES},
        TransitionDefaultMinimumObjectSize="varies_by_storage_class",
    )
    assert put["TransitionDefaultMinimumObjectSize"] == "varies_by_storage_class"
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert got["TransitionDefaultMinimumObjectSize"] == "varies_by_storage_class"
    rules = {rule["ID"]: rule for rule in got["Rules"]}
    assert set(rules) == {r["ID"] for r in RULES}
    for sent in RULES:
        back = rules[sent["ID"]]
        for field in sent:
            if field == "Expiration" and "Date" in sent[field]:
                assert back[field]["Date"].isoformat().startswith("2031-01-01T00:00:00")
            else:
                assert back[field] == sent[field], field
    # Before Lifecycle V2: rules with their own Prefix, shown back as they came.
    legacy = [
        {"ID": "a", "Prefix": "a/", "Status": "Enabled", "Expiration": {"Days": 3}},
        {"ID": "b", "Prefix": "b/", "Status": "Enabled", "Expiration": {"Days": 4}},
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": legacy})
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == legacy
    # A rule without an ID gets one; a new configuration replaces the old one whole.
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [{"Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 1}}]
        },
    )
    (only,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert only["ID"] and only["Expiration"] == {"Days": 1}
    s3.delete_bucket_lifecycle(Bucket=bucket)
    s3.delete_bucket_lifecycle(Bucket=bucket)  # deleting none is fine too
    with pytest.raises(ClientError) as error:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code(error) == ("NoSuchLifecycleConfiguration", 404)


def _rule(**fields: Any) -> dict[str, Any]:
    rule = {"ID": "r", "Filter": {"Prefix": "p/"}, "Status": "Enabled", "Expiration": {"Days": 1}}
    rule.update(fields)
    return {k: v for k, v in rule.items() if v is not None}


BAD = [
    ([_rule(Status="On")], "MalformedXML"),
    ([_rule(Filter=None)], "MalformedXML"),  # neither Filter nor Prefix
    ([_rule(Prefix="p/")], "InvalidRequest"),  # both: a Prefix in Lifecycle V2
    ([_rule(Filter=None, Prefix="a"), _rule(ID="b")], "InvalidRequest"),  # a Filter in V1
    (  # V1 rules whose prefixes overlap, for one kind of action
        [_rule(Filter=None, Prefix="a"), _rule(ID="b", Filter=None, Prefix="ab")],
        "InvalidRequest",
    ),
    (
        [
            _rule(
                Filter=None,
                Prefix="a",
                Expiration=None,
                NoncurrentVersionExpiration={"NoncurrentDays": 1, "NewerNoncurrentVersions": 2},
            )
        ],
        "InvalidRequest",  # NewerNoncurrentVersions in V1
    ),
    ([_rule(Filter={"Prefix": "a", "Tag": {"Key": "k", "Value": "v"}})], "MalformedXML"),
    ([_rule(Filter={"And": {"Prefix": "a"}})], "MalformedXML"),  # And of one predicate
    ([_rule(Expiration={"Days": 0})], "InvalidArgument"),
    ([_rule(Expiration={"Days": 1, "ExpiredObjectDeleteMarker": True})], "MalformedXML"),
    ([_rule(Expiration={})], "MalformedXML"),
    ([_rule(Expiration={"Date": "2030-01-01T12:00:00Z"})], "InvalidArgument"),
    ([_rule(Expiration=None)], "InvalidRequest"),  # no action at all
    ([_rule(), _rule()], "InvalidArgument"),  # the same ID twice
    ([_rule(ID="x" * 256)], "InvalidArgument"),
    ([_rule(NoncurrentVersionExpiration={"NoncurrentDays": 0})], "InvalidArgument"),
    (
        [_rule(NoncurrentVersionExpiration={"NoncurrentDays": 1, "NewerNoncurrentVersions": 0})],
        "InvalidArgument",
    ),
    ([_rule(AbortIncompleteMultipartUpload={"DaysAfterInitiation": 0})], "InvalidArgument"),
    (
        [
            _rule(
                Filter={"Tag": {"Key": "k", "Value": "v"}},
                AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1},
            )
        ],
        "InvalidRequest",
    ),
    (
        [
            _rule(
                Filter={"Tag": {"Key": "k", "Value": "v"}},
                Expiration={"ExpiredObjectDeleteMarker": True},
            )
        ],
        "InvalidRequest",
    ),
    ([_rule(Transitions=[{"Days": 30, "StorageClass": "GLACIER"}])], "InvalidStorageClass"),
    ([_rule(Transitions=[{"Days": 30, "StorageClass": "STANDARD"}])], "MalformedXML"),
    ([_rule(Transitions=[{"Days": 1, "StorageClass": "STANDARD_IA"}])], "InvalidArgument"),
    (
        [_rule(Expiration={"Days": 40}, Transitions=[{"Days": 50, "StorageClass": "GLACIER_IR"}])],
        "InvalidArgument",
    ),
    (
        [_rule(Filter={"ObjectSizeGreaterThan": 100, "ObjectSizeLessThan": 50})],
        "MalformedXML",  # two members of Filter
    ),
    (
        [_rule(Filter={"And": {"ObjectSizeGreaterThan": 100, "ObjectSizeLessThan": 50}})],
        "InvalidRequest",
    ),
    (
        [_rule(Filter={"ObjectSizeLessThan": 5}, Expiration={"ExpiredObjectDeleteMarker": True})],
        "InvalidRequest",
    ),
    (
        [
            _rule(
                Filter={"ObjectSizeGreaterThan": 5},
                Expiration=None,
                AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1},
            )
        ],
        "InvalidRequest",
    ),
    ([_rule(ID=str(n)) for n in range(1001)], "InvalidRequest"),
]


@pytest.mark.parametrize(("rules", "expected"), BAD, ids=[str(n) for n in range(len(BAD))])
def test_refused_configurations(s3, bucket: str, rules: list, expected: str) -> None:
    with pytest.raises(ClientError) as error:
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": rules}
        )
    assert code(error) == (expected, 400)
    with pytest.raises(ClientError) as error:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert code(error) == ("NoSuchLifecycleConfiguration", 404)


def test_malformed_documents_and_missing_md5(karri: Karri, bucket: str) -> None:
    url = f"{karri.s3_url}/{bucket}?lifecycle"
    good = (
        b"<LifecycleConfiguration><Rule><ID>a</ID><Filter/><Status>Enabled</Status>"
        b"<Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>"
    )
    md5 = base64.b64encode(hashlib.md5(good).digest()).decode()
    headers, _ = signed(karri.admin, "PUT", url, good)
    status, _, body = http("PUT", url, good, headers)
    assert (status, b"<Code>InvalidRequest</Code>" in body) == (400, True)  # no Content-MD5
    for document, expected in (
        (b"", b"MalformedXML"),
        (b"<nope/>", b"MalformedXML"),
        (b"<LifecycleConfiguration>", b"MalformedXML"),
        (b"<LifecycleConfiguration/>", b"InvalidRequest"),  # no rule
    ):
        digest = base64.b64encode(hashlib.md5(document).digest()).decode()
        headers, _ = signed(karri.admin, "PUT", url, document, {"Content-MD5": digest})
        status, _, body = http("PUT", url, document, headers)
        assert status == 400 and b"<Code>%s</Code>" % expected in body, (document, body)
    headers, _ = signed(karri.admin, "PUT", url, good, {"Content-MD5": md5})
    assert http("PUT", url, good, headers)[0] == 200


def test_other_accounts_can_neither_read_nor_write(
    karri: Karri, s3, bucket: str, other_account: Creds
) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [_rule()]}
    )
    other = karri.client("s3", other_account)
    for call in (
        lambda: other.get_bucket_lifecycle_configuration(Bucket=bucket),
        lambda: other.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [_rule(ID="mine")]}
        ),
        lambda: other.delete_bucket_lifecycle(Bucket=bucket),
    ):
        with pytest.raises(ClientError) as error:
            call()
        assert code(error) == ("AccessDenied", 403)
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]["ID"] == "r"
    with pytest.raises(ClientError) as error:
        s3.get_bucket_lifecycle_configuration(Bucket=unique("missing"))
    assert code(error) == ("NoSuchBucket", 404)


def test_expiration_by_prefix_in_an_unversioned_bucket(karri: Karri, s3, bucket: str) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
                 "Expiration": {"Days": 2}},
                {"ID": "off", "Filter": {"Prefix": "other/"}, "Status": "Disabled",
                 "Expiration": {"Days": 1}},
            ]
        },
    )  # fmt: skip
    put = s3.put_object(Bucket=bucket, Key="logs/a", Body=b"log")
    s3.put_object(Bucket=bucket, Key="other/b", Body=b"kept")
    assert 'rule-id="logs"' in put["Expiration"]
    head = s3.head_object(Bucket=bucket, Key="logs/a")
    assert head["Expiration"] == put["Expiration"]
    assert "00:00:00 GMT" in head["Expiration"]
    assert s3.get_object(Bucket=bucket, Key="logs/a")["Expiration"] == put["Expiration"]
    assert "Expiration" not in s3.head_object(Bucket=bucket, Key="other/b")
    copied = s3.copy_object(Bucket=bucket, Key="logs/copy", CopySource=f"{bucket}/other/b")
    assert 'rule-id="logs"' in copied["Expiration"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="logs/multi")["UploadId"]
    etag = s3.upload_part(
        Bucket=bucket, Key="logs/multi", UploadId=upload, PartNumber=1, Body=b"p"
    )["ETag"]
    completed = s3.complete_multipart_upload(
        Bucket=bucket, Key="logs/multi", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )  # fmt: skip
    assert 'rule-id="logs"' in completed["Expiration"]
    s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "logs/copy"}, {"Key": "logs/multi"}]}
    )
    assert run_pass(karri, 1)["current"] == 0
    assert keys(s3, bucket) == ["logs/a", "other/b"]
    done = run_pass(karri, 3)
    assert done["current"] >= 1
    assert keys(s3, bucket) == ["other/b"]
    assert "Versions" not in s3.list_object_versions(Bucket=bucket, Prefix="logs/")


def test_expiration_by_tags_and_size(karri: Karri, s3, bucket: str) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {"ID": "tagged", "Status": "Enabled", "Expiration": {"Days": 1},
                 "Filter": {"And": {"Prefix": "t/", "Tags": [{"Key": "ttl", "Value": "short"}]}}},
                {"ID": "small", "Status": "Enabled", "Expiration": {"Days": 1},
                 "Filter": {"And": {"Prefix": "s/", "ObjectSizeLessThan": 10}}},
                {"ID": "large", "Status": "Enabled", "Expiration": {"Days": 1},
                 "Filter": {"ObjectSizeGreaterThan": 100}},
            ]
        },
    )  # fmt: skip
    s3.put_object(Bucket=bucket, Key="t/yes", Body=b"x", Tagging="ttl=short")
    s3.put_object(Bucket=bucket, Key="t/no", Body=b"x", Tagging="ttl=long")
    s3.put_object(Bucket=bucket, Key="s/small", Body=b"x")
    s3.put_object(Bucket=bucket, Key="s/medium", Body=b"x" * 50)
    s3.put_object(Bucket=bucket, Key="u/large", Body=b"x" * 200)
    assert "Expiration" not in s3.head_object(Bucket=bucket, Key="t/no")
    assert 'rule-id="small"' in s3.head_object(Bucket=bucket, Key="s/small")["Expiration"]
    run_pass(karri, 3)
    assert keys(s3, bucket) == ["s/medium", "t/no"]


def test_versioned_bucket_current_and_noncurrent(karri: Karri, s3, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {"ID": "current", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 1}},
                {"ID": "old", "Filter": {}, "Status": "Enabled",
                 "NoncurrentVersionExpiration": {"NoncurrentDays": 1,
                                                 "NewerNoncurrentVersions": 1}},
            ]
        },
    )  # fmt: skip
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=b"v%d" % n)["VersionId"] for n in range(3)]
    # v2 expires (a delete marker on top); v1 is the newest noncurrent one, kept; v0 goes.
    run_pass(karri, 3)
    listed = versions(s3, bucket)
    assert listed[0][1:] == (True, True)  # a delete marker is the latest
    assert [v[0] for v in listed[1:]] == [ids[2], ids[1]]
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="k")
    assert code(error) == ("NoSuchKey", 404)
    # Next pass: v2 is now the newest noncurrent version and v1 goes.
    run_pass(karri, 3)
    assert [v[0] for v in versions(s3, bucket)[1:]] == [ids[2]]


def test_expired_delete_markers_are_removed(karri: Karri, s3, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {"ID": "noncurrent", "Filter": {}, "Status": "Enabled",
                 "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
                {"ID": "markers", "Filter": {}, "Status": "Enabled",
                 "Expiration": {"ExpiredObjectDeleteMarker": True}},
            ]
        },
    )  # fmt: skip
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="gone")
    s3.put_object(Bucket=bucket, Key="live", Body=b"x")
    assert len(versions(s3, bucket)) == 3
    run_pass(karri, 0)  # nothing noncurrent long enough yet; the marker still hides a version
    assert len(versions(s3, bucket)) == 3
    run_pass(karri, 3)  # the noncurrent version goes: the marker is left alone...
    run_pass(karri, 3)  # ...and then goes too
    listed = s3.list_object_versions(Bucket=bucket)
    assert [v["Key"] for v in listed.get("Versions", [])] == ["live"]
    assert "DeleteMarkers" not in listed


def test_incomplete_uploads_are_aborted(karri: Karri, s3, bucket: str) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {"ID": "abort", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled",
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}
            ]
        },
    )  # fmt: skip
    created = s3.create_multipart_upload(Bucket=bucket, Key="tmp/x")
    doomed = created["UploadId"]
    assert created["AbortRuleId"] == "abort"
    assert created["AbortDate"].hour == 0 and created["AbortDate"].minute == 0
    s3.upload_part(Bucket=bucket, Key="tmp/x", UploadId=doomed, PartNumber=1, Body=b"part")
    other = s3.create_multipart_upload(Bucket=bucket, Key="keep/y")
    assert "AbortRuleId" not in other
    kept = other["UploadId"]
    run_pass(karri, 1)
    assert len(s3.list_multipart_uploads(Bucket=bucket)["Uploads"]) == 2
    assert run_pass(karri, 3)["aborted"] >= 1
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [kept]
    with pytest.raises(ClientError) as error:
        s3.list_parts(Bucket=bucket, Key="tmp/x", UploadId=doomed)
    assert code(error) == ("NoSuchUpload", 404)


def test_aws_cli(karri: Karri, bucket: str, tmp_path) -> None:
    document = tmp_path / "lifecycle.json"
    document.write_text(json.dumps({"Rules": [_rule(ID="cli")]}))
    karri.aws(
        "s3api", "put-bucket-lifecycle-configuration", "--bucket", bucket,
        "--lifecycle-configuration", f"file://{document}",
    )  # fmt: skip
    got = karri.aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket)
    assert got["Rules"][0]["ID"] == "cli"
    karri.aws("s3api", "delete-bucket-lifecycle", "--bucket", bucket)
    result = karri.aws(
        "s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket, check=False
    )
    assert result.returncode != 0 and "NoSuchLifecycleConfiguration" in result.stderr
