"""One pass of the lifecycle rules over the store, "as of" a given time.

For every bucket with rules: current versions past their expiration are deleted as a
DELETE would (a delete marker in a versioned bucket), noncurrent versions past their
``NoncurrentDays`` (beyond the ``NewerNoncurrentVersions`` kept) are removed, a delete
marker left alone is removed, and uploads older than ``DaysAfterInitiation`` are aborted.
Each deletion is conditional on the version still being what the scan saw, so a pass
may run while clients write. ``due`` decides for one key and is pure.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from karri.db.engine import Database
from karri.walrus.errors import S3Error
from karri.walrus.lifecycle import (
    CONFIG,
    Lifecycle,
    after_days,
    aware,
    lifecycle_from_json,
    prefixes,
)
from karri.walrus.listing import successor
from karri.walrus.models import Bucket, ObjectVersion, Upload
from karri.walrus.multipart import Uploads
from karri.walrus.objects import Objects

log = logging.getLogger("karri.walrus")
KEYS_PER_BATCH = 500


@dataclass(frozen=True)
class Version:
    """What the rules look at of one version of a key."""

    seq: int
    is_latest: bool
    delete_marker: bool
    size: int
    tags: dict[str, str]
    last_modified: datetime


def due(key: str, versions: Sequence[Version], lifecycle: Lifecycle, now: datetime) -> list:
    """The (kind, seq) actions due on one key; ``versions`` newest first."""
    if not versions or not versions[0].is_latest:
        return []
    actions = []
    latest = versions[0]
    if not latest.delete_marker:
        found = lifecycle.expiration(key, latest.size, latest.tags, latest.last_modified)
        if found is not None and found[0] <= now:
            actions.append(("current", latest.seq))
    elif len(versions) == 1 and _marker_expired(key, latest, lifecycle, now):
        actions.append(("marker", latest.seq))
    for index in range(1, len(versions)):
        version, since = versions[index], versions[index - 1].last_modified
        size, tags = (0, {}) if version.delete_marker else (version.size, version.tags)
        for rule in lifecycle.enabled:
            if rule.noncurrent_days is None or not rule.filter.matches(key, size, tags):
                continue
            if index - 1 < (rule.newer_noncurrent_versions or 0):
                continue  # among the newest noncurrent versions the rule keeps
            if after_days(since, rule.noncurrent_days) <= now:
                actions.append(("noncurrent", version.seq))
                break
    return actions


def _marker_expired(key: str, marker: Version, lifecycle: Lifecycle, now: datetime) -> bool:
    """A lone delete marker goes under ``ExpiredObjectDeleteMarker`` (from the midnight
    after it was made), or under an ``Expiration`` of ``Days`` once it is that old."""
    for rule in lifecycle.enabled:
        if not rule.filter.matches(key, 0, {}):
            continue
        if rule.expired_delete_marker:
            when = after_days(marker.last_modified, 0)
        elif rule.expiration_days is not None:
            when = after_days(marker.last_modified, rule.expiration_days)
        else:
            continue
        if when <= now:
            return True
    return False


class LifecycleSweep:
    """``run(now)`` applies every bucket's rules as of ``now`` (``Walrus.apply_lifecycle``)."""

    def __init__(self, db: Database, objects: Objects, uploads: Uploads) -> None:
        self._db = db
        self._objects = objects
        self._uploads = uploads

    def run(self, now: datetime) -> dict[str, int]:
        """What was done, by kind: ``current``, ``noncurrent``, ``marker``, ``aborted``."""
        now = aware(now)
        done: Counter[str] = Counter()
        for name, lifecycle in self._configured():
            try:
                self._objects_of(name, lifecycle, now, done)
                self._uploads_of(name, lifecycle, now, done)
            except S3Error as error:  # the bucket went away meanwhile
                if error.code != "NoSuchBucket":
                    raise
        if done:
            log.info("lifecycle as of %s: %s", now.isoformat(), dict(done))
        return {kind: done[kind] for kind in ("current", "noncurrent", "marker", "aborted")}

    def _configured(self) -> Iterator[tuple[str, Lifecycle]]:
        with self._db.session() as session:
            rows = session.execute(select(Bucket.name, Bucket.configs)).all()
        for name, configs in rows:
            lifecycle = lifecycle_from_json((configs or {}).get(CONFIG))
            if lifecycle is not None and lifecycle.enabled:
                yield name, lifecycle

    def _objects_of(self, bucket: str, lifecycle: Lifecycle, now: datetime, done: Counter):
        for prefix in prefixes(lifecycle.enabled):
            for batch in self._keys(bucket, prefix):
                # A batch's deletions go to the group committer together: few commits.
                queued = [
                    (kind, self._objects.expire_later(bucket, key, seq, kind))
                    for key, versions in batch
                    for kind, seq in due(key, versions, lifecycle, now)
                ]
                for kind, future in queued:
                    try:
                        expired = future.result()
                    except S3Error as error:  # under Object Lock: it stays, as on AWS
                        log.debug("lifecycle: %s/%s kept: %s", bucket, kind, error.code)
                        continue
                    if expired is not None:
                        done[kind] += 1

    def _keys(self, bucket: str, prefix: str) -> Iterator[list[tuple[str, list[Version]]]]:
        """Every key under ``prefix`` with its versions (newest first), in batches."""
        o = ObjectVersion
        after = None
        while True:
            with self._db.session() as session:
                query = select(o.key).where(o.bucket == bucket).distinct()
                if prefix:
                    query = query.where(o.key >= prefix, o.key < successor(prefix))
                if after is not None:
                    query = query.where(o.key > after)
                keys = list(session.scalars(query.order_by(o.key).limit(KEYS_PER_BATCH)))
                if not keys:
                    return
                rows = session.execute(
                    select(
                        o.key, o.seq, o.is_latest, o.delete_marker, o.size, o.tags,
                        o.last_modified,
                    )
                    .where(o.bucket == bucket, o.key.in_(keys))
                    .order_by(o.key, o.seq.desc())
                ).all()  # fmt: skip
            grouped: dict[str, list[Version]] = {key: [] for key in keys}
            for row in rows:
                grouped[row.key].append(_version(row))
            yield list(grouped.items())
            after = keys[-1]

    def _uploads_of(self, bucket: str, lifecycle: Lifecycle, now: datetime, done: Counter):
        if all(rule.abort_days is None for rule in lifecycle.enabled):
            return
        with self._db.session() as session:
            uploads = session.execute(
                select(Upload.id, Upload.key, Upload.created_at).where(Upload.bucket == bucket)
            ).all()
        for upload_id, key, created_at in uploads:
            found = lifecycle.abort(key, created_at)
            if found is None or found[0] > now:
                continue
            try:
                self._uploads.abort_upload(bucket, key, upload_id)
                done["aborted"] += 1
            except S3Error as error:
                if error.code != "NoSuchUpload":  # completed or aborted meanwhile
                    raise


def _version(row: Any) -> Version:
    return Version(
        row.seq, row.is_latest, row.delete_marker, row.size, row.tags or {}, row.last_modified
    )
