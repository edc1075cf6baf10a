"""S3 behaviours stock clients rely on and hardening (issue 18's fixes): object checksums
claimed on CompleteMultipartUpload, retried completions, POST policies, ListBuckets paging,
stalled readers, system bucket names, SigV4 credential scopes (S3's and EC2's), ..."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import socket
import zlib
from pathlib import Path

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import Karri
from tests.integration.iam import policy as iam_policy
from tests.integration.iam import user_creds
from tests.integration.s3_helpers import error_code as code
from tests.integration.s3_helpers import http, signed, unique
from tests.integration.test_s3_access import _multipart, _post_policy_v4

MiB = 1024 * 1024
PART1 = b"a" * (5 * MiB)
PART2 = b"tail of the object"


@pytest.fixture(scope="module")
def s3(karri: Karri):
    return karri.client("s3")


@pytest.fixture
def bucket(s3) -> str:
    name = unique()
    s3.create_bucket(Bucket=name)
    return name


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc32(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def two_part_upload(s3, bucket: str, key: str, algorithm: str, kind: str) -> tuple[str, list]:
    upload = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm, ChecksumType=kind
    )["UploadId"]
    parts = []
    for number, data in ((1, PART1), (2, PART2)):
        answer = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm=algorithm,
        )
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        part[f"Checksum{algorithm}"] = answer[f"Checksum{algorithm}"]
        parts.append(part)
    return upload, parts


def test_complete_with_full_object_crc_is_checked_against_the_object(s3, bucket: str) -> None:
    upload, parts = two_part_upload(s3, bucket, "full", "CRC32", "FULL_OBJECT")
    complete = dict(Bucket=bucket, Key="full", UploadId=upload, MultipartUpload={"Parts": parts})
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(**complete, ChecksumCRC32=crc32(b"other bytes"))
    assert code(error) == ("BadDigest", 400)
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(
            **complete, ChecksumCRC32=crc32(PART1 + PART2), ChecksumType="COMPOSITE"
        )
    assert code(error) == ("BadDigest", 400)
    done = s3.complete_multipart_upload(
        **complete, ChecksumCRC32=crc32(PART1 + PART2), ChecksumType="FULL_OBJECT"
    )
    assert done["ChecksumCRC32"] == crc32(PART1 + PART2)
    assert done["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key="full", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc32(PART1 + PART2)


def test_complete_with_composite_checksum_is_checked_against_the_parts(s3, bucket: str) -> None:
    upload, parts = two_part_upload(s3, bucket, "comp", "SHA256", "COMPOSITE")
    digests = b"".join(hashlib.sha256(data).digest() for data in (PART1, PART2))
    composite = f"{b64(hashlib.sha256(digests).digest())}-2"
    complete = dict(Bucket=bucket, Key="comp", UploadId=upload, MultipartUpload={"Parts": parts})
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(**complete, ChecksumSHA256=b64(hashlib.sha256().digest()))
    assert code(error) == ("BadDigest", 400)
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(**complete, ChecksumCRC32=crc32(PART1 + PART2))
    assert code(error) == ("InvalidRequest", 400)
    done = s3.complete_multipart_upload(
        **complete, ChecksumSHA256=composite, ChecksumType="COMPOSITE"
    )
    assert done["ChecksumSHA256"] == composite
    assert done["ChecksumType"] == "COMPOSITE"


def test_a_repeated_complete_answers_as_the_first(s3, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    upload, parts = two_part_upload(s3, bucket, "again", "CRC32", "FULL_OBJECT")
    complete = dict(Bucket=bucket, Key="again", UploadId=upload, MultipartUpload={"Parts": parts})
    first = s3.complete_multipart_upload(**complete)
    second = s3.complete_multipart_upload(**complete)
    for field in ("ETag", "VersionId", "ChecksumCRC32", "ChecksumType", "Key", "Bucket"):
        assert second[field] == first[field]
    s3.put_object(Bucket=bucket, Key="again", Body=b"newer")
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(**complete)
    assert code(error) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(**complete | {"UploadId": "never-made"})
    assert code(error) == ("NoSuchUpload", 404)


def _post(karri: Karri, bucket: str, form: dict, data: bytes, filename: str = "f.txt"):
    body, content_type = _multipart(form, filename, data)
    return http("POST", f"{karri.s3_url}/{bucket}", body, {"Content-Type": content_type})


def _error(answer: bytes) -> str:
    return answer.split(b"<Code>")[1].split(b"</Code>")[0].decode()


def test_post_policy_checks(karri: Karri, s3, bucket: str) -> None:
    form = _post_policy_v4(karri, bucket, "${filename}", [{"key": "named.txt"}])
    assert _post(karri, bucket, form, b"by name", "named.txt")[0] == 204
    assert s3.get_object(Bucket=bucket, Key="named.txt")["Body"].read() == b"by name"

    unsigned = {k: v for k, v in form.items() if k != "x-amz-signature"}
    status, _h, answer = _post(karri, bucket, unsigned, b"x", "named.txt")
    assert (status, _error(answer)) == (400, "InvalidArgument")
    nopolicy = {k: v for k, v in form.items() if k != "policy"}
    status, _h, answer = _post(karri, bucket, nopolicy, b"x", "named.txt")
    assert (status, _error(answer)) == (400, "InvalidArgument")
    garbled = dict(form, policy="not base64 json!")
    status, _h, answer = _post(karri, bucket, garbled, b"x", "named.txt")
    assert (status, _error(answer)) == (400, "InvalidPolicyDocument")

    def with_policy(policy: dict) -> dict:
        return _resigned(karri, form, policy)

    expiration = "2100-01-01T00:00:00.000Z"
    for policy in (
        {"expiration": expiration},
        {"conditions": [{"bucket": bucket}]},
        {"expiration": expiration, "CONDITIONS": [{"bucket": bucket}]},
        {"expiration": expiration, "conditions": [{"bucket": bucket}, {}]},
        {"expiration": expiration, "conditions": [["content-length-range", -1, 10]]},
        {"expiration": expiration, "conditions": [["content-length-range", 10]]},
        {"expiration": "tomorrow", "conditions": [{"bucket": bucket}]},
    ):
        status, _h, answer = _post(karri, bucket, with_policy(policy), b"x", "named.txt")
        assert (status, _error(answer)) == (400, "InvalidPolicyDocument"), policy
    no_bucket = {"expiration": expiration, "conditions": [["starts-with", "$key", ""]]}
    status, _h, answer = _post(karri, bucket, with_policy(no_bucket), b"x", "named.txt")
    assert (status, _error(answer)) == (403, "AccessDenied")


def _resigned(karri: Karri, form: dict, policy: dict) -> dict:
    """``form`` with ``policy`` (every form field allowed by a starts-with), signed."""
    if "conditions" in policy:
        names = [n for n in form if n not in ("policy", "x-amz-signature")]
        policy = dict(policy)
        policy["conditions"] = [
            *policy["conditions"],
            *(["starts-with", f"${n}", ""] for n in names),
        ]
    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    date = form["x-amz-credential"].split("/")[1]
    key = ("AWS4" + karri.admin.secret_access_key).encode()
    for part in (date, karri.region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), "sha256").digest()
    signature = hmac.new(key, encoded.encode(), "sha256").hexdigest()
    return dict(form, policy=encoded, **{"x-amz-signature": signature})


TAGGING = "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"


def test_post_checksum_and_tagging_fields(karri: Karri, s3, bucket: str) -> None:
    data = b"checked upload"
    good = {"x-amz-checksum-sha256": b64(hashlib.sha256(data).digest()), "tagging": TAGGING}
    conditions = [["starts-with", f"${name}", ""] for name in [*good, "key"]]
    form = _post_policy_v4(karri, bucket, "sum", conditions, good)
    assert _post(karri, bucket, form, data)[0] == 204
    head = s3.head_object(Bucket=bucket, Key="sum", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == good["x-amz-checksum-sha256"]
    assert s3.get_object_tagging(Bucket=bucket, Key="sum")["TagSet"] == [{"Key": "k", "Value": "v"}]
    status, _h, answer = _post(karri, bucket, form, b"other bytes")
    assert (status, _error(answer)) == (400, "BadDigest")
    bad = _post_policy_v4(karri, bucket, "bad", conditions, dict(good, tagging="<Tagging>"))
    status, _h, answer = _post(karri, bucket, bad, data)
    assert (status, _error(answer)) == (400, "MalformedXML")


def test_anonymous_post_honours_its_fields(karri: Karri, s3, bucket: str) -> None:
    s3.put_bucket_ownership_controls(  # ACLs on: new buckets have them off, as on AWS
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]}
    )
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    data = b"anonymous"
    form = {
        "key": "anon/${filename}",
        "x-amz-checksum-crc32": crc32(data),
        "tagging": TAGGING,
    }
    assert _post(karri, bucket, form, data, "a.txt")[0] == 204
    head = s3.head_object(Bucket=bucket, Key="anon/a.txt", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc32(data)
    assert s3.get_object_tagging(Bucket=bucket, Key="anon/a.txt")["TagSet"] == [
        {"Key": "k", "Value": "v"}
    ]
    status, _h, answer = _post(karri, bucket, dict(form, key="anon/b"), b"changed")
    assert (status, _error(answer)) == (400, "BadDigest")


def test_list_buckets_pages_by_prefix(karri: Karri, other_account) -> None:
    s3 = karri.client("s3", other_account)
    names = [f"pg-{n}" for n in ("a", "b", "c")] + ["zz-other"]
    names = [unique(name) for name in names]
    for name in names:
        s3.create_bucket(Bucket=name)
    everything = s3.list_buckets()
    assert [b["Name"] for b in everything["Buckets"]] == sorted(names)
    assert "ContinuationToken" not in everything and "Prefix" not in everything
    first = s3.list_buckets(MaxBuckets=2, Prefix="pg-")
    assert [b["Name"] for b in first["Buckets"]] == sorted(names)[:2]
    assert first["Prefix"] == "pg-" and first["ContinuationToken"]
    rest = s3.list_buckets(MaxBuckets=2, Prefix="pg-", ContinuationToken=first["ContinuationToken"])
    assert [b["Name"] for b in rest["Buckets"]] == sorted(names)[2:3]
    assert "ContinuationToken" not in rest
    assert {b["BucketRegion"] for b in everything["Buckets"]} == {karri.region}
    assert s3.head_bucket(Bucket=names[0])["BucketRegion"] == karri.region
    here = s3.list_buckets(BucketRegion=karri.region, MaxBuckets=1)
    assert [b["Name"] for b in here["Buckets"]] == sorted(names)[:1] and here["ContinuationToken"]
    assert s3.list_buckets(BucketRegion="us-west-2")["Buckets"] == []
    paginated = s3.get_paginator("list_buckets").paginate(PaginationConfig={"PageSize": 1})
    assert [b["Name"] for page in paginated for b in page["Buckets"]] == sorted(names)
    for query in ("max-buckets=0", "max-buckets=x", "continuation-token=%25%25"):
        url = f"{karri.s3_url}/?{query}"
        status, _h, answer = http("GET", url, None, signed(other_account, "GET", url)[0])
        assert (status, _error(answer)) == (400, "InvalidArgument"), query


def test_a_key_removed_from_an_unversioned_bucket_is_just_gone(
    karri: Karri, s3, bucket: str
) -> None:
    for key in ("one", "two"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    answer = s3.delete_object(Bucket=bucket, Key="one")
    assert "DeleteMarker" not in answer and "VersionId" not in answer
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "two"}]})["Deleted"]
    assert deleted == [{"Key": "two"}]
    for key in ("one", "two"):
        url = f"{karri.s3_url}/{bucket}/{key}"
        for method in ("HEAD", "GET"):
            status, headers, body = http(method, url, None, signed(karri.admin, method, url)[0])
            assert status == 404
            assert not {"x-amz-delete-marker", "x-amz-version-id"} & {h.lower() for h in headers}
            assert method == "HEAD" or _error(body) == "NoSuchKey"
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)
    assert "DeleteMarkers" not in s3.list_object_versions(Bucket=bucket)


def test_an_iam_user_is_the_initiator_of_its_uploads(karri: Karri, other_account) -> None:
    owner = karri.client("s3", other_account)
    user, _key = user_creds(karri, other_account, "uploader")
    karri.client("iam", other_account).put_user_policy(
        UserName="uploader",
        PolicyName="s3",
        PolicyDocument=iam_policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}),
    )
    name = unique()
    owner.create_bucket(Bucket=name)
    by_user = karri.client("s3", user).create_multipart_upload(Bucket=name, Key="u")["UploadId"]
    by_owner = owner.create_multipart_upload(Bucket=name, Key="o")["UploadId"]
    arn = f"arn:aws:iam::{other_account.account_id}:user/uploader"
    account = {"ID": other_account.account_id, "DisplayName": other_account.account_name}
    uploads = {u["Key"]: u for u in owner.list_multipart_uploads(Bucket=name)["Uploads"]}
    assert uploads["u"]["Initiator"] == {"ID": arn, "DisplayName": "uploader"}
    assert uploads["u"]["Owner"] == account
    assert uploads["o"]["Initiator"] == uploads["o"]["Owner"] == account
    parts = owner.list_parts(Bucket=name, Key="u", UploadId=by_user)
    assert (parts["Initiator"], parts["Owner"]) == ({"ID": arn, "DisplayName": "uploader"}, account)
    parts = owner.list_parts(Bucket=name, Key="o", UploadId=by_owner)
    assert parts["Initiator"] == parts["Owner"] == account


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def _open_blobs(karri: Karri) -> int:
    count = 0
    for pid in _descendants(karri.process.pid):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    count += "/walrus/blobs/" in os.readlink(f"/proc/{pid}/fd/{fd}")
    return count


def test_stalled_readers_of_a_multipart_object_hold_one_file_each(
    karri: Karri, s3, bucket: str
) -> None:
    parts = [bytes([n]) * (5 * MiB) for n in range(7)] + [b"last"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="many")["UploadId"]
    etags = [
        s3.upload_part(Bucket=bucket, Key="many", UploadId=upload, PartNumber=n, Body=data)["ETag"]
        for n, data in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="many",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    before = _open_blobs(karri)
    url = f"{karri.s3_url}/{bucket}/many"
    host, port = url.split("//")[1].split("/")[0].split(":")
    stalled = []
    try:
        for _ in range(4):
            headers = signed(karri.admin, "GET", url)[0]
            conn = socket.create_connection((host, int(port)))
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            conn.sendall(f"GET /{bucket}/many HTTP/1.1\r\n{head}\r\n".encode())
            assert conn.recv(12) == b"HTTP/1.1 200"  # answering: the object is open
            stalled.append(conn)
        assert 0 < _open_blobs(karri) - before <= len(stalled)  # not one per part
        whole = s3.get_object(Bucket=bucket, Key="many")["Body"].read()
        assert whole == b"".join(parts)
    finally:
        for conn in stalled:
            conn.close()


def test_system_bucket_names_are_the_clouds(karri: Karri, other_account) -> None:
    s3 = karri.client("s3", other_account)
    admin_key = karri.admin.access_key_id.lower()
    for name in ("karri-images", "karri-ebs-snapshots", "karri-default-images", "karri-new"):
        with pytest.raises(ClientError) as error:
            s3.create_bucket(Bucket=name)
        assert code(error) == ("BucketAlreadyExists", 409), name
    with pytest.raises(ClientError) as error:
        s3.create_bucket(Bucket=f"karri-bundles-{admin_key}")
    assert code(error) == ("BucketAlreadyExists", 409)
    own = f"karri-bundles-{other_account.access_key_id.lower()}"
    s3.create_bucket(Bucket=own)
    assert own in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as error:  # made at start: there, and not theirs
        s3.head_bucket(Bucket="karri-images")
    assert code(error) == ("403", 403)


def test_sigv4_scope_must_name_this_region_and_s3(karri: Karri, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"scoped")
    url = f"{karri.s3_url}/{bucket}/k"
    status, _h, answer = http("GET", url, None, signed(karri.admin, "GET", url, region="xx")[0])
    assert (status, _error(answer)) == (400, "AuthorizationHeaderMalformed")
    assert b"the region 'xx' is wrong; expecting 'eucalyptus'" in answer
    assert b"<Region>eucalyptus</Region>" in answer
    wrong_service = signed(karri.admin, "GET", url, service="iam")[0]
    status, _h, answer = http("GET", url, None, wrong_service)
    assert (status, _error(answer)) == (400, "AuthorizationHeaderMalformed")
    assert b"incorrect service 'iam'. This endpoint belongs to 's3'." in answer
    elsewhere = boto3.client(
        "s3",
        endpoint_url=karri.s3_url,
        region_name="us-west-2",
        aws_access_key_id=karri.admin.access_key_id,
        aws_secret_access_key=karri.admin.secret_access_key,
        config=Config(retries={"max_attempts": 1}, signature_version="s3v4"),
    )
    presigned = elsewhere.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60
    )
    assert "X-Amz-Credential" in presigned
    status, _h, answer = http("GET", presigned)
    assert (status, _error(answer)) == (400, "AuthorizationQueryParametersError")
    assert b"<Region>eucalyptus</Region>" in answer
    # boto3 signs again for the region the error names, as it does with AWS.
    assert elsewhere.get_object(Bucket=bucket, Key="k")["Body"].read() == b"scoped"
    elsewhere.put_object(Bucket=bucket, Key="k2", Body=b"via redirect")
    assert s3.get_object(Bucket=bucket, Key="k2")["Body"].read() == b"via redirect"


def _ec2_signed(karri: Karri, region: str, service: str):
    body = "Action=DescribeRegions&Version=2016-11-15"
    request = AWSRequest(
        "POST",
        karri.ec2_url + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    creds = Credentials(karri.admin.access_key_id, karri.admin.secret_access_key)
    SigV4Auth(creds, service, region).add_auth(request)
    return http("POST", karri.ec2_url + "/", body.encode(), dict(request.headers.items()))


def test_ec2_sigv4_scope_must_name_this_region_and_ec2(karri: Karri) -> None:
    assert _ec2_signed(karri, karri.region, "ec2")[0] == 200
    status, _h, answer = _ec2_signed(karri, "us-west-2", "ec2")
    assert (status, _error(answer)) == (401, "AuthFailure")
    status, _h, answer = _ec2_signed(karri, karri.region, "s3")
    assert (status, _error(answer)) == (403, "SignatureDoesNotMatch")
    assert b"Credential should be scoped to correct service: 'ec2'." in answer


def test_bucket_settings_karri_cannot_set_read_as_never_set(
    karri: Karri, s3, bucket: str, other_account
) -> None:
    """Logging, notifications, request payment and transfer acceleration (what SDKs and
    Terraform read of every bucket): S3's answers for a bucket where none was set; setting
    them is NotImplemented; they are the owner's to read."""
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=bucket)
    notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert not {"TopicConfigurations", "QueueConfigurations"} & set(notifications)
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"
    assert "Status" not in s3.get_bucket_accelerate_configuration(Bucket=bucket)
    payer = karri.aws("s3api", "get-bucket-request-payment", "--bucket", bucket)
    assert payer == {"Payer": "BucketOwner"}
    with pytest.raises(ClientError) as refused:
        s3.put_bucket_request_payment(
            Bucket=bucket, RequestPaymentConfiguration={"Payer": "Requester"}
        )
    assert code(refused) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as denied:
        karri.client("s3", other_account).get_bucket_logging(Bucket=bucket)
    assert code(denied) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as website:
        s3.get_bucket_website(Bucket=bucket)
    assert code(website) == ("NoSuchWebsiteConfiguration", 404)
