"""Looking IAM's entities up by name inside one account; the refusals when they are not
there or already are."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from . import models
from .errors import already_exists, delete_conflict, no_such_entity
from .names import arn, check_name, check_path, new_unique_id
from .views import EntityView

T = TypeVar(
    "T",
    models.IamUser,
    models.IamGroup,
    models.IamRole,
    models.IamInstanceProfile,
    models.IamManagedPolicy,
)

KINDS: dict[type, str] = {
    models.IamUser: "user",
    models.IamGroup: "group",
    models.IamRole: "role",
    models.IamInstanceProfile: "instance-profile",
    models.IamManagedPolicy: "policy",
}
_WORDS = {
    "user": "user",
    "group": "group",
    "role": "role",
    "instance-profile": "Instance Profile",
    "policy": "policy",
}


def find(session: Session, model: type[T], account_id: str, name: str) -> T | None:
    return session.scalar(
        select(model).where(model.account_id == account_id, model.name_key == name.lower())
    )


def get(session: Session, model: type[T], account_id: str, name: str) -> T:
    row = find(session, model, account_id, name)
    if row is None:
        word = _WORDS[KINDS[model]]
        raise no_such_entity(f"The {word} with name {name} cannot be found.")
    return row


def must_be_new(session: Session, model: type[T], account_id: str, name: str) -> None:
    if find(session, model, account_id, name) is not None:
        word = _WORDS[KINDS[model]]
        raise already_exists(f"{word[0].upper()}{word[1:]} with name {name} already exists.")


def create(
    session: Session, model: type[T], account_id: str, name: str, path: str | None, **extra: Any
) -> T:
    """A new entity of this kind, its name and path checked and free in the account."""
    kind = KINDS[model]
    check_name(kind, name, f"{kind.replace('-p', 'P')}Name")
    row = model(
        id=new_unique_id(kind),
        account_id=account_id,
        name=name,
        name_key=name.lower(),
        path=check_path(path),
        **extra,
    )
    must_be_new(session, model, account_id, name)
    session.add(row)
    session.flush()
    return row


def listed(session: Session, model: type[T], account_id: str, path_prefix: str) -> list[T]:
    """The account's entities of this kind under a path, by name."""
    rows = session.scalars(
        select(model).where(model.account_id == account_id).order_by(model.name_key)
    )
    return [row for row in rows if row.path.startswith(path_prefix)]


def refuse_if_used(session: Session, entity_id: str, uses: Sequence[tuple[Any, str]]) -> None:
    """IAM's ``DeleteConflict`` while any ``(column, what)`` still names the entity."""
    for column, what in uses:
        if session.scalar(select(exists().where(column == entity_id))):
            raise delete_conflict(f"Cannot delete entity, must remove {what} first.")


def view(
    row: models.IamUser | models.IamGroup | models.IamRole | models.IamInstanceProfile,
) -> EntityView:
    kind = KINDS[type(row)]
    extra: dict = {}
    if isinstance(row, models.IamRole):
        extra = {
            "trust_policy": row.trust_policy,
            "description": row.description or None,
            "max_session_duration": row.max_session_duration,
        }
    tags = json.loads(row.tags) if not isinstance(row, models.IamGroup) else {}
    return EntityView(
        kind,
        row.id,
        row.name,
        row.path,
        arn(row.account_id, kind, row.name, row.path),
        row.created_at,
        tags,
        **extra,
    )
