"""Timestamps as AWS writes them: ISO 8601 in UTC with milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def iso8601(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
