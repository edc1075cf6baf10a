"""S3 Object Ownership: Put/Get/DeleteBucketOwnershipControls, ``x-amz-object-ownership``
at CreateBucket, and who owns a new object.

The setting is the bucket's ``ownership`` configuration. ``BucketOwnerEnforced`` turns
ACLs off: the bucket owner owns every object, ACL writes other than the bucket owner's
full control are ``AccessControlListNotSupported`` and ACL reads show the owner's full
control. ``BucketOwnerPreferred`` gives the bucket owner the objects written with
``bucket-owner-full-control``. ``ObjectWriter`` (and a bucket with no setting, as buckets
made before karri kept one) leaves them to their writer. Walrus judges objects by
``BucketInfo.object_acl``, which applies ACLs being off. Any request naming a bucket
may say whose it expects it to be (``x-amz-expected-bucket-owner``).
"""

from __future__ import annotations

import dataclasses
from urllib.parse import unquote

from karri.api.s3 import xml
from karri.api.s3.acl_xml import from_headers
from karri.api.s3.context import Reply, Request
from karri.api.s3.documents import read_document
from karri.walrus import (
    OWNER_ENFORCED,
    OWNERSHIP,
    BucketInfo,
    Listing,
    S3Error,
    Walrus,
    access_denied,
    acls,
    invalid_argument,
)

CONFIG = OWNERSHIP
ENFORCED, PREFERRED, WRITER = OWNER_ENFORCED, "BucketOwnerPreferred", "ObjectWriter"
SETTINGS = (ENFORCED, PREFERRED, WRITER)
# What CreateBucket gives a bucket that asks for nothing: AWS's default since April 2023.
DEFAULT = ENFORCED
HEADER = "x-amz-object-ownership"
OWNER_FULL_CONTROL = "bucket-owner-full-control"


def setting(bucket: BucketInfo) -> str:
    return bucket.config(CONFIG) or WRITER


def not_supported() -> S3Error:
    return S3Error("AccessControlListNotSupported", "The bucket does not allow ACLs", 400)


def _acl_with_ownership() -> S3Error:
    return S3Error(
        "InvalidBucketAclWithObjectOwnership",
        "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        400,
    )


def owner_only(acl: dict, owner: str) -> bool:
    """Whether ``acl`` grants nothing but ``owner``'s full control."""
    return all(grant == [owner, acls.FULL_CONTROL] for grant in acl["grants"])


# -- CreateBucket ------------------------------------------------------------------------


def requested_at_create(request: Request, acl: dict | None) -> str:
    """The setting ``x-amz-object-ownership`` asks for. Without it, ``DEFAULT``, except
    that S3 makes a bucket created with the ``private`` canned ACL (rclone sends it)
    ``BucketOwnerPreferred``. With ACLs off, a bucket ACL granting anyone but the owner
    is refused."""
    value = request.header.get(HEADER)
    if value is None:
        private = (request.header.get("x-amz-acl") or "").strip() == "private"
        value = PREFERRED if private else DEFAULT
    elif value not in SETTINGS:
        raise invalid_argument(f"Invalid x-amz-object-ownership header: {value}")
    if value == ENFORCED and acl is not None and not owner_only(acl, request.principal):
        raise _acl_with_ownership()
    return value


# -- new objects -------------------------------------------------------------------------


def new_object(request: Request, bucket: BucketInfo) -> tuple[str, dict]:
    """The owner and ACL of an object the request writes (x-amz-acl, x-amz-grant-*)."""
    writer = request.principal or bucket.owner
    asked = from_headers(request, writer, bucket.owner, bucket=False)
    return _owned(bucket, writer, request.header.get("x-amz-acl"), asked)


def new_posted_object(bucket: BucketInfo, principal: str, canned: str | None) -> tuple[str, dict]:
    """The owner and ACL of an object a browser form posts (its ``acl`` field)."""
    writer = principal or bucket.owner
    asked = acls.canned(canned, writer, bucket.owner, bucket=False) if canned else None
    return _owned(bucket, writer, canned, asked)


