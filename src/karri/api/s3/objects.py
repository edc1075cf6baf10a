"""Object operations: PUT (streamed to disk), GET/HEAD (zero-copy), DELETE, multi-object
delete, COPY, and object ACLs and tags."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from urllib.parse import unquote

from karri.api.s3 import ownership, xml
from karri.api.s3.acl_xml import policy_xml, requested
from karri.api.s3.authorize import BYPASS
from karri.api.s3.buckets import parse_tags, tags_xml
from karri.api.s3.context import FileReply, Reply, Request
from karri.api.s3.documents import digests_for, read_document, require_content_md5
from karri.api.s3.headers import (
    MAX_OBJECT_TAGS,
    apply_overrides,
    check_conditions,
    object_headers,
    parse_range,
    stored_headers,
    tagging_header,
    user_metadata,
)
from karri.api.s3.lifecycle import expiration_header
from karri.api.s3.object_lock import lock_headers, may_bypass, requested_lock
from karri.api.s3.payload import SMALL_BODY, BodyCheck, pump, read_small
from karri.numbers import natural
from karri.walrus import (
    INLINE_MAX,
    ObjectBody,
    ObjectInfo,
    PutOptions,
    S3Error,
    access_denied,
    acls,
    check_key,
    invalid_argument,
    precondition_failed,
)

MAX_PUT = 5 * 1024**3
MAX_DELETE = 1000


def _content_length(request: Request, limit: int) -> int | None:
    declared = request.header.get("x-amz-decoded-content-length") or request.header.get(
        "content-length"
    )
    if declared is None:
        if "chunked" in request.header.get("transfer-encoding", "").lower():
            raise S3Error(  # S3's answer to HTTP chunked bodies (aws-chunked is the S3 way)
                "NotImplemented",
                "A header you provided implies functionality that is not implemented",
                501,
            )
        return None
    length = natural(declared)
    if length is None:
        raise invalid_argument("Invalid Content-Length")
    if length > limit:
        raise S3Error(
            "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400
        )
    return length


async def store_body(api, request: Request, commit, limit: int = MAX_PUT, inline=None):
    """Stream the body into Walrus (an ``ObjectBody``), check it, and ``commit(body,
    checksums)``.

    A small body is read here and written, checked and committed in one worker-thread
    call; a large one streams through ``pump`` 4 MiB at a time. With ``inline`` (an async
    ``inline(body, checksums)``), a body of at most INLINE_MAX bytes is checked here and
    kept in memory: no file at all. Nothing is left behind if anything fails."""
    _content_length(request, limit)
    digests, _algorithm = digests_for(request)
    wire_length = natural(request.header.get("content-length", ""))  # aws-chunked: framed
    small = wire_length is not None and wire_length <= SMALL_BODY
    if inline is not None and small and wire_length <= INLINE_MAX:
        raw = await read_small(request.receive, wire_length)
        body = request.walrus.body(digests, inline=True)
        check = BodyCheck(request.identity.payload, request.header, body.write, digests)
        check.feed(raw)
        return await inline(body, check.finish())
    body = request.walrus.body(digests)
    check = BodyCheck(request.identity.payload, request.header, body.write, digests)

    def finish():
        if check.size > limit:
            raise S3Error(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400
            )
        return commit(body, check.finish())

    try:
        if small:
            raw = await read_small(request.receive, wire_length)

            def all_at_once():
                check.feed(raw)
                return finish()

            return await api.run(all_at_once)
        await pump(request.receive, check.feed, api.executor, limit=limit + 64 * 1024 * 1024)
        return await api.run(finish)
    except BaseException:
        await api.run(body.abort)
        raise


def _checksum_headers(checksums: dict[str, str]) -> dict[str, str]:
    return {f"x-amz-checksum-{name.lower()}": value for name, value in checksums.items()}


def version_header(info: ObjectInfo) -> dict[str, str]:
    return {"x-amz-version-id": info.version_id} if info.version_id != "null" else {}


async def put_object(api, request: Request) -> Reply:
    walrus = request.walrus
    bucket = request.require_bucket(acls.WRITE)  # cached
    owner, acl = ownership.new_object(request, bucket)
    headers, meta, tags = stored_headers(request), user_metadata(request), tagging_header(request)
    lock = requested_lock(request, bucket, body=True)
    if_absent, if_match = write_conditions(request)
    if if_absent or if_match is not None:  # before the body; checked again by the commit
        await api.run(check_write_conditions, request, if_absent, if_match)

    def options(checksums: dict[str, str]) -> PutOptions:
        return PutOptions(
            owner, acl, headers, meta, tags, checksums, if_absent, bucket.owner, if_match, lock
        )

    def commit(body: ObjectBody, checksums: dict[str, str]) -> tuple[ObjectInfo, dict[str, str]]:
        return walrus.put(request.bucket, request.key, body, options(checksums)).result(), checksums

    async def inline(body: ObjectBody, checksums: dict[str, str]):
        stored = walrus.put(request.bucket, request.key, body, options(checksums))
        return await asyncio.wrap_future(stored), checksums

    with conflicts_raced(if_absent, if_match):
        info, checksums = await store_body(api, request, commit, inline=inline)
    return Reply(
        headers={
            "etag": f'"{info.etag}"',
            **version_header(info),
            **_checksum_headers(checksums),
            **expiration_header(bucket, info),
        }
    )


def write_conditions(request: Request) -> tuple[bool, str | None]:
    """A conditional write's ``If-None-Match: *`` and ``If-Match`` (an ETag)."""
    return request.header.get("if-none-match") == "*", request.header.get("if-match")


