"""Bucket operations: the service listing, create/head/delete, ACL, versioning, tagging,
location, and the object listings (v1, v2, versions)."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import quote

from karri.api.s3 import ownership, xml
from karri.api.s3.acl_xml import from_headers as acl_from_headers
from karri.api.s3.acl_xml import owner_xml, policy_xml, requested
from karri.api.s3.authorize import object_lock_requested
from karri.api.s3.context import Reply, Request
from karri.api.s3.documents import read_document
from karri.walrus import (
    ListedObject,
    S3Error,
    access_denied,
    acls,
    bundle_bucket,
    check_bucket_name,
    invalid_argument,
)

MAX_BUCKET_TAGS = 50
_LOCATION = re.compile(r"[A-Za-z0-9-]{0,64}")


def _authenticated(request: Request) -> None:
    if not request.principal:
        raise access_denied()


MAX_BUCKETS = 10_000


async def list_buckets(api, request: Request) -> Reply:
    _authenticated(request)
    prefix = request.query.get("prefix", "")
    token = request.query.get("continuation-token")
    paged = {"max-buckets", "continuation-token", "prefix", "bucket-region"} & request.query.keys()
    region = request.query.get("bucket-region")
    limit = request.int_param("max-buckets", MAX_BUCKETS, low=1, high=MAX_BUCKETS)
    if token == "":
        raise invalid_argument("The continuation token provided is incorrect")
    after = _untoken(token) if token is not None else ""
    locations = None
    if region is not None:  # the buckets made without a LocationConstraint are the cloud's
        locations = (region, "") if region == _region(api, "") else (region,)
    found = await api.run(
        lambda: request.walrus.list_buckets(
            request.principal,
            prefix=prefix,
            after=after,
            limit=limit + 1 if paged else None,
            locations=locations,
        )
    )
    entries = "".join(
        f"<Bucket>{xml.el('Name', b.name)}{xml.el('CreationDate', b.created_at)}"
        f"{xml.el('BucketRegion', _region(api, b.location))}</Bucket>"
        for b in found[:limit]
    )
    parts = [owner_xml(request, request.principal), f"<Buckets>{entries}</Buckets>"]
    if paged and len(found) > limit:
        parts.append(xml.el("ContinuationToken", _token(found[limit - 1].name)))
    if "prefix" in request.query:
        parts.append(xml.el("Prefix", prefix))
    return Reply(body=xml.document("ListAllMyBucketsResult", parts))


async def create_bucket(api, request: Request) -> Reply:
    _authenticated(request)
    check_bucket_name(request.bucket)
    body = await read_document(request)
    location = ""
    if body.strip():
        root = xml.parse(body, "CreateBucketConfiguration")
        location = xml.text(root, "LocationConstraint", "") or ""
        if not _LOCATION.fullmatch(location):
            raise S3Error(
                "InvalidLocationConstraint", "The specified location-constraint is not valid", 400
            )
    acl = acl_from_headers(request, request.principal, None, bucket=True)
    configs = {ownership.CONFIG: ownership.requested_at_create(request, acl)}
    object_lock = object_lock_requested(request)
    await api.run(
        lambda: request.walrus.create_bucket(
            request.bucket,
            request.principal,
            location=location,
            acl=acl,
            object_lock=object_lock,
            system_name=request.bucket == bundle_bucket(request.identity.access_key),
            configs=configs,
        )
    )
    return Reply(headers={"location": f"/{request.bucket}"})


async def head_bucket(api, request: Request) -> Reply:
    bucket = await api.run(request.require_bucket, acls.READ)
    return Reply(headers={"x-amz-bucket-region": _region(api, bucket.location)})


def _region(api, location: str) -> str:
    """Where a bucket is: its LocationConstraint, else the cloud's region."""
    return location or api.region or "us-east-1"


async def delete_bucket(api, request: Request) -> Reply:
    walrus = request.walrus

    def work() -> None:
        request.require_bucket(None)
        walrus.delete_bucket(request.bucket)

    await api.run(work)
    return Reply(204)


async def get_location(api, request: Request) -> Reply:
    bucket = await api.run(request.require_bucket, None)
    return Reply(body=xml.document("LocationConstraint", [xml.esc(bucket.location)]))


async def get_bucket_acl(api, request: Request) -> Reply:
    bucket = await api.run(request.require_bucket, acls.READ_ACP)
    return Reply(body=policy_xml(request, bucket.acl))


async def put_bucket_acl(api, request: Request) -> Reply:
    bucket = await api.run(request.require_bucket, acls.WRITE_ACP)
    request.body = await read_document(request)
    acl = requested(request, bucket.owner, None, bucket=True)
    ownership.check_acl_write(request, bucket, acl)
    await api.run(lambda: request.walrus.update_bucket(request.bucket, acl=acl))
    return Reply()


