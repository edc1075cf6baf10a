"""Listing keys in UTF-8 order with prefix, delimiter, markers and max-keys.

Rows are read in batches from the listing index; a common prefix is emitted once and
the scan jumps past it (to the prefix's successor), so a bucket with a million keys
under ``logs/`` lists ``logs/`` in one query rather than a million.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    String,
    TypeDecorator,
    and_,
    bindparam,
    or_,
    select,
    type_coerce,
)

from karri.db.reads import CompiledQuery
from karri.timestamps import iso8601_stored
from karri.walrus.buckets import Buckets
from karri.walrus.errors import invalid_argument
from karri.walrus.models import ObjectVersion
from karri.walrus.queries import listed
from karri.walrus.types import ListedObject, Listing

OBJECTS = ObjectVersion.__table__

Row = Any


def successor(text: str) -> str:
    """The smallest string greater than every string that starts with ``text``."""
    return text[:-1] + chr(ord(text[-1]) + 1)


def _group(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    index = key.find(delimiter, len(prefix))
    return key[: index + len(delimiter)] if index >= 0 else None


def scan(
    fetch: Callable[[str, bool, str | None, int], Sequence[Row]],
    key_of: Callable[[Row], str],
    *,
    prefix: str,
    delimiter: str,
    after: str,
    max_keys: int,
) -> tuple[list[Row], list[str], bool, str]:
    """Walk keys from ``after`` (exclusive); returns rows, prefixes, truncated, last.

    ``fetch(lower, inclusive, resume, limit)`` answers rows with key >= / > lower under
    the prefix, in key order; ``resume`` is the marker the first batch continues after.
    """
    if max_keys <= 0:  # as S3: an empty page that is complete, with nothing to follow
        return [], [], False, ""
    rows: list[Row] = []
    prefixes: list[str] = []
    lower, inclusive, resume = prefix, True, None
    if after and after >= prefix:
        lower, inclusive, resume = after, False, after
        group = _group(after, prefix, delimiter)
        if group is not None:  # the marker's group was listed already
            lower, inclusive, resume = successor(group), True, None
    last = ""
    batch = min(max_keys, 1000) + 1  # one more than a page: is there a next page?
    while True:
        found = fetch(lower, inclusive, resume, batch)
        resume = None
        jumped = False
        for row in found:
            key = key_of(row)
            group = _group(key, prefix, delimiter)
            if len(rows) + len(prefixes) >= max_keys:
                return rows, prefixes, True, last
            if group is not None:
                prefixes.append(group)
                last = group
                lower, inclusive, jumped = successor(group), True, True
                break
            rows.append(row)
            last = key
            lower, inclusive = key, False
        if not jumped and len(found) < batch:
            return rows, prefixes, False, last
        if not jumped and found:
            resume = found[-1]  # the versions listing continues inside this key


LISTED = (
    OBJECTS.c.seq, OBJECTS.c.key, OBJECTS.c.version_id, OBJECTS.c.size, OBJECTS.c.etag,
    OBJECTS.c.last_modified, OBJECTS.c.owner, OBJECTS.c.is_latest, OBJECTS.c.delete_marker,
)  # fmt: skip


class ListingTime(TypeDecorator):
    """A stored timestamp read as listings show it, without a datetime in between."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else iso8601_stored(value)


def _current(inclusive: bool, prefixed: bool) -> Select:
    columns = OBJECTS.c
    lower = bindparam("lower")
    shown = [*LISTED[1:]]  # ListedObject's columns, in its order; times as text
    shown[4] = type_coerce(OBJECTS.c.last_modified, ListingTime()).label("last_modified")
    query = select(*shown).where(
        columns.bucket == bindparam("bucket"),
        columns.key >= lower if inclusive else columns.key > lower,
        columns.is_latest.is_(True),
        columns.delete_marker.is_(False),
    )
    if prefixed:
        query = query.where(columns.key < bindparam("upper"))
    return query.order_by(columns.key).limit(bindparam("limit"))


