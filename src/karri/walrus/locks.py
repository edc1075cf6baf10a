"""Object Lock: S3's write-once rules for versions.

A version may carry a retention (``GOVERNANCE`` or ``COMPLIANCE`` until a date) and a legal
hold. While either is in force the version cannot be deleted; only a caller allowed to
bypass governance retention (``bypass``) may delete a GOVERNANCE version, or shorten or
remove its retention; a COMPLIANCE retention can only be extended, by anyone. A key stays
writable: new versions and delete markers go on top of locked ones.

A bucket's lock is its ``object-lock`` configuration (``BucketInfo.config``): ``{}`` when
enabled without a default, or ``{"mode": ..., "days": n}`` / ``{"mode": ..., "years": n}``,
the retention every new version gets unless its request sets one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from karri.walrus.errors import S3Error, access_denied

CONFIG = "object-lock"
GOVERNANCE, COMPLIANCE = "GOVERNANCE", "COMPLIANCE"
MODES = (GOVERNANCE, COMPLIANCE)


@dataclass(frozen=True)
class Lock:
    """A version's retention (``mode`` and ``until``, both or neither) and legal hold
    (None: never set, which S3 tells apart from OFF)."""

    mode: str | None = None
    until: datetime | None = None
    legal_hold: bool | None = None

    def columns(self) -> dict[str, Any]:
        return {"lock_mode": self.mode, "lock_until": self.until, "legal_hold": self.legal_hold}

    def retained(self, now: datetime) -> bool:
        """Whether the retention is in force."""
        return self.mode is not None and self.until is not None and self.until > now


UNLOCKED = Lock()


def lock_of(row: Any) -> Lock:
    """The Lock of an ``objects`` or ``multipart_uploads`` row."""
    return Lock(row.lock_mode, row.lock_until, row.legal_hold)


def missing_configuration() -> S3Error:
    return S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration", 400)


def default_lock(config: dict[str, Any] | None, now: datetime) -> Lock:
    """The retention a new version gets from its bucket's configuration (none without)."""
    if not config or not config.get("mode"):
        return UNLOCKED
    days = config.get("days") or 365 * int(config.get("years") or 0)
    return Lock(config["mode"], now + timedelta(days=int(days)))


def check_delete(lock: Lock, now: datetime, bypass: bool) -> None:
    """AccessDenied if the version is protected from deletion."""
    if lock.legal_hold or (lock.retained(now) and (lock.mode == COMPLIANCE or not bypass)):
        raise S3Error("AccessDenied", "Access Denied because object protected by object lock.", 403)


def check_retention_change(old: Lock, new: Lock, now: datetime, bypass: bool) -> None:
    """AccessDenied for a change the retention in force forbids. A COMPLIANCE retention
    can only be extended; a GOVERNANCE one extended (in either mode) by anyone, shortened
    or removed only with ``bypass``."""
    if not old.retained(now):
        return
    assert old.until is not None
    extended = new.until is not None and new.until >= old.until
    if old.mode == COMPLIANCE:
        if new.mode != COMPLIANCE or not extended:
            raise access_denied()
        return
    if not extended and not bypass:
        raise access_denied()
