"""S3 calls in IAM's terms and their refusals, with a fake policy source; and the S3
endpoint's order: a refused call never reaches its handler, root keys are not evaluated."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from karri import policy
from karri.api.auth.credentials import KeyStore, Principal, SigningKey
from karri.api.s3 import routes
from karri.api.s3.app import S3Api
from karri.api.s3.auth import Identity, Payload
from karri.api.s3.authorize import S3Authorization
from karri.api.s3.context import Request
from karri.walrus import BucketInfo, S3Error

ACCOUNT = "123456789012"
USER = policy.Principal.user(ACCOUNT, "alice", "AIDAALICE")


class FakePolicies:
    def __init__(self, *statements: dict[str, Any]) -> None:
        document = {"Version": "2012-10-17", "Statement": list(statements)}
        self.policies = (policy.parse(document),) if statements else ()
        self.asked = 0

    def identity_policies(self, caller: policy.Principal) -> tuple[policy.Policy, ...]:
        self.asked += 1
        return self.policies


class FakeWalrus:
    """Objects' tags, buckets (none unless given) and accounts' settings."""

    def __init__(
        self,
        tags: dict[str, dict[str, str]] | None = None,
        buckets: dict[str, BucketInfo] | None = None,
        accounts: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.tags = tags or {}
        self.buckets = buckets or {}
        self.settings = accounts or {}

    def get_bucket(self, name: str) -> BucketInfo:
        if name not in self.buckets:
            raise S3Error("NoSuchBucket", "The specified bucket does not exist", 404)
        return self.buckets[name]

    def peek_bucket(self, name: str) -> BucketInfo | None:
        return None

    def account_config(self, account: str, name: str) -> Any:
        return self.settings.get(account, {}).get(name)

    def head_object(self, bucket: str, key: str, version_id: str | None = None) -> Any:
        if key not in self.tags:
            raise S3Error("NoSuchKey", "The specified key does not exist.", 404)
        return type("Info", (), {"tags": self.tags[key]})()


def statement(action, resource="*", condition=None, effect="Allow") -> dict[str, Any]:
    found = {"Effect": effect, "Action": action, "Resource": resource}
    if condition:
        found["Condition"] = condition
    return found


def request(
    method: str,
    bucket: str = "",
    key: str = "",
    query: dict[str, str] | None = None,
    header: dict[str, str] | None = None,
    walrus: Any = None,
    identity: policy.Principal | None = USER,
) -> Request:
    principal = Principal("AKIAUSER", ACCOUNT, "acct", identity)
    query = query or {}
    return Request(
        request_id="r",
        method=method,
        bucket=bucket,
        key=key,
        pairs=list(query.items()),
        query=query,
        header=header or {},
        identity=Identity(ACCOUNT, "AKIAUSER", Payload(), "acct", principal),
        walrus=walrus or FakeWalrus(),
        receive=None,
        send=None,
        scope={"client": ("10.1.2.3", 1234), "scheme": "http"},
    )


def refused(source, call: Request, operation: str) -> S3Error:
    with pytest.raises(S3Error) as raised:
        S3Authorization(source).check(call, operation)
    assert (raised.value.code, raised.value.status) == ("AccessDenied", 403)
    return raised.value


def test_get_object_needs_an_allow_on_the_object() -> None:
    source = FakePolicies(statement("s3:GetObject", "arn:aws:s3:::photos/public/*"))
    S3Authorization(source).check(request("GET", "photos", "public/a.jpg"), "GetObject")
    error = refused(source, request("GET", "photos", "private/a.jpg"), "GetObject")
    assert error.message == (
        f"User: {USER.arn} is not authorized to perform: s3:GetObject on resource: "
        '"arn:aws:s3:::photos/private/a.jpg" because no identity-based policy allows the '
        "s3:GetObject action"
    )
    versioned = request("GET", "photos", "public/a.jpg", {"versionId": "v1"})
    assert "s3:GetObjectVersion" in refused(source, versioned, "GetObject").message


def test_prefix_condition_limits_a_user_to_a_folder() -> None:
    source = FakePolicies(
        statement(
            "s3:ListBucket",
            "arn:aws:s3:::shared",
            {"StringLike": {"s3:prefix": ["home/${aws:username}/*"]}},
        )
    )
    mine = request("GET", "shared", query={"list-type": "2", "prefix": "home/alice/docs"})
    S3Authorization(source).check(mine, "ListObjectsV2")
    refused(source, request("GET", "shared", query={"prefix": "home/bob/"}), "ListObjects")
    refused(source, request("GET", "shared"), "ListObjects")  # no prefix: the whole bucket


def test_list_all_my_buckets_and_bucket_actions() -> None:
    source = FakePolicies(statement("s3:ListAllMyBuckets"), statement("s3:CreateBucket"))
    S3Authorization(source).check(request("GET"), "ListBuckets")
    S3Authorization(source).check(request("PUT", "new"), "CreateBucket")
    refused(source, request("DELETE", "new"), "DeleteBucket")
    refused(source, request("GET", "new", query={"policy": ""}), "GetBucketPolicy")


@pytest.mark.parametrize(
    ("method", "sub", "action"),
    [
        ("GET", "cors", "s3:GetBucketCORS"),
        ("PUT", "cors", "s3:PutBucketCORS"),
        ("DELETE", "cors", "s3:PutBucketCORS"),
        ("GET", "ownershipControls", "s3:GetBucketOwnershipControls"),
        ("PUT", "ownershipControls", "s3:PutBucketOwnershipControls"),
        ("DELETE", "ownershipControls", "s3:PutBucketOwnershipControls"),
        ("GET", "logging", "s3:GetBucketLogging"),
        ("GET", "notification", "s3:GetBucketNotification"),
        ("GET", "requestPayment", "s3:GetBucketRequestPayment"),
        ("GET", "accelerate", "s3:GetAccelerateConfiguration"),
    ],
)
def test_cors_and_ownership_controls_are_their_iam_actions(method, sub, action) -> None:
    call = request(method, "site", query={sub: ""})
    _handler, operation = routes.resolve(call)
    S3Authorization(FakePolicies(statement(action, "arn:aws:s3:::site"))).check(call, operation)
    other = "s3:GetBucketAcl"
    assert action in refused(FakePolicies(statement(other)), call, operation).message


def test_canned_acl_condition() -> None:
    source = FakePolicies(
        statement("s3:PutObject", "*"),
        statement("s3:PutObject", "*", {"StringEquals": {"s3:x-amz-acl": "public-read"}}, "Deny"),
    )
    S3Authorization(source).check(request("PUT", "b", "k"), "PutObject")
    public = request("PUT", "b", "k", header={"x-amz-acl": "public-read"})
    assert "explicit deny" in refused(source, public, "PutObject").message


def test_existing_object_tags() -> None:
    source = FakePolicies(
        statement("s3:GetObject", "*", {"StringEquals": {"s3:ExistingObjectTag/class": "open"}})
    )
    walrus = FakeWalrus({"open.txt": {"class": "open"}, "secret.txt": {"class": "secret"}})
    call = request("GET", "b", "open.txt", walrus=walrus)
    assert S3Authorization(source).reads_tags(call, "GetObject")
    assert not S3Authorization(FakePolicies(statement("s3:*"))).reads_tags(call, "GetObject")
    S3Authorization(source).check(call, "GetObject")
    refused(source, request("GET", "b", "secret.txt", walrus=walrus), "GetObject")


def test_copy_needs_to_read_its_source() -> None:
    source = FakePolicies(statement("s3:PutObject", "arn:aws:s3:::dst/*"))
    copy = request("PUT", "dst", "k", header={"x-amz-copy-source": "/src/secret"})
    error = refused(source, copy, "CopyObject")
    assert "s3:GetObject" in error.message and "arn:aws:s3:::src/secret" in error.message
    readable = FakePolicies(
        statement("s3:PutObject", "arn:aws:s3:::dst/*"),
        statement("s3:GetObject", "arn:aws:s3:::src/*"),
    )
    S3Authorization(readable).check(copy, "CopyObject")


def test_multi_object_delete_is_judged_key_by_key() -> None:
    source = FakePolicies(statement("s3:DeleteObject", "arn:aws:s3:::b/tmp/*"))
    authorization = S3Authorization(source)
    call = request("POST", "b", query={"delete": ""})
    authorization.check(call, "DeleteObjects")  # nothing to ask before the keys are known
    assert authorization.allows(call, "s3:DeleteObject", "tmp/x")
    assert not authorization.allows(call, "s3:DeleteObject", "keep/x")


def test_root_and_anonymous_are_not_evaluated() -> None:
    source = FakePolicies()
    authorization = S3Authorization(source)
    assert authorization.allows(request("POST", "b", identity=None), "s3:DeleteObject", "k")
    authorization.require(request("POST", "b"), None, "s3:PutObject", "k")  # unsigned form
    assert source.asked == 0
    refused(source, request("GET", "b", "k"), "GetObject")


def test_grants_reading_a_lock_by_policy_or_to_the_buckets_account() -> None:
    """What GET/HEAD may show of a version's lock: no ACL stands in for the actions."""
    other = "210987654321"
    vault = BucketInfo("vault", ACCOUNT, "", "Enabled", datetime.now(UTC), {}, None)
    walrus = FakeWalrus(buckets={"vault": vault})
    retention = "s3:GetObjectRetention"
    user = FakePolicies(statement(["s3:GetObject", retention]))
    assert S3Authorization(user).grants(request("GET", "vault", "k", walrus=walrus), retention)
    reader = FakePolicies(statement("s3:GetObject"))
    assert not S3Authorization(reader).grants(
        request("GET", "vault", "k", walrus=walrus), retention
    )
    root = request("GET", "vault", "k", walrus=walrus, identity=None)
    assert S3Authorization(FakePolicies()).grants(root, retention)  # the owner's root
    outsider = request("GET", "vault", "k", walrus=walrus, identity=None)
    root_of_other = Principal("AKIAOTHER", other, "o", None)
    outsider.identity = Identity(other, "AKIAOTHER", Payload(), "o", root_of_other)
    assert not S3Authorization(FakePolicies()).grants(outsider, retention)
    assert not S3Authorization(FakePolicies()).grants(request("GET", "gone", "k"), retention)


def endpoint(source: FakePolicies, identity: policy.Principal | None) -> S3Api:
    def load(access_key_id: str) -> SigningKey | None:
        return SigningKey("secret", Principal(access_key_id, ACCOUNT, "acct", identity))

    return S3Api(FakeWalrus(), KeyStore(load), policies=source)  # type: ignore[arg-type]


def call(api: S3Api, method: str, path: str) -> tuple[int, bytes]:
    aws = AWSRequest(method=method, url=f"http://127.0.0.1{path}", data=b"")
    S3SigV4Auth(Credentials("AKIAUSER", "secret"), "s3", "us-east-1").add_auth(aws)
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "client": ("127.0.0.1", 5000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in aws.headers.items()]
        + [(b"host", b"127.0.0.1")],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(api(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_endpoint_refuses_before_the_handler() -> None:
    # The fake Walrus has no buckets at all: a call that reached a handler would not answer
    # AccessDenied (nor with the policy engine's sentence).
    status, body = call(endpoint(FakePolicies(statement("s3:ListBucket")), USER), "GET", "/b/k")
    assert status == 403
    assert b"<Code>AccessDenied</Code>" in body and b"s3:GetObject" in body
