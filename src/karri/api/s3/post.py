"""POST Object: browser-based uploads with a signed policy (SigV2 or SigV4).

The multipart/form-data body is parsed as it streams; the ``file`` field goes straight
into a blob, hashed with the checksums the fields before it name (``x-amz-checksum-*``).
Fields after ``file`` are ignored, as S3 does.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote

from karri.api.auth import sigv4
from karri.api.auth.credentials import Principal
from karri.api.auth.matching import signature_matches
from karri.api.s3 import ownership, xml
from karri.api.s3.buckets import parse_tags
from karri.api.s3.context import Reply, Request
from karri.api.s3.headers import MAX_OBJECT_TAGS, check_header, checked_metadata
from karri.api.s3.payload import pump, signature_mismatch
from karri.numbers import natural
from karri.walrus import (
    ALGORITHMS,
    Digests,
    ObjectBody,
    PutOptions,
    S3Error,
    access_denied,
    acls,
    check_key,
    invalid_argument,
)

MAX_FIELDS = 64 * 1024
MAX_POST = 5 * 1024**3
IGNORED = {"file", "policy", "signature", "awsaccesskeyid", "x-amz-signature"}
_NAME = re.compile(r'\bname="([^"]*)"')
_FILENAME = re.compile(r'\bfilename="([^"]*)"')


def _bad(message: str) -> S3Error:
    return S3Error("MalformedPOSTRequest", message, 400)


class FormParser:
    """An incremental multipart/form-data parser: small fields kept, ``file`` streamed to
    what ``start_file`` (called with the fields before it) returns."""

    def __init__(
        self, boundary: bytes, start_file: Callable[[dict[str, str]], Callable[[bytes], None]]
    ) -> None:
        self.delimiter = b"\r\n--" + boundary
        self.buffer = bytearray(b"\r\n")  # the first boundary has no leading CRLF
        self.fields: dict[str, str] = {}
        self.filename = ""
        self.file_type = ""
        self.start_file = start_file
        self.write: Callable[[bytes], None] = lambda _chunk: None
        self.state = "preamble"
        self.current: str | None = None
        self.value = bytearray()
        self.size = 0
        self.file_seen = False
        self.field_bytes = 0

    def feed(self, data) -> None:
        self.buffer += data
        while self._step():
            pass
        if len(self.buffer) > MAX_FIELDS + len(self.delimiter) and self.state != "file":
            raise _bad("The form fields are too large")

    def _step(self) -> bool:
        if self.state == "done":
            self.buffer.clear()
            return False
        if self.state == "preamble":
            index = self.buffer.find(self.delimiter)
            if index < 0:
                return False
            del self.buffer[: index + len(self.delimiter)]
            self.state = "after-boundary"
            return True
        if self.state == "after-boundary":
            if len(self.buffer) < 2:
                return False
            if self.buffer[:2] == b"--":
                self.state = "done"
                return False
            if self.buffer[:2] != b"\r\n":
                raise _bad("Malformed multipart boundary")
            del self.buffer[:2]
            self.state = "headers"
            return True
        if self.state == "headers":
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(self.buffer[:end]).decode("utf-8", "replace")
            del self.buffer[: end + 4]
            name = _NAME.search(head)
            if name is None:
                raise _bad("A form part has no name")
            self.current = name.group(1)
            filename = _FILENAME.search(head)
            if self.current.lower() == "file":
                self.filename = filename.group(1) if filename else ""
                for line in head.split("\r\n"):
                    key, _, value = line.partition(":")
                    if key.strip().lower() == "content-type":
                        self.file_type = value.strip()
                self.state = "file"
                self.file_seen = True
                self.write = self.start_file(self.fields)
            else:
                self.state = "field"
            return True
        index = self.buffer.find(self.delimiter)
        if self.state == "file":
            keep = len(self.delimiter)
            if index < 0:
                if len(self.buffer) > keep:
                    chunk = bytes(self.buffer[:-keep])
                    del self.buffer[:-keep]
                    self.size += len(chunk)
                    self.write(chunk)
                return False
            chunk = bytes(self.buffer[:index])
            self.size += len(chunk)
            self.write(chunk)
            del self.buffer[: index + len(self.delimiter)]
            self.state = "done"  # fields after the file are ignored
            return False
        if index < 0:
            return False
        value = bytes(self.buffer[:index]).decode("utf-8", "replace")
        self.field_bytes += len(value)
        if self.field_bytes > MAX_FIELDS:
            raise _bad("The form fields are too large")
        if self.current is not None and not self.file_seen:
            self.fields[self.current] = value
        del self.buffer[: index + len(self.delimiter)]
        self.state = "after-boundary"
        return True


def _field(fields: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in fields.items():
        if key.lower() == lowered:
            return value
    return None


def authenticate_form(api, fields: dict[str, str]) -> tuple[Principal | None, dict]:
    """Who signed the form (None for an unsigned form) and the decoded policy."""
    policy_b64 = _field(fields, "policy")
    if policy_b64 is None:
        if _field(fields, "AWSAccessKeyId") or _field(fields, "x-amz-credential"):
            raise _missing("Policy")
        return None, {}
    try:
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise _invalid_policy("Invalid JSON.") from None
    if not isinstance(policy, dict):
        raise _invalid_policy("Invalid JSON.")
    algorithm = _field(fields, "x-amz-algorithm")
    if algorithm is not None:
        if algorithm != sigv4.ALGORITHM:
            raise _bad("Unsupported x-amz-algorithm")
        try:
            scope = sigv4.parse_scope(_field(fields, "x-amz-credential") or "")
        except Exception:
            raise _bad("Invalid x-amz-credential") from None
        key = api.keys.get(scope.access_key_id)
        if key is None:
            raise S3Error(
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
                403,
            )
        signing = sigv4.signing_key(key.secret, scope.date, scope.region, scope.service)
        expected = hmac.new(signing, policy_b64.encode(), "sha256").hexdigest()
        given = _field(fields, "x-amz-signature")
        if given is None:
            raise _missing("X-Amz-Signature")
    else:
        access = _field(fields, "AWSAccessKeyId")
        if access is None:
            raise _missing("AWSAccessKeyId")
        key = api.keys.get(access)
        if key is None:
            raise S3Error(
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
                403,
            )
        expected = base64.b64encode(
            hmac.digest(key.secret.encode(), policy_b64.encode(), "sha1")
        ).decode()
        given = _field(fields, "signature")
        if given is None:
            raise _missing("Signature")
    if not signature_matches(expected, given):
        raise signature_mismatch()
    return key.principal, policy


def _missing(name: str) -> S3Error:
    return invalid_argument(
        f"Bucket POST must contain a field named '{name}'.  If it is specified, please check "
        "the order of the fields."
    )


def _invalid_policy(why: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", f"Invalid Policy: {why}", 400)


def _whole(value: object) -> int | None:
    """A content-length-range bound: a JSON integer or a string of digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    return natural(value) if isinstance(value, str) else None