@contextmanager
def conflicts_raced(if_absent: bool, if_match: str | None) -> Iterator[None]:
    """A conditional write whose condition held when ``check_write_conditions`` judged it
    (on arrival, before the body) but no longer at its commit: another write or a delete
    came meanwhile. S3 answers ConditionalRequestConflict (409) for such a conflict,
    PreconditionFailed (412) only for a condition that failed when first checked."""
    try:
        yield
    except S3Error as error:
        raced = error.code == "PreconditionFailed" and (if_absent or if_match is not None)
        if not raced and not (error.code == "NoSuchKey" and if_match is not None):
            raise
        raise S3Error(
            "ConditionalRequestConflict",
            "A conflicting operation occurred. If using PutObject you can retry the request. "
            "If using multipart upload you should initiate another CreateMultipartUpload "
            "request and re-upload each part.",
            409,
        ) from None


def check_write_conditions(request: Request, if_absent: bool, if_match: str | None) -> None:
    """PreconditionFailed (or NoSuchKey for ``If-Match``) early, before a body is read;
    the commit judges the conditions again, atomically (``Walrus.commit_object_later``)."""
    try:
        info = request.walrus.head_object(request.bucket, request.key)
    except S3Error as error:
        if error.code != "NoSuchKey" or if_match is not None:
            raise
        return  # If-None-Match holds
    if if_absent or check_conditions({"if-match": if_match or "*"}, info):
        raise precondition_failed()


@contextmanager
def _missing_hidden(request: Request, bucket: str) -> Iterator[None]:
    """A missing key or version is AccessDenied to whoever may not list the bucket, as in
    S3: NoSuchKey would tell them which keys exist."""
    try:
        yield
    except S3Error as error:
        if error.code in ("NoSuchKey", "NoSuchVersion") and not _may_list(request, bucket):
            raise access_denied() from None
        raise


def _may_list(request: Request, bucket: str) -> bool:
    """Whether the policies (s3:ListBucket) or the bucket's ACL let the caller list it (the
    public access block in force applies; a policy's grant of the object is not one)."""
    access = request.access if bucket == request.bucket else request.source_access
    if access.lists:
        return True
    try:
        acl = request.walrus.get_bucket(bucket).acl
    except S3Error:
        return False
    return replace(access, by_policy=False).allows(acl, request.principal, acls.READ)


def readable(request: Request, permission: str = acls.READ):
    """Open (or head) the requested version if the requester may read it."""
    walrus = request.walrus
    version_id = request.query.get("versionId")

    def work(open_it: bool):
        with _missing_hidden(request, request.bucket):
            if open_it:
                reader = walrus.open_object(request.bucket, request.key, version_id)
                info = reader.info
            else:
                reader, info = None, walrus.head_object(request.bucket, request.key, version_id)
        bucket = walrus.get_bucket(request.bucket)
        acl = bucket.object_acl(info.acl)
        if not request.access.allows(acl, request.principal, permission):
            if reader is not None:
                reader.close()
            raise access_denied()
        return reader, info

    return work


def part_span(info: ObjectInfo, number: int | None) -> tuple[int, int] | None:
    """The bytes of part ``number`` (GET/HEAD ``?partNumber=``; None if it was no number): a
    range over a multipart object's part; part 1 of any other object is all of it (None:
    no range)."""
    sizes = [size for size, _checksums in info.part_list] or [s for _b, s in info.segments]
    if number is None:
        raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", 416)
    if info.parts and len(sizes) == info.parts and 1 <= number <= len(sizes):
        start = sum(sizes[: number - 1])
        return start, start + sizes[number - 1]
    if number == 1 and not (info.parts and len(sizes) == info.parts):
        return None
    raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", 416)


