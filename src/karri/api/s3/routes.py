"""Which S3 operation a request is: method, bucket/key and sub-resource."""

from __future__ import annotations

from karri.api.s3 import (
    access_config,
    attributes,
    buckets,
    cors,
    lifecycle,
    multipart,
    object_lock,
    objects,
    ownership,
    post,
    xml,
)
from karri.api.s3.context import Reply, Request
from karri.api.s3.errors import NOT_IMPLEMENTED
from karri.walrus import S3Error, check_key

# Bucket sub-resources karri does not keep: reading one says "none configured".
ABSENT_CONFIG = {
    "website": (
        "NoSuchWebsiteConfiguration",
        "The specified bucket does not have a website configuration",
    ),
    "encryption": (
        "ServerSideEncryptionConfigurationNotFoundError",
        "The server side encryption configuration was not found",
    ),
    "replication": (
        "ReplicationConfigurationNotFoundError",
        "The replication configuration was not found",
    ),
}
# Bucket sub-resources karri offers no way to set (their PUT is NotImplemented): a GET
# answers as S3 does for a bucket where none was set (SDKs and Terraform read them all).
UNSET_CONFIG = {
    "logging": ("BucketLoggingStatus", ()),
    "notification": ("NotificationConfiguration", ()),
    "requestPayment": ("RequestPaymentConfiguration", (xml.el("Payer", "BucketOwner"),)),
    "accelerate": ("AccelerateConfiguration", ()),
}
UNSUPPORTED = {
    "logging", "notification", "requestPayment", "accelerate", "analytics", "inventory",
    "metrics", "intelligent-tiering", "restore", "select", "torrent", "session",
}  # fmt: skip

BUCKET_ROUTES = {
    ("GET", "acl"): buckets.get_bucket_acl,
    ("PUT", "acl"): buckets.put_bucket_acl,
    ("GET", "versioning"): buckets.get_versioning,
    ("PUT", "versioning"): buckets.put_versioning,
    ("GET", "tagging"): buckets.get_bucket_tagging,
    ("PUT", "tagging"): buckets.put_bucket_tagging,
    ("DELETE", "tagging"): buckets.delete_bucket_tagging,
    ("GET", "lifecycle"): lifecycle.get_bucket_lifecycle_configuration,
    ("PUT", "lifecycle"): lifecycle.put_bucket_lifecycle_configuration,
    ("DELETE", "lifecycle"): lifecycle.delete_bucket_lifecycle,
    ("GET", "location"): buckets.get_location,
    ("GET", "versions"): buckets.list_versions,
    ("GET", "uploads"): multipart.list_uploads,
    ("POST", "delete"): objects.delete_objects,
    ("GET", "object-lock"): object_lock.get_object_lock_configuration,
    ("PUT", "object-lock"): object_lock.put_object_lock_configuration,
    ("GET", "policy"): access_config.get_bucket_policy,
    ("PUT", "policy"): access_config.put_bucket_policy,
    ("DELETE", "policy"): access_config.delete_bucket_policy,
    ("GET", "policyStatus"): access_config.get_bucket_policy_status,
    ("GET", "publicAccessBlock"): access_config.get_public_access_block,
    ("PUT", "publicAccessBlock"): access_config.put_public_access_block,
    ("DELETE", "publicAccessBlock"): access_config.delete_public_access_block,
    ("GET", "cors"): cors.get_bucket_cors,
    ("PUT", "cors"): cors.put_bucket_cors,
    ("DELETE", "cors"): cors.delete_bucket_cors,
    ("GET", "ownershipControls"): ownership.get_bucket_ownership_controls,
    ("PUT", "ownershipControls"): ownership.put_bucket_ownership_controls,
    ("DELETE", "ownershipControls"): ownership.delete_bucket_ownership_controls,
}
OBJECT_ROUTES = {
    ("GET", "acl"): objects.get_object_acl,
    ("PUT", "acl"): objects.put_object_acl,
    ("GET", "tagging"): objects.get_object_tagging,
    ("PUT", "tagging"): objects.put_object_tagging,
    ("DELETE", "tagging"): objects.delete_object_tagging,
    ("GET", "attributes"): attributes.get_object_attributes,
    ("POST", "uploads"): multipart.create_upload,
    ("GET", "uploadId"): multipart.list_parts,
    ("POST", "uploadId"): multipart.complete_upload,
    ("DELETE", "uploadId"): multipart.abort_upload,
    ("PUT", "uploadId"): multipart.upload_part,
    ("GET", "retention"): object_lock.get_object_retention,
    ("PUT", "retention"): object_lock.put_object_retention,
    ("GET", "legal-hold"): object_lock.get_object_legal_hold,
    ("PUT", "legal-hold"): object_lock.put_object_legal_hold,
}
SUBRESOURCES = {
    "acl",
    "versioning",
    "tagging",
    "lifecycle",
    "attributes",
    "location",
    "versions",
    "uploads",
    "delete",
    "uploadId",
    "object-lock",
    "retention",
    "legal-hold",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "cors",
    "ownershipControls",
}


