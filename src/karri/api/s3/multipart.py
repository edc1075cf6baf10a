"""Multipart upload operations on the wire."""

from __future__ import annotations

import re

from karri.api.s3 import ownership, xml
from karri.api.s3.acl_xml import owner_xml
from karri.api.s3.context import Reply, Request
from karri.api.s3.documents import read_document
from karri.api.s3.headers import stored_headers, tagging_header, user_metadata
from karri.api.s3.lifecycle import abort_headers, expiration_header
from karri.api.s3.object_lock import requested_lock
from karri.api.s3.objects import (
    check_write_conditions,
    conflicts_raced,
    copy_source,
    read_source,
    store_body,
    write_conditions,
)
from karri.numbers import natural
from karri.walrus import (
    ALGORITHMS,
    CHECKSUM_TYPES,
    CRC_BITS,
    MAX_PART_NUMBER,
    BucketInfo,
    ClaimedChecksum,
    ObjectBody,
    PartInfo,
    RequestedPart,
    S3Error,
    UploadInfo,
    acls,
    invalid_argument,
)

MAX_PART = 5 * 1024**3
_COPY_RANGE = re.compile(r"^bytes=([0-9]{1,30})-([0-9]{1,30})$")


async def create_upload(api, request: Request) -> Reply:
    walrus = request.walrus
    algorithm = request.header.get("x-amz-checksum-algorithm", "").upper()
    checksum_type = request.header.get("x-amz-checksum-type", "").upper()
    if algorithm and algorithm not in ALGORITHMS:
        raise S3Error("InvalidRequest", "Checksum algorithm provided is unsupported.", 400)
    if checksum_type not in ("", "COMPOSITE", "FULL_OBJECT"):
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.", 400)
    if algorithm == "CRC64NVME" or (checksum_type == "FULL_OBJECT" and not algorithm):
        checksum_type = "FULL_OBJECT"
    if checksum_type == "FULL_OBJECT" and algorithm not in CRC_BITS:
        raise S3Error(
            "InvalidRequest",
            f"The FULL_OBJECT checksum type cannot be used with the {algorithm.lower()} "
            "checksum algorithm.",
            400,
        )
    headers, meta, tags = stored_headers(request), user_metadata(request), tagging_header(request)

    def work() -> tuple[UploadInfo, BucketInfo]:
        bucket = request.require_bucket(acls.WRITE)
        owner, acl = ownership.new_object(request, bucket)
        return walrus.create_upload(
            request.bucket,
            request.key,
            owner=owner,
            acl=acl,
            headers=headers,
            meta=meta,
            tags=tags,
            checksum=algorithm,
            checksum_type=checksum_type or ("COMPOSITE" if algorithm else ""),
            lock=requested_lock(request, bucket),
            initiator=_initiator_arn(request),
        ), bucket

    upload, bucket = await api.run(work)
    extra = abort_headers(bucket, upload.key, upload.created_at)
    if upload.checksum:
        extra["x-amz-checksum-algorithm"] = upload.checksum
        extra["x-amz-checksum-type"] = upload.checksum_type
    body = xml.document(
        "InitiateMultipartUploadResult",
        [
            xml.el("Bucket", request.bucket),
            xml.el("Key", request.key),
            xml.el("UploadId", upload.upload_id),
        ],
    )
    return Reply(body=body, headers=extra)


def part_number_out_of_range() -> S3Error:
    return invalid_argument("Part number must be an integer between 1 and 10000, inclusive")


def _part_number(request: Request) -> int:
    number = natural(request.query.get("partNumber", ""))
    if number is None or not 1 <= number <= MAX_PART_NUMBER:
        raise part_number_out_of_range()
    return number


def _upload(request: Request, permission: str = acls.WRITE) -> UploadInfo:
    request.require_bucket(permission)
    return request.walrus.get_upload(request.bucket, request.key, request.query["uploadId"])


async def upload_part(api, request: Request) -> Reply:
    number = _part_number(request)
    await api.run(_upload, request)

    def commit(body: ObjectBody, checksums: dict[str, str]) -> tuple[PartInfo, dict[str, str]]:
        part = request.walrus.put_part(request.query["uploadId"], number, body, checksums)
        return part, checksums

    part, checksums = await store_body(api, request, commit, MAX_PART)
    headers = {"etag": f'"{part.etag}"'}
    headers.update({f"x-amz-checksum-{a.lower()}": v for a, v in checksums.items()})
    return Reply(headers=headers)


