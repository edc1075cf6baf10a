"""Object headers: what a PUT stores and a GET/HEAD returns; conditions and ranges."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from karri.api.s3.buckets import check_tag
from karri.api.s3.context import Request
from karri.api.s3.errors import AnsweredWithHeaders
from karri.timestamps import http_date, parse_http_date
from karri.walrus import ObjectInfo, S3Error, invalid_argument

STORED = (
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
)
STORAGE_CLASSES = frozenset(
    (
        "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
        "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE",
    )
)  # fmt: skip
OVERRIDES = {f"response-{name}": name for name in STORED}
MAX_METADATA = 2048
MAX_OBJECT_TAGS = 10
_RANGE = re.compile(r"^bytes=([0-9]{0,30})-([0-9]{0,30})$")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_IN_VALUE = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def check_header(name: str, value: str) -> None:
    """Refuse a header karri would have to send back that HTTP cannot carry.

    Headers a client sent were checked by the HTTP parser; those that come from a query
    (``response-content-type``) or a form field (POST Object) were not, and one with a
    line break would end the answer early (uvicorn then drops the connection)."""
    if not _TOKEN.fullmatch(name) or _NOT_IN_VALUE.search(value):
        raise invalid_argument(f"Header {name!r} has a value HTTP cannot carry")


def stored_headers(request: Request) -> dict[str, str]:
    """What a PUT keeps of its headers (every object is STANDARD: the class is checked)."""
    if request.header.get("x-amz-storage-class", "STANDARD") not in STORAGE_CLASSES:
        raise S3Error("InvalidStorageClass", "The storage class you specified is not valid", 400)
    headers = {name: request.header[name] for name in STORED if name in request.header}
    encoding = headers.get("content-encoding")
    if encoding is not None:  # aws-chunked is transport framing, not the object's encoding
        kept = without_aws_chunked(encoding)
        if kept:
            headers["content-encoding"] = kept
        else:
            del headers["content-encoding"]
    headers.setdefault("content-type", "binary/octet-stream")
    return headers


def without_aws_chunked(encoding: str) -> str:
    """A Content-Encoding list without its aws-chunked entry, the rest as it was sent."""
    entries = encoding.split(",")
    kept = [entry for entry in entries if entry.strip().lower() != "aws-chunked"]
    return encoding if len(kept) == len(entries) else ",".join(kept).strip()


def user_metadata(request: Request) -> dict[str, str]:
    header = request.header
    return checked_metadata({k[11:]: v for k, v in header.items() if k.startswith("x-amz-meta-")})


def checked_metadata(meta: dict[str, str]) -> dict[str, str]:
    """``x-amz-meta-*`` values (names without the prefix), within S3's 2 KB."""
    for name, value in meta.items():
        check_header("x-amz-meta-" + name, value)
    if sum(len(k) + len(v) for k, v in meta.items()) > MAX_METADATA:
        raise S3Error(
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size.",
            400,
        )
    return meta


def tagging_header(request: Request) -> dict[str, str] | None:
    value = request.header.get("x-amz-tagging")
    if value is None:
        return None
    try:
        pairs = parse_qsl(
            value, keep_blank_values=True, strict_parsing=bool(value), errors="strict"
        )
    except ValueError:  # UnicodeDecodeError too: %ff is no UTF-8
        raise invalid_argument(
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
            "parameters without tag name duplicates.",
        ) from None
    tags: dict[str, str] = {}
    for key, tag_value in pairs:
        check_tag(key, tag_value)
        if key in tags:
            raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key", 400)
        tags[key] = tag_value
    if len(tags) > MAX_OBJECT_TAGS:
        raise S3Error("BadRequest", "Object tags cannot be greater than 10", 400)
    return tags


def object_headers(info: ObjectInfo, *, checksums: bool) -> dict[str, str]:
    headers = {
        "etag": f'"{info.etag}"',
        "last-modified": http_date(info.last_modified),
        "accept-ranges": "bytes",
    }
    headers.update(info.headers)
    headers.setdefault("content-type", "binary/octet-stream")
    for name, value in info.meta.items():
        headers[f"x-amz-meta-{name}"] = value
    if info.version_id != "null":
        headers["x-amz-version-id"] = info.version_id
    if info.tags:
        headers["x-amz-tagging-count"] = str(len(info.tags))
    if checksums:
        for algorithm, value in info.checksums.items():
            headers[f"x-amz-checksum-{algorithm.lower()}"] = value
            headers["x-amz-checksum-type"] = "COMPOSITE" if "-" in value else "FULL_OBJECT"
    return headers


def apply_overrides(request: Request, headers: dict[str, str]) -> None:
    for param, name in OVERRIDES.items():
        if param in request.query:
            if not request.principal:
                raise S3Error(
                    "InvalidRequest",
                    "Request specific response headers cannot be used for anonymous GET requests.",
                    400,
                )
            check_header(name, request.query[param])
            headers[name] = request.query[param]


def _etag_matches(condition: str, etag: str, *, weak: bool = False) -> bool:
    """Whether an If-Match (strong) or If-None-Match (``weak``: ``W/"…"`` matches too, as
    HTTP compares for it) list names ``etag``."""
    candidates = [c.strip() for c in condition.split(",")]
    if weak:
        candidates = [c.removeprefix("W/") for c in candidates]
    return any(c == "*" or c.strip('"') == etag for c in candidates)


def check_conditions(header: dict[str, str], info: ObjectInfo, prefix: str = "") -> int:
    """0 when the request may go on; else 304 or 412 (PreconditionFailed).

    ``prefix`` is ``x-amz-copy-source-`` for CopyObject's conditions (which never 304).
    """
    modified = info.last_modified.replace(microsecond=0)
    if_match = header.get(prefix + "if-match")
    if_none = header.get(prefix + "if-none-match")
    if_unmodified = header.get(prefix + "if-unmodified-since")
    if_modified = header.get(prefix + "if-modified-since")
    if if_match is not None:
        if not _etag_matches(if_match, info.etag):
            return 412
    elif if_unmodified is not None:
        when = parse_http_date(if_unmodified)
        if when is not None and modified > when:
            return 412
    if if_none is not None:
        if _etag_matches(if_none, info.etag, weak=True):
            return 412 if prefix else 304
    elif if_modified is not None:
        when = parse_http_date(if_modified)
        if when is not None and modified <= when and when <= datetime.now(UTC):
            return 412 if prefix else 304
    return 0


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single byte range; None means the whole object.

    An unsatisfiable range is ``InvalidRange`` (416); one S3 cannot parse is ignored.
    """
    if value is None:
        return None
    match = _RANGE.match(value.strip())
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise invalid_range(size)
        return max(0, size - suffix), size
    start = int(first)
    end = size if not last else int(last) + 1
    if last and int(last) < start:
        return None
    if start >= size:
        raise invalid_range(size)
    return start, min(end, size)


def invalid_range(size: int) -> S3Error:
    return AnsweredWithHeaders(
        "InvalidRange",
        "The requested range is not satisfiable",
        416,
        {"content-range": f"bytes */{size}"},
    )