async def get_versioning(api, request: Request) -> Reply:
    bucket = await api.run(request.require_bucket, None)
    status = xml.el("Status", bucket.versioning) if bucket.versioning else ""
    return Reply(body=xml.document("VersioningConfiguration", [status]))


async def put_versioning(api, request: Request) -> Reply:
    await api.run(request.require_bucket, None)
    root = xml.parse(await read_document(request), "VersioningConfiguration")
    status = xml.text(root, "Status")
    if status not in ("Enabled", "Suspended"):
        raise xml.malformed()
    mfa = xml.text(root, "MfaDelete")
    if mfa not in (None, "Disabled"):
        raise S3Error("NotImplemented", "MFA delete is not supported", 501)
    await api.run(lambda: request.walrus.update_bucket(request.bucket, versioning=status))
    return Reply()


def tags_xml(tags: dict[str, str]) -> bytes:
    entries = "".join(f"<Tag>{xml.el('Key', k)}{xml.el('Value', v)}</Tag>" for k, v in tags.items())
    return xml.document("Tagging", [f"<TagSet>{entries}</TagSet>"])


def parse_tags(body: bytes, limit: int) -> dict[str, str]:
    root = xml.parse(body, "Tagging")
    if [xml.local(e.tag) for e in root] != ["TagSet"]:  # S3's schema, strictly
        raise xml.malformed()
    tags: dict[str, str] = {}
    for tag in root[0]:
        if xml.local(tag.tag) != "Tag" or sorted(xml.local(e.tag) for e in tag) != [
            "Key",
            "Value",
        ]:
            raise xml.malformed()
        key, value = xml.text(tag, "Key"), xml.text(tag, "Value")
        if key is None or value is None:
            raise xml.malformed()
        check_tag(key, value)
        if key in tags:
            raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key", 400)
        tags[key] = value
    if len(tags) > limit:
        raise S3Error("BadRequest", f"Object tags cannot be greater than {limit}", 400)
    return tags


def check_tag(key: str, value: str) -> None:
    if not 1 <= len(key) <= 128:
        raise S3Error("InvalidTag", "The TagKey you have provided is invalid", 400)
    if len(value) > 256:
        raise S3Error("InvalidTag", "The TagValue you have provided is invalid", 400)
    if key.startswith("aws:"):
        raise S3Error("InvalidTag", "Your TagKey cannot be prefixed with aws:", 400)


async def get_bucket_tagging(api, request: Request) -> Reply:
    bucket = await api.run(request.require_bucket, None)
    if bucket.tags is None:
        raise S3Error("NoSuchTagSet", "The TagSet does not exist", 404)
    return Reply(body=tags_xml(bucket.tags))


async def put_bucket_tagging(api, request: Request) -> Reply:
    await api.run(request.require_bucket, None)
    tags = parse_tags(await read_document(request), MAX_BUCKET_TAGS)
    await api.run(lambda: request.walrus.update_bucket(request.bucket, tags=tags))
    return Reply(204)


async def delete_bucket_tagging(api, request: Request) -> Reply:
    await api.run(request.require_bucket, None)
    await api.run(lambda: request.walrus.update_bucket(request.bucket, tags=None))
    return Reply(204)


# -- listings ---------------------------------------------------------------------------


def _encoder(request: Request):
    encoding = request.query.get("encoding-type")
    if encoding is None:
        return xml.esc, ""
    if encoding != "url":
        raise invalid_argument("Invalid Encoding Method specified in Request")
    return (lambda value: xml.esc(quote(value, safe="/"))), "<EncodingType>url</EncodingType>"


def _contents(request: Request, item: ListedObject, encode, owners: dict | None) -> str:
    """One <Contents>; ``owners`` memoizes owner XML by account (None: no owner)."""
    owner = ""
    if owners is not None:
        owner = owners.get(item.owner) or owners.setdefault(
            item.owner, owner_xml(request, item.owner)
        )
    return (
        f"<Contents><Key>{encode(item.key)}</Key>"
        f"<LastModified>{item.last_modified}</LastModified>"
        f'<ETag>"{item.etag}"</ETag><Size>{item.size}</Size>{owner}'
        "<StorageClass>STANDARD</StorageClass></Contents>"
    )


def _prefixes(prefixes: list[str], encode) -> str:
    return "".join(
        f"<CommonPrefixes><Prefix>{encode(p)}</Prefix></CommonPrefixes>" for p in prefixes
    )


def _tag(name: str, value: str, encode) -> str:
    return f"<{name}>{encode(value)}</{name}>"


async def _listing(api, request: Request, after: str, max_keys: int):
    walrus = request.walrus
    prefix = request.query.get("prefix", "")
    delimiter = request.query.get("delimiter", "")

    def work():
        bucket = request.require_bucket(acls.READ)
        listing = walrus.list_objects(
            request.bucket, prefix, delimiter=delimiter, after=after, max_keys=max_keys
        )
        return ownership.shown_listing(bucket, listing)

    return await api.run(work), prefix, delimiter