async def upload_part_copy(api, request: Request) -> Reply:
    walrus = request.walrus
    number = _part_number(request)
    src_bucket, src_key, src_version = copy_source(request)

    def work() -> PartInfo:
        upload = _upload(request)
        source = read_source(request, src_bucket, src_key, src_version)
        start, length = 0, source.size
        wanted = request.header.get("x-amz-copy-source-range")
        if wanted is not None:
            match = _COPY_RANGE.match(wanted.strip())
            if not match:
                raise invalid_argument(
                    "The x-amz-copy-source-range value must be of the form bytes=first-last "
                    "where first and last are the zero-based offsets of the first and last "
                    "bytes to copy",
                )
            first, last = int(match.group(1)), int(match.group(2))
            if first > last or last >= source.size:
                raise S3Error("InvalidRange", "The requested range is not satisfiable", 416)
            start, length = first, last - first + 1
        if length > MAX_PART:
            raise S3Error(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400
            )
        return walrus.copy_part(upload, number, source, start, length)

    part = await api.run(work)
    checksums = "".join(xml.el(f"Checksum{a}", v) for a, v in part.checksums.items())
    body = xml.document(
        "CopyPartResult",
        [xml.el("LastModified", part.last_modified), xml.el("ETag", f'"{part.etag}"'), checksums],
    )
    return Reply(body=body)


def _requested_parts(body: bytes) -> list[RequestedPart]:
    root = xml.parse(body, "CompleteMultipartUpload")
    parts = []
    for item in xml.children(root, "Part"):
        number, etag = xml.text(item, "PartNumber"), xml.text(item, "ETag")
        number = natural((number or "").strip())
        if number is None or etag is None:
            raise xml.malformed()
        if not 1 <= number <= MAX_PART_NUMBER:
            raise part_number_out_of_range()
        checksums = {}
        for algorithm in ALGORITHMS:
            value = xml.text(item, f"Checksum{algorithm}")
            if value:
                checksums[algorithm] = value
        parts.append(RequestedPart(number, etag.strip().strip('"'), checksums))
    return parts


def _object_claim(request: Request) -> tuple[ClaimedChecksum | None, dict[str, str]]:
    """The object checksum CompleteMultipartUpload's headers claim, and the headers that
    are left to speak of the request's body."""
    claims = {
        a: request.header[f"x-amz-checksum-{a.lower()}"]
        for a in ALGORITHMS
        if f"x-amz-checksum-{a.lower()}" in request.header
    }
    kind = request.header.get("x-amz-checksum-type", "").upper()
    if len(claims) > 1:
        raise S3Error("InvalidRequest", "Expecting a single x-amz-checksum- header", 400)
    if kind and kind not in CHECKSUM_TYPES:
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.", 400)
    rest = {k: v for k, v in request.header.items() if not k.startswith("x-amz-checksum-")}
    if not claims and not kind:
        return None, rest
    algorithm, value = next(iter(claims.items()), ("", ""))
    return ClaimedChecksum(algorithm, value.strip(), kind), rest


def _complete(
    request: Request,
    parts: list[RequestedPart],
    claim: ClaimedChecksum | None,
    if_absent: bool = False,
    if_match: str | None = None,
):
    """Complete the upload (a conditional write with ``if_absent``/``if_match``); if it
    completed already, the version it made (a retry)."""
    walrus, upload_id = request.walrus, request.query["uploadId"]
    try:
        return walrus.complete_upload(
            request.bucket,
            request.key,
            upload_id,
            parts,
            claim,
            if_absent=if_absent,
            if_match=if_match,
        )
    except S3Error as error:
        if error.code == "NoSuchUpload":
            done = walrus.completed_upload(request.bucket, request.key, upload_id)
            if done is not None:
                return done
        raise


async def complete_upload(api, request: Request) -> Reply:
    await api.run(request.require_bucket, acls.WRITE)  # the upload may be done (a retry)
    if_absent, if_match = write_conditions(request)
    if if_absent or if_match is not None:
        await api.run(check_write_conditions, request, if_absent, if_match)
    claim, body_header = _object_claim(request)
    parts = _requested_parts(await read_document(request, header=body_header))
    with conflicts_raced(if_absent, if_match):
        info = await api.run(_complete, request, parts, claim, if_absent, if_match)
    checksums = ""
    for algorithm, value in info.checksums.items():
        kind = "COMPOSITE" if "-" in value else "FULL_OBJECT"
        checksums += xml.el(f"Checksum{algorithm}", value) + xml.el("ChecksumType", kind)
    host = request.header.get("host", "")
    body = xml.document(
        "CompleteMultipartUploadResult",
        [
            xml.el("Location", f"http://{host}/{request.bucket}/{request.key}"),
            xml.el("Bucket", request.bucket),
            xml.el("Key", request.key),
            xml.el("ETag", f'"{info.etag}"'),
            checksums,
        ],
    )
    headers = {"x-amz-version-id": info.version_id} if info.version_id != "null" else {}
    headers.update(expiration_header(request.walrus.get_bucket(request.bucket), info))
    return Reply(body=body, headers=headers)


