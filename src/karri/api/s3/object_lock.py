"""Object Lock on the wire: the bucket's configuration (``?object-lock``), a version's
retention (``?retention``) and legal hold (``?legal-hold``), and the ``x-amz-object-lock-*``
headers of PutObject, CopyObject and CreateMultipartUpload. The rules are Walrus's
(``karri.walrus.locks``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from karri.api.s3 import xml
from karri.api.s3.authorize import bypasses
from karri.api.s3.context import Reply, Request
from karri.api.s3.documents import read_document
from karri.numbers import natural
from karri.walrus import BucketInfo, ObjectInfo, S3Error, invalid_argument
from karri.walrus import object_lock as locks

MODE = "x-amz-object-lock-mode"
UNTIL = "x-amz-object-lock-retain-until-date"
HOLD = "x-amz-object-lock-legal-hold"
HOLD_STATES = {"ON": True, "OFF": False}


def may_bypass(request: Request, bucket: BucketInfo) -> bool:
    """Whether the request bypasses governance retention: it asks to, and comes from the
    bucket's account (whose users' policies ``authorize`` weighs for the permission);
    another account's ACL grant to write never lets it."""
    return bypasses(request) and request.principal == bucket.owner


def _date(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        message = "The retain until date must be provided in ISO 8601 format"
        raise invalid_argument(message) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when <= datetime.now(UTC):
        raise invalid_argument("The retain until date must be in the future!")
    return when


def _mode(value: str) -> str:
    if value not in locks.MODES:
        raise invalid_argument("Unknown wormMode directive.")
    return value


def requested_lock(
    request: Request, bucket: BucketInfo, *, body: bool = False
) -> locks.Lock | None:
    """The ``x-amz-object-lock-*`` headers of a new object (None when it has none).

    ``body`` (PutObject): AWS wants its bytes checked (Content-MD5 or a checksum)."""
    header = request.header
    mode, until, hold = header.get(MODE), header.get(UNTIL), header.get(HOLD)
    if mode is None and until is None and hold is None:
        return None
    if bucket.config(locks.CONFIG) is None:
        raise locks.missing_configuration()
    if (mode is None) != (until is None):
        raise invalid_argument(
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
        )
    if hold is not None and hold not in HOLD_STATES:
        raise invalid_argument("Legal Hold must be either of 'ON' or 'OFF'")
    if body and not (
        "content-md5" in header
        or "x-amz-trailer" in header
        or any(name.startswith("x-amz-checksum-") for name in header)
    ):
        raise S3Error(
            "InvalidRequest",
            "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests "
            "with Object Lock parameters",
            400,
        )
    return locks.Lock(
        _mode(mode) if mode is not None else None,
        _date(until) if until is not None else None,
        HOLD_STATES[hold] if hold is not None else None,
    )


def lock_headers(info: ObjectInfo, granted: Callable[[str], bool]) -> dict[str, str]:
    """What GET and HEAD say of a version's lock: its retention to a caller ``granted``
    ``s3:GetObjectRetention``, its legal hold (ON or OFF; nothing if never set) to one
    granted ``s3:GetObjectLegalHold``."""
    headers = {}
    lock = info.lock
    if lock.mode and lock.until and granted("s3:GetObjectRetention"):
        headers[MODE] = lock.mode
        headers[UNTIL] = xml.timestamp(lock.until)
    if lock.legal_hold is not None and granted("s3:GetObjectLegalHold"):
        headers[HOLD] = "ON" if lock.legal_hold else "OFF"
    return headers


# -- the bucket's configuration --------------------------------------------------------


def _owned(request: Request) -> BucketInfo:
    return request.walrus.require_bucket(request.principal, request.bucket, None)


async def get_object_lock_configuration(api, request: Request) -> Reply:
    config = (await api.run(_owned, request)).config(locks.CONFIG)
    if config is None:
        raise S3Error(
            "ObjectLockConfigurationNotFoundError",
            "Object Lock configuration does not exist for this bucket",
            404,
        )
    rule = ""
    if config.get("mode"):
        period = xml.el("Days", config["days"]) if "days" in config else ""
        period += xml.el("Years", config["years"]) if "years" in config else ""
        rule = f"<Rule><DefaultRetention>{xml.el('Mode', config['mode'])}{period}"
        rule += "</DefaultRetention></Rule>"
    parts = [xml.el("ObjectLockEnabled", "Enabled"), rule]
    return Reply(body=xml.document("ObjectLockConfiguration", parts))


def _period(retention, name: str) -> int | None:
    value = xml.text(retention, name)
    if value is None:
        return None
    number = natural(value.strip())
    if number is None or number == 0:
        raise invalid_argument("Default retention period must be a positive integer value.")
    return number


def parse_configuration(body: bytes) -> dict:
    """The ``object-lock`` configuration of an ObjectLockConfiguration document."""
    root = xml.parse(body, "ObjectLockConfiguration")
    if xml.text(root, "ObjectLockEnabled") != "Enabled":
        raise xml.malformed()
    rule = xml.child(root, "Rule")
    if rule is None:
        return {}
    retention = xml.child(rule, "DefaultRetention")
    if retention is None:
        raise xml.malformed()
    mode = xml.text(retention, "Mode")
    days, years = _period(retention, "Days"), _period(retention, "Years")
    if mode not in locks.MODES or (days is None) == (years is None):
        raise xml.malformed()
    if (days or 0) > 36500 or (years or 0) > 100:
        raise invalid_argument("Default retention period is too large.")
    return {"mode": mode, "days": days} if days is not None else {"mode": mode, "years": years}


async def put_object_lock_configuration(api, request: Request) -> Reply:
    await api.run(_owned, request)
    config = parse_configuration(await read_document(request))
    await api.run(request.walrus.configure_bucket, request.bucket, locks.CONFIG, config)
    return Reply()


# -- a version's retention and legal hold ----------------------------------------------


def _locked_bucket(request: Request) -> None:
    if _owned(request).config(locks.CONFIG) is None:
        raise locks.missing_configuration()


def _version(request: Request) -> ObjectInfo:
    _locked_bucket(request)
    return request.walrus.head_object(request.bucket, request.key, request.query.get("versionId"))


def no_lock_configuration() -> S3Error:
    """S3's answer for a version's retention or legal hold that was never set."""
    return S3Error(
        "NoSuchObjectLockConfiguration",
        "The specified object does not have a ObjectLock configuration",
        404,
    )


async def get_object_retention(api, request: Request) -> Reply:
    lock = (await api.run(_version, request)).lock
    if lock.mode is None or lock.until is None:
        raise no_lock_configuration()
    parts = [xml.el("Mode", lock.mode), xml.el("RetainUntilDate", lock.until)]
    return Reply(body=xml.document("Retention", parts))


async def put_object_retention(api, request: Request) -> Reply:
    await api.run(_locked_bucket, request)
    root = xml.parse(await read_document(request), "Retention")
    mode, until = xml.text(root, "Mode"), xml.text(root, "RetainUntilDate")
    if (mode is None) != (until is None):
        raise xml.malformed()
    retention = locks.Lock(
        _mode(mode) if mode is not None else None, _date(until) if until is not None else None
    )
    await api.run(
        lambda: request.walrus.lock_object(
            request.bucket,
            request.key,
            request.query.get("versionId"),
            retention=retention,
            bypass=bypasses(request),
        )
    )
    return Reply()


async def get_object_legal_hold(api, request: Request) -> Reply:
    lock = (await api.run(_version, request)).lock
    if lock.legal_hold is None:
        raise no_lock_configuration()
    status = "ON" if lock.legal_hold else "OFF"
    return Reply(body=xml.document("LegalHold", [xml.el("Status", status)]))


async def put_object_legal_hold(api, request: Request) -> Reply:
    await api.run(_locked_bucket, request)
    root = xml.parse(await read_document(request), "LegalHold")
    status = xml.text(root, "Status")
    if status not in HOLD_STATES:
        raise xml.malformed()
    await api.run(
        lambda: request.walrus.lock_object(
            request.bucket,
            request.key,
            request.query.get("versionId"),
            legal_hold=HOLD_STATES[status],
        )
    )
    return Reply()
