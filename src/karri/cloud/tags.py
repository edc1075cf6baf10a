"""Tags on every kind of resource, and the registry of what can be tagged."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from karri.cloud.filters import FilterSet, Page, paginate
from karri.db.engine import Database
from karri.db.models import Tag
from karri.errors import CloudError, invalid_value, missing_parameter

MAX_TAGS_PER_RESOURCE = 50


@dataclass(frozen=True)
class Taggable:
    """A kind of resource that can carry tags."""

    prefix: str  # the id prefix: ``key`` for ``key-1a2b3c4d``
    resource_type: str  # the ``resource-type`` AWS reports: ``key-pair``
    not_found: str  # the error code for an id the account does not own
    label: str  # how messages name it: ``key pair``
    owned: Callable[[Session, str, list[str]], set[str]]
    """Which of these ids the account may tag: those it owns (and, for images, those it may
    launch: its tags on them are its own)."""


def owned_ids(model: Any, *conditions: Any) -> Callable[[Session, str, list[str]], set[str]]:
    """A Taggable's ``owned``: which of these ids are rows of ``model`` the account owns
    (and that match ``conditions``, e.g. not deleted)."""

    def owned(session: Session, account_id: str, ids: list[str]) -> set[str]:
        query = select(model.id).where(model.account_id == account_id, model.id.in_(ids))
        return set(session.scalars(query.where(*conditions)))

    return owned


@dataclass(frozen=True)
class TagDescription:
    resource_id: str
    resource_type: str
    key: str
    value: str


DESCRIBE_FILTERS: FilterSet[TagDescription] = FilterSet(
    {
        "key": lambda t: t.key,
        "value": lambda t: t.value,
        "resource-id": lambda t: t.resource_id,
        "resource-type": lambda t: t.resource_type,
    }
)


class Tags:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.kinds: dict[str, Taggable] = {}

    def register(self, kind: Taggable) -> None:
        self.kinds[kind.prefix] = kind

    def kind_of(self, resource_id: str) -> Taggable:
        prefix, _, rest = resource_id.partition("-")
        kind = self.kinds.get(prefix)
        if kind is None or not rest:
            raise CloudError("InvalidID", f"The ID '{resource_id}' is not valid")
        return kind

    def check_owned(self, session: Session, account_id: str, resource_ids: Sequence[str]) -> None:
        by_kind: dict[str, list[str]] = defaultdict(list)
        for resource_id in resource_ids:
            by_kind[self.kind_of(resource_id).prefix].append(resource_id)
        for prefix, ids in by_kind.items():
            kind = self.kinds[prefix]
            owned = kind.owned(session, account_id, ids)
            for resource_id in ids:
                if resource_id not in owned:
                    raise CloudError(
                        kind.not_found, f"The {kind.label} ID '{resource_id}' does not exist"
                    )

    def create(self, account_id: str, resource_ids: Sequence[str], tags: Mapping[str, str]) -> None:
        if not resource_ids:
            raise missing_parameter("ResourceId")
        pairs = validate_tags(tags)
        with self.db.write_session() as session:
            self.check_owned(session, account_id, resource_ids)
            self.put(session, account_id, resource_ids, pairs)

    def put(
        self, session: Session, account_id: str, resource_ids: Iterable[str], pairs: dict[str, str]
    ) -> None:
        """Set tags inside the caller's transaction (resource creation uses this too)."""
        for resource_id in resource_ids:
            existing = {
                t.key: t
                for t in session.scalars(
                    select(Tag).where(Tag.resource_id == resource_id, Tag.account_id == account_id)
                )
            }
            if len(existing.keys() | pairs.keys()) > MAX_TAGS_PER_RESOURCE:
                raise CloudError(
                    "TagLimitExceeded",
                    f"The maximum number of tags per resource ({MAX_TAGS_PER_RESOURCE}) "
                    "has been exceeded",
                )
            for key, value in pairs.items():
                if key in existing:
                    existing[key].value = value
                else:
                    session.add(
                        Tag(resource_id=resource_id, key=key, value=value, account_id=account_id)
                    )

    def delete(
        self,
        account_id: str,
        resource_ids: Sequence[str],
        tags: Sequence[tuple[str, str | None]] | None,
    ) -> None:
        """Remove the account's tags of these keys (of that value, when one is given; all
        of them without ``tags``)."""
        if not resource_ids:
            raise missing_parameter("ResourceId")
        with self.db.write_session() as session:
            self.check_owned(session, account_id, resource_ids)
            base = delete(Tag).where(
                Tag.resource_id.in_(resource_ids), Tag.account_id == account_id
            )
            if not tags:
                session.execute(base)
                return
            for key, value in tags:
                clause = base.where(Tag.key == key)
                if value is not None:
                    clause = clause.where(Tag.value == value)
                session.execute(clause)

    def forget(self, session: Session, resource_ids: Iterable[str]) -> None:
        """Drop the tags of deleted resources (every account's)."""
        session.execute(delete(Tag).where(Tag.resource_id.in_(list(resource_ids))))

    def of(
        self, session: Session, resource_ids: Iterable[str], account_id: str
    ) -> dict[str, dict[str, str]]:
        """The tags ``account_id`` put on many resources, in one query."""
        ids = list(resource_ids)
        result: dict[str, dict[str, str]] = {i: {} for i in ids}
        if not ids:
            return result
        rows = session.execute(
            select(Tag.resource_id, Tag.key, Tag.value).where(
                Tag.resource_id.in_(ids), Tag.account_id == account_id
            )
        )
        for resource_id, key, value in rows:
            result[resource_id][key] = value
        return result

    def seen_by(self, account_id: str, resource_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The tags ``account_id`` put on each of these resources (for authorization)."""
        with self.db.session() as session:
            return self.of(session, resource_ids, account_id)

    def describe(
        self,
        account_id: str,
        filters: Sequence[Mapping[str, Any]] | None,
        max_results: int | None,
        next_token: str | None,
    ) -> Page[TagDescription]:
        with self.db.session() as session:
            rows = session.scalars(select(Tag).where(Tag.account_id == account_id)).all()
        items = [
            TagDescription(t.resource_id, self._type_name(t.resource_id), t.key, t.value)
            for t in rows
        ]
        matched = DESCRIBE_FILTERS.apply(items, filters, lambda t: {t.key: t.value})
        return paginate(
            matched,
            lambda t: f"{t.resource_id}\0{t.key}",
            max_results,
            next_token,
            kind="tags",
        )

    def _type_name(self, resource_id: str) -> str:
        kind = self.kinds.get(resource_id.partition("-")[0])
        return kind.resource_type if kind else "unknown"


def validate_tags(pairs: Mapping[str, str]) -> dict[str, str]:
    """AWS's rules for tag keys and values."""
    if not pairs:
        raise missing_parameter("Tag")
    for key, value in pairs.items():
        if not key:
            raise invalid_value("Tag keys must not be empty")
        if len(key) > 128:
            raise invalid_value(f"Tag key exceeds the maximum length of 128 characters: {key}")
        if len(value) > 256:
            raise invalid_value("Tag value exceeds the maximum length of 256 characters")
        if key.lower().startswith("aws:"):
            raise invalid_value("Tag keys starting with 'aws:' are reserved for internal use")
    return dict(pairs)
