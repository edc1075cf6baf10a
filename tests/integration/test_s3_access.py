"""Who may do what: accounts, anonymous requests, canned ACLs, grants, POST policies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Karri
from tests.integration.s3_helpers import http, signed, unique


@pytest.fixture(scope="module")
def s3(karri: Karri):
    return karri.client("s3")


def denied(call) -> None:
    with pytest.raises(ClientError) as error:
        call()
    assert error.value.response["Error"]["Code"] in ("AccessDenied", "403")
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_other_account_is_denied_everything(karri: Karri, s3, other_account) -> None:
    name = unique("private")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="secret", Body=b"s")
    upload = s3.create_multipart_upload(Bucket=name, Key="mp")["UploadId"]
    other = karri.client("s3", other_account)
    for call in (
        lambda: other.get_object(Bucket=name, Key="secret"),
        lambda: other.head_object(Bucket=name, Key="secret"),
        lambda: other.get_object(Bucket=name, Key="missing"),
        lambda: other.put_object(Bucket=name, Key="mine", Body=b"x"),
        lambda: other.delete_object(Bucket=name, Key="secret"),
        lambda: other.list_objects_v2(Bucket=name),
        lambda: other.list_object_versions(Bucket=name),
        lambda: other.head_bucket(Bucket=name),
        lambda: other.delete_bucket(Bucket=name),
        lambda: other.get_bucket_acl(Bucket=name),
        lambda: other.put_bucket_acl(Bucket=name, ACL="public-read"),
        lambda: other.get_object_acl(Bucket=name, Key="secret"),
        lambda: other.put_object_acl(Bucket=name, Key="secret", ACL="public-read"),
        lambda: other.get_bucket_versioning(Bucket=name),
        lambda: other.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": "Enabled"}
        ),
        lambda: other.get_bucket_tagging(Bucket=name),
        lambda: other.get_object_tagging(Bucket=name, Key="secret"),
        lambda: other.get_bucket_location(Bucket=name),
        lambda: other.create_multipart_upload(Bucket=name, Key="x"),
        lambda: other.list_parts(Bucket=name, Key="mp", UploadId=upload),
        lambda: other.abort_multipart_upload(Bucket=name, Key="mp", UploadId=upload),
        lambda: other.list_multipart_uploads(Bucket=name),
        lambda: other.copy_object(
            Bucket=name, Key="c", CopySource={"Bucket": name, "Key": "secret"}
        ),
        lambda: other.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "secret"}]}),
        lambda: other.put_object_tagging(
            Bucket=name, Key="secret", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
        ),
        lambda: other.delete_object_tagging(Bucket=name, Key="secret"),
    ):
        denied(call)
    for path, body in ((f"/{name}?delete", b"<Delete/>"), (f"/{name}/secret?tagging", b"<x")):
        # Refused before the body is judged (it would be MalformedXML or InvalidRequest).
        headers, _ = signed(
            other_account, "POST" if "delete" in path else "PUT", karri.s3_url + path, body
        )
        method = "POST" if "delete" in path else "PUT"
        assert http(method, karri.s3_url + path, body, headers)[0] == 403, path
    assert name not in [b["Name"] for b in other.list_buckets()["Buckets"]]
    mine = unique("theirs")
    other.create_bucket(Bucket=mine)
    for key in ("secret", "missing"):  # the same answer: a copy tells no key's existence
        denied(
            lambda k=key: other.copy_object(
                Bucket=mine, Key="c", CopySource={"Bucket": name, "Key": k}
            )
        )
    upload = other.create_multipart_upload(Bucket=mine, Key="c")["UploadId"]
    denied(
        lambda: other.upload_part_copy(
            Bucket=mine,
            Key="c",
            UploadId=upload,
            PartNumber=1,
            CopySource={"Bucket": name, "Key": "missing"},
        )
    )
    assert s3.get_object(Bucket=name, Key="secret")["Body"].read() == b"s"


def test_anonymous_access_follows_canned_acls(karri: Karri, s3) -> None:
    name = unique("anon")
    s3.create_bucket(Bucket=name, ObjectOwnership="ObjectWriter")  # ACLs on
    s3.put_object(Bucket=name, Key="private", Body=b"p")
    s3.put_object(Bucket=name, Key="public", Body=b"public", ACL="public-read")
    s3.put_object(Bucket=name, Key="authenticated", Body=b"a", ACL="authenticated-read")
    base = f"{karri.s3_url}/{name}"
    assert http("GET", f"{base}/public")[:3:2] == (200, b"public")
    assert http("GET", f"{base}/private")[0] == 403
    assert http("GET", f"{base}/authenticated")[0] == 403
    assert http("GET", f"{base}/missing")[0] == 403  # no READ on the bucket: no existence leak
    assert http("GET", f"{base}?list-type=2")[0] == 403
    assert http("PUT", f"{base}/new", b"x")[0] == 403
    assert http("GET", f"{karri.s3_url}/")[0] == 403
    s3.put_bucket_acl(Bucket=name, ACL="public-read")
    status, _headers, body = http("GET", f"{base}?list-type=2")
    assert status == 200 and b"<Key>public</Key>" in body
    assert http("GET", f"{base}/missing")[0] == 404
    s3.put_bucket_acl(Bucket=name, ACL="public-read-write")
    assert http("PUT", f"{base}/anonymous-upload", b"from anyone")[0] == 200
    assert s3.get_object(Bucket=name, Key="anonymous-upload")["Body"].read() == b"from anyone"
    assert http("GET", f"{base}/public?response-content-type=text/evil")[0] == 400


def test_authenticated_read_and_explicit_grants(karri: Karri, s3, other_account) -> None:
    name = unique("grants")
    s3.create_bucket(Bucket=name, ObjectOwnership="ObjectWriter")  # ACLs on
    other = karri.client("s3", other_account)
    s3.put_object(Bucket=name, Key="auth", Body=b"a", ACL="authenticated-read")
    assert other.get_object(Bucket=name, Key="auth")["Body"].read() == b"a"
    s3.put_object(
        Bucket=name, Key="granted", Body=b"g", GrantRead=f'id="{other_account.account_id}"'
    )
    assert other.get_object(Bucket=name, Key="granted")["Body"].read() == b"g"
    grants = s3.get_object_acl(Bucket=name, Key="granted")["Grants"]
    assert {
        "Grantee": {
            "ID": other_account.account_id,
            "DisplayName": other_account.account_id,
            "Type": "CanonicalUser",
        },
        "Permission": "READ",
    } in grants
    s3.put_bucket_acl(
        Bucket=name,
        AccessControlPolicy={
            "Owner": {"ID": karri.admin.account_id},
            "Grants": [
                {
                    "Grantee": {"ID": karri.admin.account_id, "Type": "CanonicalUser"},
                    "Permission": "FULL_CONTROL",
                },
                {
                    "Grantee": {"ID": other_account.account_id, "Type": "CanonicalUser"},
                    "Permission": "WRITE",
                },
                {
                    "Grantee": {"ID": other_account.account_id, "Type": "CanonicalUser"},
                    "Permission": "READ",
                },
            ],
        },
    )
    other.put_object(Bucket=name, Key="theirs", Body=b"t", ACL="bucket-owner-full-control")
    assert s3.get_object(Bucket=name, Key="theirs")["Body"].read() == b"t"
    other.put_object(Bucket=name, Key="theirs-private", Body=b"t")
    denied(lambda: s3.get_object(Bucket=name, Key="theirs-private"))
    s3.delete_object(Bucket=name, Key="theirs-private")  # the bucket owner may still delete it
    assert "theirs" in [o["Key"] for o in other.list_objects_v2(Bucket=name)["Contents"]]


def test_aws_exec_read_is_a_grant_to_the_cloud(s3) -> None:
    name = unique("bundles")
    s3.create_bucket(Bucket=name, ObjectOwnership="ObjectWriter")  # ACLs on
    s3.put_object(Bucket=name, Key="image.manifest.xml", Body=b"<manifest/>", ACL="aws-exec-read")
    grants = s3.get_object_acl(Bucket=name, Key="image.manifest.xml")["Grants"]
    assert sorted(g["Permission"] for g in grants) == ["FULL_CONTROL", "READ"]


def _post_policy_v4(
    karri: Karri, bucket: str, key: str, conditions: list, fields: dict | None = None
):
    now = datetime.now(UTC)
    date = now.strftime("%Y%m%d")
    credential = f"{karri.admin.access_key_id}/{date}/{karri.region}/s3/aws4_request"
    policy = {
        "expiration": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [
            {"bucket": bucket},
            {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
            {"x-amz-credential": credential},
            {"x-amz-date": now.strftime("%Y%m%dT%H%M%SZ")},
            *conditions,
        ],
    }
    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    key_bytes = ("AWS4" + karri.admin.secret_access_key).encode()
    for part in (date, karri.region, "s3", "aws4_request"):
        key_bytes = hmac.new(key_bytes, part.encode(), "sha256").digest()
    form = {
        "key": key,
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": credential,
        "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"),
        "policy": encoded,
        "x-amz-signature": hmac.new(key_bytes, encoded.encode(), "sha256").hexdigest(),
        **(fields or {}),
    }
    return form


def _multipart(form: dict, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in form.items():
        parts.append(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def test_post_object_with_signed_policy(karri: Karri, s3) -> None:
    name = unique("post")
    s3.create_bucket(Bucket=name, ObjectOwnership="ObjectWriter")  # ACLs on
    data = b"browser upload \r\n--not-a-boundary\r\n" * 1000
    form = _post_policy_v4(
        karri,
        name,
        "uploads/${filename}",
        [
            ["starts-with", "$key", "uploads/"],
            {"acl": "public-read"},
            ["content-length-range", 1, 10**6],
            {"success_action_status": "201"},
        ],
        {"acl": "public-read", "success_action_status": "201"},
    )
    body, content_type = _multipart(form, "photo.jpg", data)
    status, _headers, answer = http(
        "POST", f"{karri.s3_url}/{name}", body, {"Content-Type": content_type}
    )
    assert status == 201 and b"<Key>uploads/photo.jpg</Key>" in answer
    assert http("GET", f"{karri.s3_url}/{name}/uploads/photo.jpg")[2] == data
    assert (
        hashlib.md5(data).hexdigest()
        in s3.head_object(Bucket=name, Key="uploads/photo.jpg")["ETag"]
    )

    tampered = dict(form, key="elsewhere/x")
    body, content_type = _multipart(tampered, "x", b"x")
    assert http("POST", f"{karri.s3_url}/{name}", body, {"Content-Type": content_type})[0] == 403
    extra = dict(form, **{"x-amz-meta-sneaky": "1"})
    body, content_type = _multipart(extra, "x", b"x")
    assert http("POST", f"{karri.s3_url}/{name}", body, {"Content-Type": content_type})[0] == 403
    forged = dict(form, **{"x-amz-signature": "0" * 64})
    body, content_type = _multipart(forged, "x", b"x")
    assert http("POST", f"{karri.s3_url}/{name}", body, {"Content-Type": content_type})[0] == 403


def test_post_object_with_boto3_presigned_post(karri: Karri, s3) -> None:
    name = unique("presignpost")
    s3.create_bucket(Bucket=name)
    post = s3.generate_presigned_post(name, "form/${filename}", ExpiresIn=60)
    body, content_type = _multipart(post["fields"], "data.bin", b"presigned post")
    status, _headers, _answer = http("POST", post["url"], body, {"Content-Type": content_type})
    assert status == 204
    assert s3.get_object(Bucket=name, Key="form/data.bin")["Body"].read() == b"presigned post"


def test_headers_http_cannot_carry_are_refused(karri: Karri, s3) -> None:
    """A line break in a form field or a response-* override once dropped the connection
    (and a stored one dropped every later GET of the object)."""
    name = unique("crlf")
    s3.create_bucket(Bucket=name)
    poisoned = {
        "x-amz-meta-a": "a\r\nX-Evil: 1",
        "Cache-Control": "a\x00b",
        "success_action_redirect": "http://example.invalid/\r\nX-Evil: 1",
    }
    for field, value in poisoned.items():
        post = s3.generate_presigned_post(
            name, "poison", Fields={field: value}, Conditions=[{field: value}], ExpiresIn=60
        )
        body, content_type = _multipart(post["fields"], "x", b"x")
        status, _headers, answer = http("POST", post["url"], body, {"Content-Type": content_type})
        assert status == 400 and b"<Code>InvalidArgument</Code>" in answer, (field, answer)
    assert "Contents" not in s3.list_objects_v2(Bucket=name)
    post = s3.generate_presigned_post(name, "line\r\nbreak", ExpiresIn=60)
    body, content_type = _multipart(post["fields"], "x", b"odd key")
    status, headers, _answer = http("POST", post["url"], body, {"Content-Type": content_type})
    assert status == 204 and headers["location"] == f"/{name}/line%0D%0Abreak"
    assert s3.get_object(Bucket=name, Key="line\r\nbreak")["Body"].read() == b"odd key"
    url = f"{karri.s3_url}/{name}/line%0D%0Abreak?response-content-type=a%0D%0Ab"
    headers, _ = signed(karri.admin, "GET", url)
    assert http("GET", url, None, headers)[0] == 400


def test_virtual_hosted_style(karri: Karri, s3) -> None:
    name = unique("vhost")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="dir/file.txt", Body=b"virtual")
    host = f"{name}.s3.localhost:{karri.s3_url.rsplit(':', 1)[1]}"
    url = f"{karri.s3_url}/dir/file.txt"
    headers, _ = signed(karri.admin, "GET", f"http://{host}/dir/file.txt")
    assert http("GET", url, None, headers)[2] == b"virtual"
    headers, _ = signed(karri.admin, "GET", f"http://{host}/?list-type=2")
    status, _h, body = http("GET", f"{karri.s3_url}/?list-type=2", None, headers)
    assert status == 200 and b"<Key>dir/file.txt</Key>" in body


def test_a_body_in_flight_never_lands_in_a_bucket_made_again_by_another(
    karri: Karri, s3, other_account
) -> None:
    """The bucket is deleted while a PUT's body is still coming, and another account makes
    one of the same name: the PUT must not commit into the new owner's bucket."""
    name = unique("reborn")
    s3.create_bucket(Bucket=name)
    url = f"{karri.s3_url}/{name}/obj"
    body = b"x" * (1 << 20)
    headers, _ = signed(karri.admin, "PUT", url, b"", payload_hash="UNSIGNED-PAYLOAD")
    headers["Content-Length"] = str(len(body))
    parts = urlsplit(url)
    head = f"PUT /{name}/obj HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n" + body[:1000])
        s3.delete_bucket(Bucket=name)
        other = karri.client("s3", other_account)
        other.create_bucket(Bucket=name)
        sock.sendall(body[1000:])
        answer = b""
        while b"</Error>" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 404 "), answer
    assert b"<Code>NoSuchBucket</Code>" in answer
    assert "Contents" not in other.list_objects_v2(Bucket=name)


def test_what_karri_has_not_built_is_said_to_the_owner_only(karri: Karri, s3) -> None:
    name = unique("unbuilt")
    s3.create_bucket(Bucket=name)
    url = f"{karri.s3_url}/{name}?inventory"
    assert http("GET", url)[0] == 403  # anonymous: nothing about the bucket's features
    headers, _ = signed(karri.admin, "GET", url)
    assert http("GET", url, None, headers)[0] == 501
    missing = f"{karri.s3_url}/{unique('nobucket')}?inventory"
    headers, _ = signed(karri.admin, "GET", missing)
    assert http("GET", missing, None, headers)[0] == 404