class CurrentListing:
    """ListObjects' reads, compiled once per engine (a listing page is ~1,000 rows)."""

    def __init__(self, engine: Engine) -> None:
        self.queries = {
            (inclusive, prefixed): CompiledQuery(
                engine, _current(inclusive, prefixed), row_type=ListedObject
            )
            for inclusive in (True, False)
            for prefixed in (True, False)
        }

    def fetcher(self, bucket: str, prefix: str):
        """Latest, non-deleted versions (ListedObjects) for ``scan``."""
        upper = successor(prefix) if prefix else None

        def fetch(lower: str, inclusive: bool, _resume: Any, limit: int) -> list[ListedObject]:
            query = self.queries[inclusive, upper is not None]
            params = {"bucket": bucket, "lower": lower, "limit": limit}
            if upper is not None:
                params["upper"] = upper
            return query.rows(**params)

        return fetch


def versions_fetcher(connection: Connection, bucket: str, prefix: str, version_seq: int | None):
    """Every version and delete marker, by key then newest first: ListObjectVersions.

    ``version_seq`` continues inside the marker key after that version.
    """
    columns = OBJECTS.c
    state = {"first": True}

    def fetch(lower: str, inclusive: bool, resume: Any, limit: int) -> Sequence[Row]:
        condition = columns.key >= lower if inclusive else columns.key > lower
        if state["first"] and version_seq is not None and not inclusive:
            condition = or_(condition, and_(columns.key == lower, columns.seq < version_seq))
        if resume is not None and not isinstance(resume, str):
            condition = or_(
                columns.key > resume.key, and_(columns.key == resume.key, columns.seq < resume.seq)
            )
        state["first"] = False
        query = select(*LISTED).where(columns.bucket == bucket, condition)
        if prefix:
            query = query.where(columns.key < successor(prefix))
        return connection.execute(
            query.order_by(columns.key, columns.seq.desc()).limit(limit)
        ).all()

    return fetch


class Listings:
    """ListObjects and ListObjectVersions over one store's objects (``Walrus.listings``)."""

    def __init__(self, engine: Engine, buckets: Buckets) -> None:
        self._engine = engine
        self._buckets = buckets
        self._current = CurrentListing(engine)

    def current(
        self,
        bucket: str,
        prefix: str = "",
        *,
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
    ) -> Listing:
        """Current objects in key order (UTF-8 byte order), S3's ListObjects semantics.

        The listed records carry what a listing shows (no metadata, ACL or tags)."""
        self._buckets.get(bucket)
        rows, prefixes, truncated, last = scan(
            self._current.fetcher(bucket, prefix),
            lambda row: row.key,
            prefix=prefix,
            delimiter=delimiter,
            after=after,
            max_keys=max_keys,
        )
        return Listing(rows, prefixes, truncated, last)

    def versions(
        self,
        bucket: str,
        prefix: str = "",
        *,
        delimiter: str = "",
        key_marker: str = "",
        version_marker: str = "",
        max_keys: int = 1000,
    ) -> Listing:
        self._buckets.get(bucket)
        with self._engine.connect() as connection:
            seq = None
            if key_marker and version_marker:
                seq = connection.execute(
                    select(OBJECTS.c.seq).where(
                        OBJECTS.c.bucket == bucket,
                        OBJECTS.c.key == key_marker,
                        OBJECTS.c.version_id == version_marker,
                    )
                ).scalar()
                if seq is None:
                    raise invalid_argument("Invalid version id specified")
            rows, prefixes, truncated, last = scan(
                versions_fetcher(connection, bucket, prefix, seq),
                lambda row: row.key,
                prefix=prefix,
                delimiter=delimiter,
                after=key_marker,
                max_keys=max_keys,
            )
            next_version = ""
            if truncated and rows and rows[-1].key == last:
                next_version = rows[-1].version_id
            return Listing([listed(r) for r in rows], prefixes, truncated, last, next_version)