def check_policy(policy: dict, fields: dict[str, str], bucket: str, size: int) -> None:
    """Every condition must hold and every field must be named by a condition."""
    if not policy:
        return
    for name in ("expiration", "conditions"):
        if name not in policy:
            raise _invalid_policy(f"Policy missing {name}.")
    try:
        expires = datetime.fromisoformat(str(policy["expiration"]).replace("Z", "+00:00"))
        expires = expires.replace(tzinfo=UTC) if expires.tzinfo is None else expires.astimezone(UTC)
    except (KeyError, ValueError, OverflowError):
        raise _invalid_policy("Invalid 'expiration' value.") from None
    if expires < datetime.now(UTC):
        raise S3Error("AccessDenied", "Invalid according to Policy: Policy expired.", 403)
    values = {k.lower(): v for k, v in fields.items()} | {"bucket": bucket}
    covered: set[str] = set()
    conditions = policy["conditions"]
    if not isinstance(conditions, list):
        raise _invalid_policy("Invalid 'conditions' value.")
    for condition in conditions:
        if isinstance(condition, dict):
            if len(condition) != 1:
                raise _invalid_policy("Invalid condition.")
            for name, expected in condition.items():
                covered.add(name.lower().lstrip("$"))
                if values.get(name.lower().lstrip("$")) != expected:
                    raise _denied(f'Policy Condition failed: ["eq", "${name}", "{expected}"]')
        elif isinstance(condition, list) and len(condition) == 3:
            operator, name, expected = condition
            operator = str(operator).lower()
            if operator == "content-length-range":
                low, high = _whole(name), _whole(expected)
                if low is None or high is None:
                    raise _invalid_policy("Invalid content-length-range.")
                if not low <= size <= high:
                    raise S3Error(
                        "EntityTooLarge" if size > high else "EntityTooSmall",
                        "Your proposed upload size is outside the allowed range",
                        400,
                    )
                continue
            field_name = str(name).lower().lstrip("$")
            covered.add(field_name)
            actual = values.get(field_name, "")
            if operator not in ("eq", "starts-with"):
                raise _invalid_policy(f"Invalid condition operator: {json.dumps(operator)}")
            if operator == "eq" and actual != expected:
                raise _denied(f"Policy Condition failed: {json.dumps(condition)}")
            if operator == "starts-with" and not actual.startswith(str(expected)):
                raise _denied(f"Policy Condition failed: {json.dumps(condition)}")
        else:
            raise _invalid_policy("Invalid condition.")
    if "bucket" not in covered:
        raise _denied(f'Policy Condition failed: ["eq", "$bucket", "{bucket}"]')
    extra = [
        name
        for name in values
        if name not in covered
        and name not in IGNORED
        and not name.startswith("x-ignore-")
        and name
        not in ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-security-token")
    ]
    if extra:
        raise _denied(f"Extra input fields: {', '.join(sorted(extra))}")