async def list_objects(api, request: Request) -> Reply:
    encode, encoding = _encoder(request)
    max_keys = request.int_param("max-keys", 1000)
    marker = request.query.get("marker", "")
    listing, prefix, delimiter = await _listing(api, request, marker, max_keys)
    parts = [
        xml.el("Name", request.bucket),
        _tag("Prefix", prefix, encode),
        _tag("Marker", marker, encode),
        xml.el("MaxKeys", max_keys),
    ]
    if delimiter:
        parts.append(_tag("Delimiter", delimiter, encode))
    parts.append(xml.el("IsTruncated", listing.truncated))
    if listing.truncated and delimiter:
        parts.append(_tag("NextMarker", listing.next_marker, encode))
    owners: dict[str, str] = {}
    parts += [_contents(request, item, encode, owners) for item in listing.objects]
    parts.append(_prefixes(listing.prefixes, encode))
    parts.append(encoding)
    return Reply(body=xml.document("ListBucketResult", parts))


def _token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _untoken(token: str) -> str:
    try:
        return base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid_argument("The continuation token provided is incorrect") from None


async def list_objects_v2(api, request: Request) -> Reply:
    encode, encoding = _encoder(request)
    max_keys = request.int_param("max-keys", 1000)
    token = request.query.get("continuation-token")
    start_after = request.query.get("start-after", "")
    if token == "":
        raise invalid_argument("The continuation token provided is incorrect")
    after = _untoken(token) if token is not None else start_after
    if token is not None and start_after > after:
        after = start_after
    listing, prefix, delimiter = await _listing(api, request, after, max_keys)
    fetch_owner = request.query.get("fetch-owner", "").lower() == "true"
    parts = [xml.el("Name", request.bucket), _tag("Prefix", prefix, encode)]
    if token is not None:
        parts.append(xml.el("ContinuationToken", token))
    if start_after:
        parts.append(_tag("StartAfter", start_after, encode))
    parts.append(xml.el("KeyCount", len(listing.objects) + len(listing.prefixes)))
    parts.append(xml.el("MaxKeys", max_keys))
    if delimiter:
        parts.append(_tag("Delimiter", delimiter, encode))
    parts.append(xml.el("IsTruncated", listing.truncated))
    if listing.truncated:
        parts.append(xml.el("NextContinuationToken", _token(listing.next_marker)))
    owners = {} if fetch_owner else None
    parts += [_contents(request, item, encode, owners) for item in listing.objects]
    parts.append(_prefixes(listing.prefixes, encode))
    parts.append(encoding)
    return Reply(body=xml.document("ListBucketResult", parts))


async def list_versions(api, request: Request) -> Reply:
    encode, encoding = _encoder(request)
    walrus = request.walrus
    max_keys = request.int_param("max-keys", 1000)
    prefix = request.query.get("prefix", "")
    delimiter = request.query.get("delimiter", "")
    key_marker = request.query.get("key-marker", "")
    version_marker = request.query.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise invalid_argument("A version-id marker cannot be specified without a key marker.")

    def work():
        bucket = request.require_bucket(acls.READ)
        return bucket, walrus.list_versions(
            request.bucket,
            prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            version_marker=version_marker,
            max_keys=max_keys,
        )

    bucket, listing = await api.run(work)
    listing = ownership.shown_listing(bucket, listing)
    parts = [
        xml.el("Name", request.bucket),
        _tag("Prefix", prefix, encode),
        _tag("KeyMarker", key_marker, encode),
        xml.el("VersionIdMarker", version_marker),
        xml.el("MaxKeys", max_keys),
    ]
    if delimiter:
        parts.append(_tag("Delimiter", delimiter, encode))
    parts.append(xml.el("IsTruncated", listing.truncated))
    if listing.truncated:
        parts.append(_tag("NextKeyMarker", listing.next_marker, encode))
        if listing.next_version_marker:
            parts.append(xml.el("NextVersionIdMarker", listing.next_version_marker))
    for item in listing.objects:
        common = (
            f"<Key>{encode(item.key)}</Key>{xml.el('VersionId', item.version_id)}"
            f"{xml.el('IsLatest', item.is_latest)}{xml.el('LastModified', item.last_modified)}"
        )
        if item.delete_marker:
            parts.append(f"<DeleteMarker>{common}{owner_xml(request, item.owner)}</DeleteMarker>")
        else:
            parts.append(
                f'<Version>{common}<ETag>"{item.etag}"</ETag>{xml.el("Size", item.size)}'
                f"{owner_xml(request, item.owner)}<StorageClass>STANDARD</StorageClass></Version>"
            )
    parts.append(_prefixes(listing.prefixes, encode))
    parts.append(encoding)
    return Reply(body=xml.document("ListVersionsResult", parts))
