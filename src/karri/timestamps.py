"""Timestamps as AWS writes them: ISO 8601 in UTC with milliseconds, and HTTP dates."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache


@lru_cache(maxsize=8192)  # a Describe renders the same creation times over and over
def iso8601(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():
        value = value.astimezone(UTC)
    # By hand: strftime is the slowest part of rendering a Describe answer.
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond // 1000:03d}Z"
    )


def iso8601_stored(value: str | datetime) -> str:
    """``iso8601`` of a timestamp as the database hands it back, naive UTC: SQLite's text
    ("2026-11-27 13:40:00.123456", sliced rather than parsed: listings show thousands)
    or, from other drivers, a datetime."""
    if isinstance(value, datetime):
        return iso8601(value)
    millis = (value[19:23] or ".000").ljust(4, "0")
    return f"{value[:10]}T{value[11:19]}{millis}Z"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(value: datetime) -> str:
    """The HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT``) of a UTC or aware datetime.

    By hand: ``email.utils.format_datetime`` cost a twentieth of a small GET."""
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    return (
        f"{_DAYS[value.weekday()]}, {value.day:02d} {_MONTHS[value.month - 1]} {value.year:04d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} GMT"
    )


def parse_http_date(value: str) -> datetime | None:
    """An HTTP (RFC 2822) date as an aware UTC datetime, or None if it is not one; a date
    without a zone, or with ``-0000``, is taken to be UTC."""
    try:
        parsed = parsedate_to_datetime(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
