"""CORS on the S3 API: Put/Get/DeleteBucketCors, the unsigned ``OPTIONS`` preflight, and
the ``Access-Control-*`` headers of actual requests that carry an ``Origin``.

The rules live in the bucket's ``cors`` configuration (`cors_rules` reads and matches
them); every S3 process sees a change through Walrus's shared bucket cache.
"""

from __future__ import annotations

from collections.abc import Mapping

from karri.api.s3 import cors_rules
from karri.api.s3.context import Reply, Request
from karri.api.s3.documents import read_document, require_content_md5
from karri.api.s3.errors import WithFields
from karri.walrus import BucketInfo, S3Error, Walrus

CONFIG = "cors"
MAX_DOCUMENT = 64 * 1024
NOT_ALLOWED = (
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution "
    "of Origin, request method / Access-Control-Request-Method or "
    "Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."
)


async def put_bucket_cors(api, request: Request) -> Reply:
    await api.run(request.require_bucket, None)
    body = await read_document(request, MAX_DOCUMENT)
    require_content_md5(request)
    rules = cors_rules.parse_configuration(body)
    await api.run(request.walrus.configure_bucket, request.bucket, CONFIG, rules)
    return Reply()


async def get_bucket_cors(api, request: Request) -> Reply:
    bucket = await api.run(request.require_bucket, None)
    rules = bucket.config(CONFIG)
    if rules is None:
        raise S3Error("NoSuchCORSConfiguration", "The CORS configuration does not exist", 404)
    return Reply(body=cors_rules.configuration_xml(rules))


async def delete_bucket_cors(api, request: Request) -> Reply:
    await api.run(request.require_bucket, None)
    await api.run(request.walrus.configure_bucket, request.bucket, CONFIG, None)
    return Reply(204)


def _bucket(walrus: Walrus, name: str) -> BucketInfo | None:
    if not name:
        return None
    try:
        return walrus.get_bucket(name)
    except S3Error:
        return None


def _forbidden(message: str, method: str, resource_type: str) -> WithFields:
    details = {"Method": method, "ResourceType": resource_type}
    return WithFields("AccessForbidden", message, 403, details)


def preflight(walrus: Walrus, bucket_name: str, key: str, header: Mapping[str, str]) -> Reply:
    """The answer to an ``OPTIONS`` request (no signature is looked at), or the S3Error
    S3 gives: 400 without an ``Origin`` or a valid requested method, 403
    ``AccessForbidden`` when the bucket, its CORS configuration or a matching rule is
    missing. Blocking (reads the bucket): run it in a worker thread."""
    origin = header.get("origin")
    if origin is None:
        raise S3Error("BadRequest", "Insufficient information. Origin request header needed.", 400)
    method = header.get("access-control-request-method")
    bucket = _bucket(walrus, bucket_name)
    if bucket is None:
        raise _forbidden("CORSResponse: Bucket not found", method or "OPTIONS", "BUCKET")
    rules = bucket.config(CONFIG)
    if not rules:
        raise _forbidden(
            "CORSResponse: CORS is not enabled for this bucket.", method or "OPTIONS", "BUCKET"
        )
    if method not in cors_rules.METHODS:
        shown = "null" if method is None else method
        raise S3Error("BadRequest", f"Invalid Access-Control-Request-Method: {shown}", 400)
    headers = cors_rules.requested_headers(header.get("access-control-request-headers"))
    rule = cors_rules.matching_rule(rules, origin, method, headers)
    if rule is None:
        raise _forbidden(NOT_ALLOWED, method, "OBJECT" if key else "BUCKET")
    return Reply(headers=cors_rules.response_headers(rule, origin, headers), content_type=None)


def actual_headers(
    walrus: Walrus, bucket_name: str, method: str, header: Mapping[str, str]
) -> dict[str, str]:
    """The CORS headers of an actual (not preflight) request, errors included: those of
    the first rule allowing its ``Origin`` and method (``Access-Control-Request-Method``
    when sent, as S3 reads it), none otherwise. Blocking: run it in a worker thread."""
    origin = header.get("origin")
    bucket = _bucket(walrus, bucket_name) if origin is not None else None
    rules = bucket.config(CONFIG) if bucket is not None else None
    if not rules or origin is None:
        return {}
    wanted = header.get("access-control-request-method") or method
    rule = cors_rules.matching_rule(rules, origin, wanted)
    return cors_rules.response_headers(rule, origin) if rule is not None else {}