def resolve(request: Request):
    """The handler coroutine and the operation's name (for the request log)."""
    method, query = request.method, request.query
    if method not in ("GET", "PUT", "POST", "DELETE", "HEAD"):
        raise S3Error(
            "MethodNotAllowed", "The specified method is not allowed against this resource.", 405
        )
    control = access_config.s3control_path(request)
    if control is not None and control != access_config.S3CONTROL_KEY:
        return _s3control_not_implemented, "S3Control"  # only the account's block is built
    if control is not None:
        handler = access_config.ACCOUNT_ROUTES.get(method)
        if handler is None:
            raise method_not_allowed()
        return handler, _name(handler)
    if not request.bucket:
        if method == "GET":
            return buckets.list_buckets, "ListBuckets"
        raise S3Error(
            "MethodNotAllowed", "The specified method is not allowed against this resource.", 405
        )
    sub = next((name for name in query if name in SUBRESOURCES), None)
    unsupported = next((name for name in query if name in UNSUPPORTED), None)
    if not request.key:
        absent = next((name for name in query if name in ABSENT_CONFIG), None)
        if absent is not None:
            return _absent(absent, method), f"{method}Bucket{absent}"
        unset = next((name for name in query if name in UNSET_CONFIG), None)
        if unset is not None and method == "GET":
            return _unset(unset), f"GETBucket{unset}"
        if unsupported is not None:
            return _not_implemented, unsupported
        if sub is not None:
            handler = BUCKET_ROUTES.get((method, sub))
            if handler is None:
                raise S3Error(
                    "MethodNotAllowed",
                    "The specified method is not allowed against this resource.",
                    405,
                )
            return handler, _name(handler)
        if method == "GET":
            if query.get("list-type") == "2":
                return buckets.list_objects_v2, "ListObjectsV2"
            return buckets.list_objects, "ListObjects"
        simple = {
            "PUT": buckets.create_bucket,
            "HEAD": buckets.head_bucket,
            "DELETE": buckets.delete_bucket,
            "POST": post.post_object,
        }
        return simple[method], _name(simple[method])
    check_key(request.key)
    if unsupported is not None:
        return _not_implemented, unsupported
    if sub is not None and (method, sub) in OBJECT_ROUTES:
        handler = OBJECT_ROUTES[(method, sub)]
        if handler is multipart.upload_part and "x-amz-copy-source" in request.header:
            return multipart.upload_part_copy, "UploadPartCopy"
        return handler, _name(handler)
    if method == "PUT":
        if "x-amz-copy-source" in request.header:
            return objects.copy_object, "CopyObject"
        return objects.put_object, "PutObject"
    simple = {
        "GET": objects.get_object,
        "HEAD": objects.head_object,
        "DELETE": objects.delete_object,
    }
    if method in simple:
        return simple[method], _name(simple[method])
    raise S3Error(
        "MethodNotAllowed", "The specified method is not allowed against this resource.", 405
    )


def method_not_allowed() -> S3Error:
    return S3Error(
        "MethodNotAllowed", "The specified method is not allowed against this resource.", 405
    )


def _absent(name: str, method: str):
    async def handler(api, request: Request):
        bucket = await api.run(request.require_bucket, None)
        del bucket
        if method == "GET":
            code, message = ABSENT_CONFIG[name]
            raise S3Error(code, message, 404)
        if method == "DELETE":
            return Reply(204)
        raise S3Error(*NOT_IMPLEMENTED)

    return handler


def _unset(name: str):
    root, parts = UNSET_CONFIG[name]

    async def handler(api, request: Request) -> Reply:
        await api.run(request.require_bucket, None)
        return Reply(body=xml.document(root, parts))

    return handler


async def _s3control_not_implemented(api, request: Request):
    raise S3Error(*NOT_IMPLEMENTED)


async def _not_implemented(api, request: Request):
    """A feature karri has not built: said only to the bucket's owner (others get
    NoSuchBucket or AccessDenied first, as for any other bucket configuration)."""
    await api.run(request.require_bucket, None)
    raise S3Error(*NOT_IMPLEMENTED)


def _name(handler) -> str:
    """An operation name for the request log: ``get_bucket_acl`` -> ``GetBucketAcl``."""
    return "".join(part.title() for part in handler.__name__.split("_"))