async def get_object(api, request: Request) -> Reply | FileReply:
    # A metadata read and an open(): cheaper here than a trip to a worker thread.
    reader, info = readable(request)(request.method == "GET")
    try:
        headers = object_headers(
            info, checksums=request.header.get("x-amz-checksum-mode", "").upper() == "ENABLED"
        )
        granted = partial(api.authorization.grants, request)
        headers.update(lock_headers(info, granted))
        outcome = check_conditions(request.header, info)
        if outcome == 412:
            raise precondition_failed()
        if outcome == 304:
            kept = {
                k: v
                for k, v in headers.items()
                if k in ("etag", "last-modified", "x-amz-version-id")
            }
            return Reply(304, headers=kept, content_type=None)
        apply_overrides(request, headers)
        headers.update(expiration_header(request.walrus.get_bucket(request.bucket), info))
        span = parse_range(request.header.get("range"), info.size)
        part = request.query.get("partNumber")
        if part is not None:
            if span is not None:
                raise S3Error(
                    "InvalidRequest",
                    "Cannot specify both Range header and partNumber query parameter.",
                    400,
                )
            number = natural(part)
            span = part_span(info, number)
            if info.parts:
                headers["x-amz-mp-parts-count"] = str(info.parts)
        status, start, length = 200, 0, info.size
        if span is not None:
            start, end = span
            status, length = 206, end - start
            headers["content-range"] = f"bytes {start}-{end - 1}/{info.size}"
            kind = headers.get("x-amz-checksum-type")
            for name in [h for h in headers if h.startswith("x-amz-checksum-")]:
                del headers[name]
            if part is not None and kind and info.part_list:
                part_sums = info.part_list[(number or 1) - 1][1]
                headers.update(
                    _checksum_headers({a: v for a, v in part_sums.items() if a in info.checksums})
                )
                headers["x-amz-checksum-type"] = kind
    except BaseException:
        if reader is not None:
            reader.close()
        raise
    if reader is None:  # HEAD
        headers["content-length"] = str(length)
        return Reply(status, headers=headers, content_type=None)
    if reader.data is not None:  # a small object: its bytes came with its record
        reader.close()
        return Reply(status, reader.data[start : start + length], headers, content_type=None)
    return FileReply(reader, start, length, status, headers)


head_object = get_object


async def delete_object(api, request: Request) -> Reply:
    walrus = request.walrus

    bucket = request.require_bucket(acls.WRITE)
    version_id = request.query.get("versionId")
    result = await asyncio.wrap_future(
        walrus.delete_object_later(
            request.bucket, request.key, version_id, bypass=may_bypass(request, bucket)
        )
    )
    headers = {}
    if result.delete_marker:
        headers["x-amz-delete-marker"] = "true"
    if result.version_id and result.version_id != "null":
        headers["x-amz-version-id"] = result.version_id
    return Reply(204, headers=headers)


async def delete_objects(api, request: Request) -> Reply:
    walrus = request.walrus
    await _may_write(api, request)
    body = await read_document(request)
    require_content_md5(request)
    root = xml.parse(body, "Delete")
    quiet = (xml.text(root, "Quiet", "false") or "").strip().lower() == "true"
    targets = []
    for item in xml.children(root, "Object"):
        key = xml.text(item, "Key")
        if key is None:
            raise xml.malformed()
        targets.append((key, xml.text(item, "VersionId")))
    if not targets or len(targets) > MAX_DELETE:
        raise xml.malformed()

    bypass = may_bypass(request, await api.run(walrus.get_bucket, request.bucket))

    def work() -> list[str]:
        parts = []
        for key, version_id in targets:
            try:
                check_key(key)
                action = "s3:DeleteObjectVersion" if version_id else "s3:DeleteObject"
                if not api.authorization.allows(request, action, key):
                    raise access_denied()
                if bypass and not api.authorization.allows(request, BYPASS, key):
                    raise access_denied()
                result = walrus.delete_object(request.bucket, key, version_id, bypass=bypass)
            except S3Error as error:
                parts.append(
                    f"<Error>{xml.el('Key', key)}"
                    f"{xml.el('VersionId', version_id) if version_id else ''}"
                    f"{xml.el('Code', error.code)}{xml.el('Message', error.message)}</Error>"
                )
                continue
            if quiet:
                continue
            entry = xml.el("Key", key)
            if version_id:
                entry += xml.el("VersionId", version_id)
            if result.delete_marker:
                entry += xml.el("DeleteMarker", True)
                if result.version_id and not version_id:
                    entry += xml.el("DeleteMarkerVersionId", result.version_id)
            parts.append(f"<Deleted>{entry}</Deleted>")
        return parts

    return Reply(body=xml.document("DeleteResult", await api.run(work)))


def copy_source(request: Request) -> tuple[str, str, str | None]:
    """(bucket, key, version) from x-amz-copy-source."""
    raw = request.header["x-amz-copy-source"]
    path, _, query = raw.partition("?")
    version_id = None
    if query:
        name, _, value = query.partition("=")
        if name != "versionId":
            raise invalid_argument("Unsupported copy source parameter.")
        version_id = unquote(value)
    path = unquote(path, errors="strict").lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"
        )
    return bucket, key, version_id


