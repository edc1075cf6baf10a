"""GetObjectAttributes (``GET /bucket/key?attributes``): an object's ETag, checksum,
parts, storage class and size in one document, without its bytes."""

from __future__ import annotations

from karri.api.s3 import xml
from karri.api.s3.context import Reply, Request
from karri.api.s3.objects import readable, version_header
from karri.numbers import integer
from karri.timestamps import http_date
from karri.walrus import ObjectInfo, S3Error, invalid_argument

NAMES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000


def requested(header: dict[str, str]) -> set[str]:
    """The attributes asked for in ``x-amz-object-attributes`` (a comma-separated list)."""
    raw = header.get("x-amz-object-attributes")
    if raw is None:
        raise S3Error(
            "InvalidRequest",
            "Missing required header for this request: x-amz-object-attributes",
            400,
        )
    names = {name.strip() for name in raw.split(",") if name.strip()}
    if not names or not names <= set(NAMES):
        raise invalid_argument("Invalid attribute name specified.")
    return names


def _header_number(header: dict[str, str], name: str, default: int) -> int:
    raw = header.get(name)
    if raw is None:
        return default
    value = integer(raw.strip())
    if value is None or value < 0:
        raise invalid_argument(f"Provided {name} not an integer or within integer range")
    return value


def checksum_kind(value: str) -> str:
    return "COMPOSITE" if "-" in value else "FULL_OBJECT"


async def get_object_attributes(api, request: Request) -> Reply:
    names = requested(request.header)
    max_parts = min(_header_number(request.header, "x-amz-max-parts", MAX_PARTS), MAX_PARTS)
    marker = _header_number(request.header, "x-amz-part-number-marker", 0)
    _reader, info = await api.run(readable(request), False)
    parts = []
    if "ETag" in names:
        parts.append(xml.el("ETag", info.etag))
    if "Checksum" in names and info.checksums:
        parts.append(f"<Checksum>{_checksums(info.checksums)}</Checksum>")
    if "ObjectParts" in names and info.parts:
        parts.append(_object_parts(info, marker, max_parts))
    if "StorageClass" in names:
        parts.append(xml.el("StorageClass", "STANDARD"))
    if "ObjectSize" in names:
        parts.append(xml.el("ObjectSize", info.size))
    headers = {"last-modified": http_date(info.last_modified), **version_header(info)}
    return Reply(body=xml.document("GetObjectAttributesResponse", parts), headers=headers)


def _checksums(checksums: dict[str, str], *, kind: bool = True) -> str:
    """Checksum elements; a composite value loses its ``-N`` (the parts count says it)."""
    out = "".join(
        xml.el(f"Checksum{algorithm}", value.split("-")[0])
        for algorithm, value in checksums.items()
    )
    if kind and checksums:
        out += xml.el("ChecksumType", checksum_kind(next(iter(checksums.values()))))
    return out


def _object_parts(info: ObjectInfo, marker: int, max_parts: int) -> str:
    """ObjectParts: the count always; each part (with its checksums) when the object has a
    checksum and karri kept its parts (objects completed before it did have none)."""
    out = [xml.el("PartsCount", info.parts)]
    if info.checksums and info.part_list:
        numbered = list(enumerate(info.part_list, 1))[marker:]
        shown, truncated = numbered[:max_parts], len(numbered) > max_parts
        out += [
            xml.el("PartNumberMarker", marker),
            xml.el("NextPartNumberMarker", shown[-1][0] if shown else marker),
            xml.el("MaxParts", max_parts),
            xml.el("IsTruncated", truncated),
        ]
        for number, (size, sums) in shown:
            kept = {a: v for a, v in sums.items() if a in info.checksums}
            body = xml.el("PartNumber", number) + xml.el("Size", size)
            out.append(f"<Part>{body}{_checksums(kept, kind=False)}</Part>")
    return f"<ObjectParts>{''.join(out)}</ObjectParts>"
