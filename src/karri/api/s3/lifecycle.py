"""Put/Get/DeleteBucketLifecycleConfiguration (the document: ``lifecycle_document``), and
the headers that tell when a rule will expire an object (``x-amz-expiration``) or abort an
upload (``x-amz-abort-date``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from karri.api.s3 import xml
from karri.api.s3.context import Reply, Request
from karri.api.s3.documents import read_document, require_content_md5
from karri.api.s3.lifecycle_document import invalid_request, parse_rules, rule_xml
from karri.timestamps import http_date
from karri.walrus import (
    LIFECYCLE,
    BucketInfo,
    Lifecycle,
    ObjectInfo,
    S3Error,
    lifecycle_from_json,
)

MINIMUM_SIZES = ("all_storage_classes_128K", "varies_by_storage_class")
MINIMUM_HEADER = "x-amz-transition-default-minimum-object-size"


async def get_bucket_lifecycle_configuration(api, request: Request) -> Reply:
    bucket = await api.run(request.walrus.require_bucket, request.principal, request.bucket, None)
    lifecycle = rules_of(bucket)
    if lifecycle is None:
        raise S3Error(
            "NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist", 404
        )
    body = xml.document("LifecycleConfiguration", [rule_xml(r) for r in lifecycle.rules])
    return Reply(body=body, headers={MINIMUM_HEADER: lifecycle.transition_minimum})


async def put_bucket_lifecycle_configuration(api, request: Request) -> Reply:
    await api.run(request.walrus.require_bucket, request.principal, request.bucket, None)
    require_content_md5(request)
    minimum = request.header.get(MINIMUM_HEADER, MINIMUM_SIZES[0])
    if minimum not in MINIMUM_SIZES:
        raise invalid_request("Invalid TransitionDefaultMinimumObjectSize found")
    lifecycle = Lifecycle(parse_rules(await read_document(request)), minimum)
    await api.run(request.walrus.configure_bucket, request.bucket, LIFECYCLE, lifecycle.to_json())
    return Reply(headers={MINIMUM_HEADER: minimum})


async def delete_bucket_lifecycle(api, request: Request) -> Reply:
    await api.run(request.walrus.require_bucket, request.principal, request.bucket, None)
    await api.run(request.walrus.configure_bucket, request.bucket, LIFECYCLE, None)
    return Reply(204)


# Rules parsed from a bucket's configuration, by the identity of the cached JSON value (a
# bucket record stays cached for seconds and is read on every GET): parsed once, not per read.
_PARSED: dict[int, tuple[Any, Lifecycle]] = {}


def rules_of(bucket: BucketInfo) -> Lifecycle | None:
    raw = bucket.config(LIFECYCLE)
    if not raw:
        return None
    hit = _PARSED.get(id(raw))
    if hit is not None and hit[0] is raw:
        return hit[1]
    lifecycle = lifecycle_from_json(raw)
    assert lifecycle is not None
    if len(_PARSED) > 1000:
        _PARSED.clear()
    _PARSED[id(raw)] = (raw, lifecycle)  # holding ``raw`` keeps its id from being reused
    return lifecycle


def expiration_header(bucket: BucketInfo, info: ObjectInfo) -> dict[str, str]:
    """``x-amz-expiration`` for the current version ``info`` when a rule expires it."""
    if info.delete_marker or not info.is_latest:
        return {}
    lifecycle = rules_of(bucket)
    if lifecycle is None:
        return {}
    found = lifecycle.expiration(info.key, info.size, info.tags, info.last_modified)
    if found is None:
        return {}
    when, rule_id = found
    return {"x-amz-expiration": f'expiry-date="{http_date(when)}", rule-id="{header_id(rule_id)}"'}


def abort_headers(bucket: BucketInfo, key: str, initiated: datetime) -> dict[str, str]:
    """``x-amz-abort-date`` and ``x-amz-abort-rule-id`` of an upload a rule will abort."""
    lifecycle = rules_of(bucket)
    found = lifecycle.abort(key, initiated) if lifecycle is not None else None
    if found is None:
        return {}
    return {"x-amz-abort-date": http_date(found[0]), "x-amz-abort-rule-id": header_id(found[1])}


def header_id(rule_id: str) -> str:
    """A rule ID as the header carries it: as it is (S3 sends spaces and all), unless a
    header cannot hold it quoted, then percent-encoded whole."""
    plain = (
        rule_id.isascii()
        and rule_id.isprintable()
        and not rule_id.startswith(" ")
        and not rule_id.endswith(" ")
        and '"' not in rule_id
        and "\\" not in rule_id
    )
    return rule_id if plain else quote(rule_id, safe="")
