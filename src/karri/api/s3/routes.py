"""Which S3 operation a request is: method, bucket/key and sub-resource."""

from __future__ import annotations

from karri.api.s3 import buckets, multipart, objects, post
from karri.api.s3.context import Request
from karri.api.s3.errors import NOT_IMPLEMENTED
from karri.walrus import S3Error, check_key

# Bucket sub-resources karri does not keep: reading one says "none configured".
ABSENT_CONFIG = {
    "policy": ("NoSuchBucketPolicy", "The bucket policy does not exist"),
    "cors": ("NoSuchCORSConfiguration", "The CORS configuration does not exist"),
    "lifecycle": ("NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"),
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
    "object-lock": (
        "ObjectLockConfigurationNotFoundError",
        "Object Lock configuration does not exist for this bucket",
    ),
    "ownershipControls": (
        "OwnershipControlsNotFoundError",
        "The bucket ownership controls were not found",
    ),
    "publicAccessBlock": (
        "NoSuchPublicAccessBlockConfiguration",
        "The public access block configuration was not found",
    ),
}
UNSUPPORTED = {
    "logging", "notification", "requestPayment", "accelerate", "analytics", "inventory",
    "metrics", "intelligent-tiering", "restore", "select", "torrent", "legal-hold",
    "retention", "attributes", "session",
}  # fmt: skip

BUCKET_ROUTES = {
    ("GET", "acl"): buckets.get_bucket_acl,
    ("PUT", "acl"): buckets.put_bucket_acl,
    ("GET", "versioning"): buckets.get_versioning,
    ("PUT", "versioning"): buckets.put_versioning,
    ("GET", "tagging"): buckets.get_bucket_tagging,
    ("PUT", "tagging"): buckets.put_bucket_tagging,
    ("DELETE", "tagging"): buckets.delete_bucket_tagging,
    ("GET", "location"): buckets.get_location,
    ("GET", "versions"): buckets.list_versions,
    ("GET", "uploads"): multipart.list_uploads,
    ("POST", "delete"): objects.delete_objects,
}
OBJECT_ROUTES = {
    ("GET", "acl"): objects.get_object_acl,
    ("PUT", "acl"): objects.put_object_acl,
    ("GET", "tagging"): objects.get_object_tagging,
    ("PUT", "tagging"): objects.put_object_tagging,
    ("DELETE", "tagging"): objects.delete_object_tagging,
    ("POST", "uploads"): multipart.create_upload,
    ("GET", "uploadId"): multipart.list_parts,
    ("POST", "uploadId"): multipart.complete_upload,
    ("DELETE", "uploadId"): multipart.abort_upload,
    ("PUT", "uploadId"): multipart.upload_part,
}
SUBRESOURCES = {
    "acl",
    "versioning",
    "tagging",
    "location",
    "versions",
    "uploads",
    "delete",
    "uploadId",
}


def resolve(request: Request):
    """The handler coroutine and the operation's name (for the request log)."""
    method, query = request.method, request.query
    if method not in ("GET", "PUT", "POST", "DELETE", "HEAD"):
        raise S3Error(
            "MethodNotAllowed", "The specified method is not allowed against this resource.", 405
        )
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


def _absent(name: str, method: str):
    async def handler(api, request: Request):
        bucket = await api.run(
            request.walrus.require_bucket, request.principal, request.bucket, None
        )
        del bucket
        if method == "GET":
            code, message = ABSENT_CONFIG[name]
            raise S3Error(code, message, 404)
        if method == "DELETE":
            from karri.api.s3.context import Reply

            return Reply(204)
        raise S3Error(*NOT_IMPLEMENTED)

    return handler


async def _not_implemented(api, request: Request):
    """A feature karri has not built: said only to the bucket's owner (others get
    NoSuchBucket or AccessDenied first, as for any other bucket configuration)."""
    await api.run(request.walrus.require_bucket, request.principal, request.bucket, None)
    raise S3Error(*NOT_IMPLEMENTED)


def _name(handler) -> str:
    """An operation name for the request log: ``get_bucket_acl`` -> ``GetBucketAcl``."""
    return "".join(part.title() for part in handler.__name__.split("_"))
