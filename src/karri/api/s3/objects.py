"""Object operations: PUT (streamed to disk), GET/HEAD (zero-copy), DELETE, multi-object
delete, COPY, and object ACLs and tags."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote

from karri.api.s3 import xml
from karri.api.s3.acl_xml import from_headers as acl_from_headers
from karri.api.s3.acl_xml import policy_xml, requested
from karri.api.s3.buckets import parse_tags, tags_xml
from karri.api.s3.context import FileReply, Reply, Request
from karri.api.s3.documents import digests_for, read_document
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


def _version_header(info: ObjectInfo) -> dict[str, str]:
    return {"x-amz-version-id": info.version_id} if info.version_id != "null" else {}


async def put_object(api, request: Request) -> Reply:
    walrus = request.walrus
    bucket = walrus.require_bucket(request.principal, request.bucket, acls.WRITE)  # cached
    owner = request.principal or bucket.owner
    acl = acl_from_headers(request, owner, bucket.owner, bucket=False) or acls.private(owner)
    headers, meta, tags = stored_headers(request), user_metadata(request), tagging_header(request)
    if_absent = request.header.get("if-none-match") == "*"
    if if_absent and await api.run(_exists, walrus, request.bucket, request.key):
        raise precondition_failed()  # before the body; checked again as the commit runs

    def options(checksums: dict[str, str]) -> PutOptions:
        return PutOptions(
            owner, acl, headers, meta, tags, checksums, if_absent, bucket_owner=bucket.owner
        )

    def commit(body: ObjectBody, checksums: dict[str, str]) -> tuple[ObjectInfo, dict[str, str]]:
        return walrus.put(request.bucket, request.key, body, options(checksums)).result(), checksums

    async def inline(body: ObjectBody, checksums: dict[str, str]):
        stored = walrus.put(request.bucket, request.key, body, options(checksums))
        return await asyncio.wrap_future(stored), checksums

    info, checksums = await store_body(api, request, commit, inline=inline)
    return Reply(
        headers={"etag": f'"{info.etag}"', **_version_header(info), **_checksum_headers(checksums)}
    )


def _exists(walrus, bucket: str, key: str) -> bool:
    try:
        walrus.head_object(bucket, key)
        return True
    except S3Error:
        return False


@contextmanager
def _missing_hidden(request: Request, bucket: str) -> Iterator[None]:
    """A missing key or version is AccessDenied to whoever may not list the bucket, as in
    S3: NoSuchKey would tell them which keys exist."""
    try:
        yield
    except S3Error as error:
        if error.code in ("NoSuchKey", "NoSuchVersion") and not request.walrus.may(
            request.principal, bucket, acls.READ
        ):
            raise access_denied() from None
        raise


def _readable(request: Request, permission: str = acls.READ):
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
        if not acls.allows(info.acl, request.principal, permission):
            if reader is not None:
                reader.close()
            raise access_denied()
        return reader, info

    return work


def part_span(info: ObjectInfo, number: int | None) -> tuple[int, int] | None:
    """The bytes of part ``number`` (GET/HEAD ``?partNumber=``; None if it was no number): a
    range over a multipart object's part; part 1 of any other object is all of it (None:
    no range)."""
    sizes = [size for _blob, size in info.segments]
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
    reader, info = _readable(request)(request.method == "GET")
    try:
        headers = object_headers(
            info, checksums=request.header.get("x-amz-checksum-mode", "").upper() == "ENABLED"
        )
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
        span = parse_range(request.header.get("range"), info.size)
        part = request.query.get("partNumber")
        if part is not None:
            if span is not None:
                raise S3Error(
                    "InvalidRequest",
                    "Cannot specify both Range header and partNumber query parameter.",
                    400,
                )
            span = part_span(info, natural(part))
            if info.parts:
                headers["x-amz-mp-parts-count"] = str(info.parts)
        status, start, length = 200, 0, info.size
        if span is not None:
            start, end = span
            status, length = 206, end - start
            headers["content-range"] = f"bytes {start}-{end - 1}/{info.size}"
            for name in [h for h in headers if h.startswith("x-amz-checksum-")]:
                del headers[name]
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

    walrus.require_bucket(request.principal, request.bucket, acls.WRITE)
    version_id = request.query.get("versionId")
    result = await asyncio.wrap_future(
        walrus.delete_object_later(request.bucket, request.key, version_id)
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
    if "content-md5" not in request.header and not any(
        name.startswith("x-amz-checksum-") for name in request.header
    ):
        raise S3Error(
            "InvalidRequest", "Missing required header for this request: Content-MD5", 400
        )
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

    def work() -> list[str]:
        parts = []
        for key, version_id in targets:
            try:
                check_key(key)
                result = walrus.delete_object(request.bucket, key, version_id)
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
    if not acls.allows(info.acl, request.principal, acls.READ):
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

    def work() -> ObjectInfo:
        bucket = walrus.require_bucket(request.principal, request.bucket, acls.WRITE)
        source = read_source(request, src_bucket, src_key, src_version)
        owner = request.principal or bucket.owner
        acl = acl_from_headers(request, owner, bucket.owner, bucket=False) or acls.private(owner)
        return walrus.copy_object(
            source,
            request.bucket,
            request.key,
            owner=owner,
            acl=acl,
            headers=headers,
            meta=meta,
            tags=tags,
        ), source

    info, source = await api.run(work)
    checksums = "".join(
        xml.el(f"Checksum{a}", v) for a, v in info.checksums.items() if "-" not in v
    )
    body = xml.document(
        "CopyObjectResult",
        [xml.el("LastModified", info.last_modified), xml.el("ETag", f'"{info.etag}"'), checksums],
    )
    headers_out = _version_header(info)
    if source.version_id != "null":
        headers_out["x-amz-copy-source-version-id"] = source.version_id
    return Reply(body=body, headers=headers_out)


async def get_object_acl(api, request: Request) -> Reply:
    _reader, info = await api.run(_readable(request, acls.READ_ACP), False)
    return Reply(body=policy_xml(request, info.acl), headers=_version_header(info))


async def put_object_acl(api, request: Request) -> Reply:
    _reader, info = await api.run(_readable(request, acls.WRITE_ACP), False)
    request.body = await read_document(request)
    bucket = await api.run(request.walrus.get_bucket, request.bucket)
    acl = requested(request, info.owner, bucket.owner, bucket=False)
    await api.run(
        lambda: request.walrus.update_object(request.bucket, request.key, info.version_id, acl=acl)
    )
    return Reply(headers=_version_header(info))


async def get_object_tagging(api, request: Request) -> Reply:
    _reader, info = await api.run(_readable(request), False)
    return Reply(body=tags_xml(info.tags), headers=_version_header(info))


async def _may_write(api, request: Request) -> None:
    """Who may write is checked before a body is read: another account learns nothing
    from how its document is judged."""
    await api.run(request.walrus.require_bucket, request.principal, request.bucket, acls.WRITE)


async def _set_tags(api, request: Request, tags: dict[str, str]) -> ObjectInfo:
    version_id = request.query.get("versionId")
    update = request.walrus.update_object
    return await api.run(lambda: update(request.bucket, request.key, version_id, tags=tags))


async def put_object_tagging(api, request: Request) -> Reply:
    await _may_write(api, request)
    tags = parse_tags(await read_document(request), MAX_OBJECT_TAGS)
    return Reply(headers=_version_header(await _set_tags(api, request, tags)))


async def delete_object_tagging(api, request: Request) -> Reply:
    await _may_write(api, request)
    return Reply(204, headers=_version_header(await _set_tags(api, request, {})))
