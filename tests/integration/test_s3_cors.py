"""CORS on a real `karri up`: Put/Get/DeleteBucketCors from boto3 and the AWS CLI, a
browser's unsigned OPTIONS preflight, and the headers on actual (presigned) requests."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Karri
from tests.integration.s3_helpers import http, preflight, signed, unique

APP = "https://app.example.com"
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
RULES = [
    {
        "ID": "uploads",
        "AllowedOrigins": [APP, "https://*.partner.test"],
        "AllowedMethods": ["PUT", "GET"],
        "AllowedHeaders": ["Content-Type", "x-amz-*"],
        "ExposeHeaders": ["ETag", "x-amz-version-id"],
        "MaxAgeSeconds": 600,
    },
    {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
]


@pytest.fixture(scope="module")
def s3(karri: Karri):
    return karri.client("s3")


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    name = unique("cors")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": RULES})
    return name


def code_of(body: bytes) -> str:
    return body.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode()


def test_configuration_round_trips_and_is_removed(karri: Karri, s3) -> None:
    name = unique("corscfg")
    s3.create_bucket(Bucket=name)
    with pytest.raises(ClientError) as missing:
        s3.get_bucket_cors(Bucket=name)
    assert missing.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": RULES})
    assert s3.get_bucket_cors(Bucket=name)["CORSRules"] == RULES
    shown = karri.aws("s3api", "get-bucket-cors", "--bucket", name)
    assert shown["CORSRules"] == RULES
    assert s3.delete_bucket_cors(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.delete_bucket_cors(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError):
        s3.get_bucket_cors(Bucket=name)
    document = json.dumps({"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]})
    karri.aws("s3api", "put-bucket-cors", "--bucket", name, "--cors-configuration", document)
    assert s3.get_bucket_cors(Bucket=name)["CORSRules"] == [
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}
    ]


@pytest.mark.parametrize(
    ("rules", "code"),
    [
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}], "InvalidRequest"),
        ([{"AllowedOrigins": ["http://*.*.test"], "AllowedMethods": ["GET"]}], "InvalidRequest"),
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}] * 101, "MalformedXML"),
        ([], "MalformedXML"),
    ],
)
def test_invalid_configurations_are_refused(s3, bucket: str, rules, code: str) -> None:
    with pytest.raises(ClientError) as refused:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert refused.value.response["Error"]["Code"] == code
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES  # unchanged


def test_another_account_cannot_read_or_change_it(karri: Karri, bucket: str, other_account):
    other = karri.client("s3", other_account)
    for call in (
        lambda: other.get_bucket_cors(Bucket=bucket),
        lambda: other.delete_bucket_cors(Bucket=bucket),
        lambda: other.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]},
        ),
    ):
        with pytest.raises(ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_a_browser_preflight_is_answered_from_the_matching_rule(karri: Karri, bucket: str):
    url = f"{karri.s3_url}/{bucket}/uploads/photo.jpg"
    status, headers, body = preflight(
        url,
        {
            "Origin": APP,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type,X-Amz-Meta-Album",
        },
    )
    assert status == 200, body
    assert body == b""
    assert headers["access-control-allow-origin"] == APP
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["access-control-allow-methods"] == "PUT, GET"
    assert headers["access-control-allow-headers"] == "content-type, x-amz-meta-album"
    assert headers["access-control-expose-headers"] == "ETag, x-amz-version-id"
    assert headers["access-control-max-age"] == "600"
    assert headers["vary"] == VARY
    # a wildcard origin, on the bucket's own URL
    status, headers, _ = preflight(
        f"{karri.s3_url}/{bucket}",
        {"Origin": "https://eu.partner.test", "Access-Control-Request-Method": "GET"},
    )
    assert (status, headers["access-control-allow-origin"]) == (200, "https://eu.partner.test")
    # the rule open to any origin says "*" and no credentials
    status, headers, _ = preflight(
        url, {"Origin": "http://elsewhere", "Access-Control-Request-Method": "HEAD"}
    )
    assert status == 200
    assert headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in headers
    # the same over the EC2 port's Eucalyptus path
    status, headers, _ = preflight(
        f"{karri.ec2_url}/services/objectstorage/{bucket}/k",
        {"Origin": APP, "Access-Control-Request-Method": "GET"},
    )
    assert (status, headers["access-control-allow-origin"]) == (200, APP)


@pytest.mark.parametrize(
    ("headers", "status", "code", "message"),
    [
        ({"Origin": "https://evil.test", "Access-Control-Request-Method": "PUT"}, 403, None, None),
        ({"Origin": APP, "Access-Control-Request-Method": "DELETE"}, 403, None, None),
        (
            {
                "Origin": APP,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "authorization",
            },
            403,
            None,
            None,
        ),
        (
            {"Access-Control-Request-Method": "PUT"},
            400,
            "BadRequest",
            b"Insufficient information. Origin request header needed.",
        ),
        ({"Origin": APP}, 400, "BadRequest", b"Invalid Access-Control-Request-Method: null"),
        (
            {"Origin": APP, "Access-Control-Request-Method": "PATCH"},
            400,
            "BadRequest",
            b"Invalid Access-Control-Request-Method: PATCH",
        ),
    ],
)
def test_preflights_no_rule_allows_are_refused(
    karri: Karri, bucket: str, headers, status, code, message
) -> None:
    got, answer, body = preflight(f"{karri.s3_url}/{bucket}/k", headers)
    assert got == status, body
    assert code_of(body) == (code or "AccessForbidden")
    assert message is None or message in body
    if status == 403:
        assert b"CORSResponse: This CORS request is not allowed." in body
        assert b"<ResourceType>OBJECT</ResourceType>" in body
    assert "access-control-allow-origin" not in answer


def test_preflights_without_a_configuration_or_a_bucket(karri: Karri, s3) -> None:
    name = unique("nocors")
    s3.create_bucket(Bucket=name)
    asked = {"Origin": APP, "Access-Control-Request-Method": "PUT"}
    status, _, body = preflight(f"{karri.s3_url}/{name}/k", asked)
    assert (status, code_of(body)) == (403, "AccessForbidden")
    assert b"CORSResponse: CORS is not enabled for this bucket." in body
    assert b"<Method>PUT</Method>" in body
    status, _, body = preflight(f"{karri.s3_url}/{unique('gone')}/k", asked)
    assert (status, code_of(body)) == (403, "AccessForbidden")
    assert b"CORSResponse: Bucket not found" in body


def test_a_presigned_put_from_an_allowed_origin_carries_the_headers(
    karri: Karri, s3, bucket: str
) -> None:
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "uploads/a.txt"}, ExpiresIn=300
    )
    status, headers, _ = preflight(url, {"Origin": APP, "Access-Control-Request-Method": "PUT"})
    assert status == 200
    status, headers, _ = http("PUT", url, b"from the browser", {"Origin": APP})
    lowered = {k.lower(): v for k, v in headers.items()}
    assert status == 200
    assert lowered["access-control-allow-origin"] == APP
    assert lowered["access-control-allow-methods"] == "PUT, GET"
    assert lowered["access-control-expose-headers"] == "ETag, x-amz-version-id"
    assert lowered["vary"] == VARY
    assert lowered["etag"]
    assert s3.get_object(Bucket=bucket, Key="uploads/a.txt")["Body"].read() == b"from the browser"
    # an error answer carries them too; an origin no rule allows gets none
    missing = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "missing"}, ExpiresIn=300
    )
    status, headers, _ = http("GET", missing, None, {"Origin": APP})
    lowered = {k.lower(): v for k, v in headers.items()}
    assert (status, lowered["access-control-allow-origin"]) == (404, APP)
    status, headers, _ = http("PUT", url, b"x", {"Origin": "https://evil.test"})
    assert status == 200
    assert not any(k.lower().startswith("access-control-") for k in headers)
    # no Origin: no CORS headers
    status, headers, _ = http("PUT", url, b"x")
    assert status == 200
    assert not any(k.lower().startswith("access-control-") for k in headers)


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/", {"Origin": APP, "Access-Control-Request-Method": "GET"}, 403),
        ("/", {}, 400),
        ("/%ff%fe/k", {"Origin": APP, "Access-Control-Request-Method": "GET"}, 400),
        ("/b/%zz", {"Origin": APP, "Access-Control-Request-Method": "GET"}, 403),
    ],
)
def test_odd_preflights_get_s3_errors(karri: Karri, path: str, headers, status: int) -> None:
    got, _, body = preflight(karri.s3_url + path, headers)
    assert got == status, body
    assert b"<Error>" in body


def test_a_configuration_needs_its_digest(karri: Karri, bucket: str) -> None:
    document = (
        b'<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><CORSRule>'
        b"<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
        b"</CORSRule></CORSConfiguration>"
    )
    url = f"{karri.s3_url}/{bucket}?cors"
    status, _, body = http("PUT", url, document, signed(karri.admin, "PUT", url, document)[0])
    assert (status, code_of(body)) == (400, "InvalidRequest")
    assert b"Content-MD5" in body
