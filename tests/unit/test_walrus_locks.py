"""Object Lock's rules (``karri.walrus.locks``): who may delete a version, and which
changes of its retention the one in force allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from karri.walrus import S3Error
from karri.walrus.locks import (
    COMPLIANCE,
    GOVERNANCE,
    UNLOCKED,
    Lock,
    check_delete,
    check_retention_change,
    default_lock,
)

NOW = datetime(2026, 12, 6, tzinfo=UTC)
SOON, LATER, PAST = NOW + timedelta(days=1), NOW + timedelta(days=2), NOW - timedelta(days=1)


def denied(call, *args) -> None:
    with pytest.raises(S3Error) as raised:
        call(*args)
    assert (raised.value.code, raised.value.status) == ("AccessDenied", 403)


def test_who_may_delete_a_version() -> None:
    for bypass in (False, True):
        check_delete(UNLOCKED, NOW, bypass)
        check_delete(Lock(COMPLIANCE, PAST), NOW, bypass)
        denied(check_delete, Lock(COMPLIANCE, SOON), NOW, bypass)
        denied(check_delete, Lock(legal_hold=True), NOW, bypass)
        denied(check_delete, Lock(GOVERNANCE, PAST, legal_hold=True), NOW, bypass)
    denied(check_delete, Lock(GOVERNANCE, SOON), NOW, False)
    check_delete(Lock(GOVERNANCE, SOON), NOW, True)


def test_compliance_only_grows() -> None:
    held = Lock(COMPLIANCE, SOON)
    check_retention_change(held, Lock(COMPLIANCE, LATER), NOW, False)
    check_retention_change(held, Lock(COMPLIANCE, SOON), NOW, False)
    for bypass in (False, True):
        denied(check_retention_change, held, Lock(COMPLIANCE, NOW), NOW, bypass)
        denied(check_retention_change, held, Lock(GOVERNANCE, LATER), NOW, bypass)
        denied(check_retention_change, held, UNLOCKED, NOW, bypass)
    check_retention_change(Lock(COMPLIANCE, PAST), UNLOCKED, NOW, False)  # expired


def test_governance_shrinks_only_with_a_bypass() -> None:
    held = Lock(GOVERNANCE, SOON)
    check_retention_change(held, Lock(GOVERNANCE, LATER), NOW, False)
    check_retention_change(held, Lock(COMPLIANCE, LATER), NOW, False)
    denied(check_retention_change, held, Lock(GOVERNANCE, NOW), NOW, False)
    denied(check_retention_change, held, UNLOCKED, NOW, False)
    check_retention_change(held, UNLOCKED, NOW, True)
    check_retention_change(held, Lock(COMPLIANCE, NOW + timedelta(hours=1)), NOW, True)


def test_default_retention() -> None:
    assert default_lock(None, NOW) == UNLOCKED
    assert default_lock({}, NOW) == UNLOCKED
    assert default_lock({"mode": GOVERNANCE, "days": 3}, NOW) == Lock(
        GOVERNANCE, NOW + timedelta(days=3)
    )
    assert default_lock({"mode": COMPLIANCE, "years": 1}, NOW).until == NOW + timedelta(days=365)