def _owned(bucket: BucketInfo, writer: str, canned: str | None, asked: dict | None):
    mode = setting(bucket)
    owner_control = (canned or "").strip() == OWNER_FULL_CONTROL
    if mode == ENFORCED:
        if asked is not None and not owner_control:
            _owner_only_grants(bucket, asked, canned)
        return bucket.owner, acls.private(bucket.owner)
    if mode == PREFERRED and owner_control:
        return bucket.owner, acls.private(bucket.owner)
    return writer, asked or acls.private(writer)


def check_acl_write(request: Request, bucket: BucketInfo, acl: dict) -> None:
    """PutBucketAcl/PutObjectAcl: with ACLs off only the owner's full control is taken."""
    if bucket.acls_disabled:
        canned = request.header.get("x-amz-acl")
        if (canned or "").strip() != OWNER_FULL_CONTROL:
            _owner_only_grants(bucket, acl, canned)


def _owner_only_grants(bucket: BucketInfo, acl: dict, canned: str | None) -> None:
    """With ACLs off, S3 takes no canned ACL but ``bucket-owner-full-control`` (not even
    ``private``), and grants only when they give the bucket owner full control alone."""
    if canned is not None or not owner_only(acl, bucket.owner):
        raise not_supported()


def shown_listing(bucket: BucketInfo, listing: Listing) -> Listing:
    """A listing as S3 shows it: with ACLs off, every entry is the bucket owner's (those
    written before they went off too)."""
    if not bucket.acls_disabled:
        return listing
    objects = [item._replace(owner=bucket.owner) for item in listing.objects]
    return dataclasses.replace(listing, objects=objects)


# -- the OwnershipControls sub-resource ---------------------------------------------------


def _parse(body: bytes) -> str:
    root = xml.parse(body, "OwnershipControls")
    rules = list(root)
    if len(rules) != 1 or xml.local(rules[0].tag) != "Rule" or len(rules[0]) != 1:
        raise xml.malformed()
    value = xml.text(rules[0], "ObjectOwnership")
    if value not in SETTINGS:
        raise xml.malformed()
    return value


async def put_bucket_ownership_controls(api, request: Request) -> Reply:
    bucket = await api.run(request.require_bucket, None)
    value = _parse(await read_document(request))
    if value == ENFORCED and not owner_only(bucket.acl, bucket.owner):
        raise _acl_with_ownership()
    await api.run(request.walrus.configure_bucket, request.bucket, CONFIG, value)
    return Reply()


async def get_bucket_ownership_controls(api, request: Request) -> Reply:
    bucket = await api.run(request.require_bucket, None)
    value = bucket.config(CONFIG)
    if value is None:
        raise S3Error(
            "OwnershipControlsNotFoundError", "The bucket ownership controls were not found", 404
        )
    rule = f"<Rule>{xml.el('ObjectOwnership', value)}</Rule>"
    return Reply(body=xml.document("OwnershipControls", [rule]))


async def delete_bucket_ownership_controls(api, request: Request) -> Reply:
    await api.run(request.require_bucket, None)
    await api.run(request.walrus.configure_bucket, request.bucket, CONFIG, None)
    return Reply(204)


# -- x-amz-expected-bucket-owner ---------------------------------------------------------


def check_expected_owners(walrus: Walrus, request: Request, operation: str) -> None:
    """AccessDenied when ``x-amz-expected-bucket-owner`` (or, for a copy,
    ``x-amz-source-expected-bucket-owner``) names another account than the bucket's owner.
    A bucket that does not exist is left to the handler (NoSuchBucket). Blocking."""
    header = request.header
    expected = header.get("x-amz-expected-bucket-owner")
    if expected is not None and request.bucket and operation != "CreateBucket":
        _require_owner(walrus, request.bucket, expected)
    source = header.get("x-amz-source-expected-bucket-owner")
    copied = header.get("x-amz-copy-source")
    if source is not None and copied is not None:
        name = unquote(copied.partition("?")[0]).lstrip("/").partition("/")[0]
        if name:
            _require_owner(walrus, name, source)


def _require_owner(walrus: Walrus, name: str, expected: str) -> None:
    try:
        owner = walrus.get_bucket(name).owner
    except S3Error:
        return
    if owner != expected.strip():
        raise access_denied()