async def abort_upload(api, request: Request) -> Reply:
    await api.run(_upload, request)
    await api.run(
        request.walrus.abort_upload, request.bucket, request.key, request.query["uploadId"]
    )
    return Reply(204)


def _initiator_arn(request: Request) -> str:
    """The ARN of an IAM user or role session making the request; "" for an account."""
    key = request.identity.key
    return "" if key is None or key.is_root else key.caller.arn


def _party(request: Request, account: str, element: str) -> str:
    return (
        owner_xml(request, account)
        .replace("<Owner>", f"<{element}>")
        .replace("</Owner>", f"</{element}>")
    )


def _initiator(request: Request, upload: UploadInfo) -> str:
    """Who started the upload: the owner account, or an IAM user (its ARN and name) or
    a role session (its ARN, and role/session as its name), as S3 says it."""
    if not upload.initiator:
        return _party(request, upload.owner, "Initiator")
    resource = upload.initiator.split(":", 5)[-1]
    kind, _, rest = resource.partition("/")
    name = rest.rsplit("/", 1)[-1] if kind == "user" else rest
    return f"<Initiator>{xml.el('ID', upload.initiator)}{xml.el('DisplayName', name)}</Initiator>"


async def list_parts(api, request: Request) -> Reply:
    max_parts = request.int_param("max-parts", 1000)
    marker = request.int_param("part-number-marker", 0, high=MAX_PART_NUMBER)
    upload = await api.run(_upload, request)
    parts, truncated = await api.run(
        lambda: request.walrus.list_parts(upload.upload_id, marker=marker, max_parts=max_parts)
    )
    out = [
        xml.el("Bucket", request.bucket),
        xml.el("Key", request.key),
        xml.el("UploadId", upload.upload_id),
        _initiator(request, upload),
        _party(request, upload.owner, "Owner"),
        "<StorageClass>STANDARD</StorageClass>",
        xml.el("PartNumberMarker", marker),
        xml.el("NextPartNumberMarker", parts[-1].number if parts else marker),
        xml.el("MaxParts", max_parts),
        xml.el("IsTruncated", truncated),
    ]
    if upload.checksum:
        out += [
            xml.el("ChecksumAlgorithm", upload.checksum),
            xml.el("ChecksumType", upload.checksum_type),
        ]
    for part in parts:
        checksums = "".join(xml.el(f"Checksum{a}", v) for a, v in part.checksums.items())
        out.append(
            f"<Part>{xml.el('PartNumber', part.number)}{xml.el('LastModified', part.last_modified)}"
            f'<ETag>"{part.etag}"</ETag>{xml.el("Size", part.size)}{checksums}</Part>'
        )
    return Reply(body=xml.document("ListPartsResult", out))


async def list_uploads(api, request: Request) -> Reply:
    walrus = request.walrus
    max_uploads = request.int_param("max-uploads", 1000)
    prefix = request.query.get("prefix", "")
    delimiter = request.query.get("delimiter", "")
    key_marker = request.query.get("key-marker", "")
    id_marker = request.query.get("upload-id-marker", "")

    def work():
        request.require_bucket(acls.READ)
        return walrus.list_uploads(
            request.bucket,
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            upload_id_marker=id_marker,
            max_uploads=max_uploads,
        )

    uploads, prefixes, truncated = await api.run(work)
    out = [
        xml.el("Bucket", request.bucket),
        xml.el("KeyMarker", key_marker),
        xml.el("UploadIdMarker", id_marker),
        xml.el("NextKeyMarker", uploads[-1].key if uploads else ""),
        xml.el("NextUploadIdMarker", uploads[-1].upload_id if uploads else ""),
        xml.el("Prefix", prefix),
    ]
    if delimiter:
        out.append(xml.el("Delimiter", delimiter))
    out += [xml.el("MaxUploads", max_uploads), xml.el("IsTruncated", truncated)]
    for upload in uploads:
        out.append(
            f"<Upload>{xml.el('Key', upload.key)}{xml.el('UploadId', upload.upload_id)}"
            f"{_initiator(request, upload)}{_party(request, upload.owner, 'Owner')}"
            "<StorageClass>STANDARD</StorageClass>"
            f"{xml.el('Initiated', upload.created_at)}</Upload>"
        )
    out += [f"<CommonPrefixes>{xml.el('Prefix', p)}</CommonPrefixes>" for p in prefixes]
    return Reply(body=xml.document("ListMultipartUploadsResult", out))