def read_source(request: Request, bucket: str, key: str, version_id: str | None) -> ObjectInfo:
    """The copy source, if the requester may read it and its conditions hold."""
    with _missing_hidden(request, bucket):
        info = request.walrus.head_object(bucket, key, version_id)
    acl = request.walrus.get_bucket(bucket).object_acl(info.acl)
    if not request.source_access.allows(acl, request.principal, acls.READ):
        raise access_denied()
    if check_conditions(request.header, info, "x-amz-copy-source-"):
        raise precondition_failed()
    return info


async def copy_object(api, request: Request) -> Reply:
    walrus = request.walrus
    src_bucket, src_key, src_version = copy_source(request)
    directive = request.header.get("x-amz-metadata-directive", "COPY").upper()
    tag_directive = request.header.get("x-amz-tagging-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE") or tag_directive not in ("COPY", "REPLACE"):
        raise invalid_argument("Unknown metadata directive.")
    headers = meta = tags = None
    if directive == "REPLACE":
        headers, meta = stored_headers(request), user_metadata(request)
    if tag_directive == "REPLACE":
        tags = tagging_header(request) or {}
    same = (src_bucket, src_key) == (request.bucket, request.key) and src_version is None
    if (
        same
        and directive == "COPY"
        and "x-amz-storage-class" not in request.header
        and not any(h.startswith("x-amz-server-side-encryption") for h in request.header)
        and tag_directive == "COPY"
    ):
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect location "
            "or encryption attributes.",
            400,
        )

    if_absent, if_match = write_conditions(request)

    def work() -> ObjectInfo:
        bucket = request.require_bucket(acls.WRITE)
        source = read_source(request, src_bucket, src_key, src_version)
        owner, acl = ownership.new_object(request, bucket)
        lock = requested_lock(request, bucket)
        if if_absent or if_match is not None:
            check_write_conditions(request, if_absent, if_match)
        with conflicts_raced(if_absent, if_match):
            return walrus.copy_object(
                source,
                request.bucket,
                request.key,
                owner=owner,
                acl=acl,
                headers=headers,
                meta=meta,
                tags=tags,
                lock=lock,
                if_absent=if_absent,
                if_match=if_match,
            ), source

    info, source = await api.run(work)
    checksums = "".join(
        xml.el(f"Checksum{a}", v) for a, v in info.checksums.items() if "-" not in v
    )
    body = xml.document(
        "CopyObjectResult",
        [xml.el("LastModified", info.last_modified), xml.el("ETag", f'"{info.etag}"'), checksums],
    )
    headers_out = version_header(info)
    headers_out.update(expiration_header(walrus.get_bucket(request.bucket), info))
    if source.version_id != "null":
        headers_out["x-amz-copy-source-version-id"] = source.version_id
    return Reply(body=body, headers=headers_out)


async def get_object_acl(api, request: Request) -> Reply:
    _reader, info = await api.run(readable(request, acls.READ_ACP), False)
    bucket = await api.run(request.walrus.get_bucket, request.bucket)
    acl = bucket.object_acl(info.acl)
    return Reply(body=policy_xml(request, acl), headers=version_header(info))


async def put_object_acl(api, request: Request) -> Reply:
    _reader, info = await api.run(readable(request, acls.WRITE_ACP), False)
    request.body = await read_document(request)
    bucket = await api.run(request.walrus.get_bucket, request.bucket)
    acl = requested(request, info.owner, bucket.owner, bucket=False)
    ownership.check_acl_write(request, bucket, acl)
    await api.run(
        lambda: request.walrus.update_object(request.bucket, request.key, info.version_id, acl=acl)
    )
    return Reply(headers=version_header(info))


async def get_object_tagging(api, request: Request) -> Reply:
    _reader, info = await api.run(readable(request), False)
    return Reply(body=tags_xml(info.tags), headers=version_header(info))


async def _may_write(api, request: Request) -> None:
    """Who may write is checked before a body is read: another account learns nothing
    from how its document is judged."""
    await api.run(request.require_bucket, acls.WRITE)


async def _set_tags(api, request: Request, tags: dict[str, str]) -> ObjectInfo:
    version_id = request.query.get("versionId")
    update = request.walrus.update_object
    return await api.run(lambda: update(request.bucket, request.key, version_id, tags=tags))


async def put_object_tagging(api, request: Request) -> Reply:
    await _may_write(api, request)
    tags = parse_tags(await read_document(request), MAX_OBJECT_TAGS)
    return Reply(headers=version_header(await _set_tags(api, request, tags)))


async def delete_object_tagging(api, request: Request) -> Reply:
    await _may_write(api, request)
    return Reply(204, headers=version_header(await _set_tags(api, request, {})))