def _checksums(fields: dict[str, str]) -> list[str]:
    """The algorithms of the form's ``x-amz-checksum-<algorithm>`` fields."""
    names = {name.lower() for name in fields}
    return [a for a in ALGORITHMS if f"x-amz-checksum-{a.lower()}" in names]


def _verified_checksums(fields: dict[str, str], digests: Digests) -> dict[str, str]:
    """The checksums the form claims for the file, each checked (BadDigest)."""
    if len(digests.checksums) > 1:
        raise S3Error("InvalidRequest", "Expecting a single x-amz-checksum- field", 400)
    verified = {}
    for algorithm in digests.checksums:
        claimed = (_field(fields, f"x-amz-checksum-{algorithm.lower()}") or "").strip()
        if claimed != digests.checksum(algorithm):
            raise S3Error(
                "BadDigest",
                f"The {algorithm} you specified did not match the calculated checksum.",
                400,
            )
        verified[algorithm] = claimed
    return verified


def _denied(message: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {message}", 403)


async def post_object(api, request: Request) -> Reply:
    content_type = request.header.get("content-type", "")
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/form-data") or match is None:
        raise S3Error(
            "PreconditionFailed",
            "Bucket POST must be of the enclosure-type multipart/form-data",
            412,
        )
    walrus = request.walrus
    bucket = await api.run(walrus.get_bucket, request.bucket)
    bodies: list[ObjectBody] = []

    def start_file(fields: dict[str, str]) -> Callable[[bytes], None]:
        bodies.append(walrus.body(Digests(checksums=_checksums(fields))))
        return bodies[0].write

    parser = FormParser(match.group(1).encode("latin-1"), start_file)
    try:
        await pump(request.receive, parser.feed, api.executor, limit=MAX_POST + MAX_FIELDS)
        if not parser.file_seen:
            raise _bad("Bucket POST must contain a file field.")
        body = bodies[0]
        fields = parser.fields
        signer, policy = authenticate_form(api, fields)
        principal = signer.account_id if signer else ""
        key = _field(fields, "key")
        if key is None:
            raise _missing("key")
        # ${filename} is the file's name, in the key and in the conditions on it.
        for name in [name for name in fields if name.lower() == "key"]:
            fields[name] = key = key.replace("${filename}", parser.filename)
        check_policy(policy, fields, request.bucket, parser.size)
        check_key(key)
        checksums = _verified_checksums(fields, body.digests)
        tagging = _field(fields, "tagging")
        tags = parse_tags(tagging.encode(), MAX_OBJECT_TAGS) if tagging is not None else None
        api.authorization.require(request, signer, "s3:PutObject", key)
        if not request.access.allows(bucket.acl, principal, acls.WRITE):
            raise access_denied()
        owner, acl = ownership.new_posted_object(bucket, principal, _field(fields, "acl"))
        request.access.check_acl(acl)  # BlockPublicAcls
        content_type = _field(fields, "Content-Type") or parser.file_type
        headers = {"content-type": content_type or "binary/octet-stream"}
        for name in ("Cache-Control", "Content-Disposition", "Content-Encoding", "Expires"):
            value = _field(fields, name)
            if value is not None:
                headers[name.lower()] = value
        for name, value in headers.items():
            check_header(name, value)
        meta = checked_metadata(
            {k.lower()[11:]: v for k, v in fields.items() if k.lower().startswith("x-amz-meta-")}
        )
        redirect = _field(fields, "success_action_redirect") or _field(fields, "redirect")
        if redirect:
            check_header("location", redirect)
        info = await api.run(
            lambda: walrus.put(
                request.bucket,
                key,
                body,
                PutOptions(
                    owner,
                    acl,
                    headers,
                    meta,
                    tags=tags,
                    checksums=checksums,
                    bucket_owner=bucket.owner,
                ),
            ).result()
        )
    except BaseException:
        for body in bodies:
            await api.run(body.abort)
        raise
    etag = f'"{info.etag}"'
    if redirect:
        separator = "&" if "?" in redirect else "?"
        query = f"bucket={quote(request.bucket)}&key={quote(key)}&etag={quote(etag)}"
        location = f"{redirect}{separator}{query}"
        return Reply(303, headers={"location": location, "etag": etag})
    status = _field(fields, "success_action_status") or "204"
    if status == "201":
        host = request.header.get("host", "")
        body = xml.document(
            "PostResponse",
            [
                xml.el("Location", f"http://{host}/{request.bucket}/{key}"),
                xml.el("Bucket", request.bucket),
                xml.el("Key", key),
                xml.el("ETag", etag),
            ],
            namespace=False,
        )
        return Reply(201, body=body, headers={"etag": etag})
    return Reply(
        200 if status == "200" else 204,
        headers={"etag": etag, "location": f"/{request.bucket}/{quote(key, safe='/~')}"},
    )
