"""Users, groups and who belongs to which."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from sqlalchemy import delete, func, select

from karri.db.engine import Database

from . import models
from .errors import invalid_input, limit_exceeded, validation_error
from .names import check_name, check_path
from .store import create, get, listed, must_be_new, refuse_if_used, view
from .views import EntityView

MAX_TAGS = 50
MAX_GROUPS_PER_USER = 10


def check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise limit_exceeded(f"The number of tags has exceeded the limit of {MAX_TAGS}.")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise validation_error(f"The tag {key!r} is not valid.")
        if key.lower().startswith("aws:"):
            raise invalid_input("User-provided tag keys cannot start with the prefix 'aws:'.")
    return dict(tags)


class Users:
    def __init__(self, db: Database, changed: Callable[[], None]) -> None:
        self.db = db
        self.changed = changed

    def create_user(
        self, account_id: str, name: str, path: str | None, tags: Mapping[str, str]
    ) -> EntityView:
        tags = check_tags(tags)
        with self.db.write_session() as session:
            row = create(session, models.IamUser, account_id, name, path, tags=json.dumps(tags))
            return view(row)

    def get_user(self, account_id: str, name: str) -> EntityView:
        with self.db.session() as session:
            return view(get(session, models.IamUser, account_id, name))

    def list_users(self, account_id: str, path_prefix: str = "/") -> list[EntityView]:
        with self.db.session() as session:
            return [view(r) for r in listed(session, models.IamUser, account_id, path_prefix)]

    def update_user(
        self, account_id: str, name: str, new_name: str | None, new_path: str | None
    ) -> None:
        self._update(models.IamUser, "user", account_id, name, new_name, new_path)

    def update_group(
        self, account_id: str, name: str, new_name: str | None, new_path: str | None
    ) -> None:
        self._update(models.IamGroup, "group", account_id, name, new_name, new_path)

    def _update(
        self,
        model: type[models.IamUser] | type[models.IamGroup],
        kind: str,
        account_id: str,
        name: str,
        new_name: str | None,
        new_path: str | None,
    ) -> None:
        """A new name and/or path (UpdateUser, UpdateGroup); the name stays unique."""
        with self.db.write_session() as session:
            row = get(session, model, account_id, name)
            if new_name is not None and new_name.lower() != row.name_key:
                check_name(kind, new_name, f"new{kind.capitalize()}Name")
                must_be_new(session, model, account_id, new_name)
            if new_name is not None:
                row.name, row.name_key = new_name, new_name.lower()
            if new_path is not None:
                row.path = check_path(new_path, "newPath")
        self.changed()

    def delete_user(self, account_id: str, name: str) -> None:
        """Refused while the user has keys, policies or groups, as IAM refuses it."""
        with self.db.write_session() as session:
            row = get(session, models.IamUser, account_id, name)
            refuse_if_used(
                session,
                row.id,
                (
                    (models.IamAccessKey.user_id, "access keys"),
                    (models.IamLoginProfile.user_id, "login profile"),
                    (models.IamGroupMember.user_id, "groups"),
                    (models.IamAttachment.entity_id, "attached policies"),
                    (models.IamInlinePolicy.entity_id, "policies"),
                ),
            )
            session.delete(row)
        self.changed()

    # ---- groups

    def create_group(self, account_id: str, name: str, path: str | None) -> EntityView:
        with self.db.write_session() as session:
            return view(create(session, models.IamGroup, account_id, name, path))

    def get_group(self, account_id: str, name: str) -> tuple[EntityView, list[EntityView]]:
        """The group and its members."""
        with self.db.session() as session:
            group = get(session, models.IamGroup, account_id, name)
            members = session.scalars(
                select(models.IamUser)
                .join(models.IamGroupMember, models.IamGroupMember.user_id == models.IamUser.id)
                .where(models.IamGroupMember.group_id == group.id)
                .order_by(models.IamUser.name_key)
            )
            return view(group), [view(m) for m in members]

    def list_groups(self, account_id: str, path_prefix: str = "/") -> list[EntityView]:
        with self.db.session() as session:
            return [view(r) for r in listed(session, models.IamGroup, account_id, path_prefix)]

    def groups_for_user(self, account_id: str, user: str) -> list[EntityView]:
        with self.db.session() as session:
            row = get(session, models.IamUser, account_id, user)
            groups = session.scalars(
                select(models.IamGroup)
                .join(models.IamGroupMember, models.IamGroupMember.group_id == models.IamGroup.id)
                .where(models.IamGroupMember.user_id == row.id)
                .order_by(models.IamGroup.name_key)
            )
            return [view(g) for g in groups]

    def add_user_to_group(self, account_id: str, group: str, user: str) -> None:
        with self.db.write_session() as session:
            group_row = get(session, models.IamGroup, account_id, group)
            user_row = get(session, models.IamUser, account_id, user)
            if session.get(models.IamGroupMember, (group_row.id, user_row.id)) is None:
                if (
                    session.scalar(
                        select(func.count()).where(models.IamGroupMember.user_id == user_row.id)
                    )
                    >= MAX_GROUPS_PER_USER
                ):
                    raise limit_exceeded(
                        f"Cannot exceed quota for GroupsPerUser: {MAX_GROUPS_PER_USER}"
                    )
                session.add(models.IamGroupMember(group_id=group_row.id, user_id=user_row.id))
        self.changed()

    def remove_user_from_group(self, account_id: str, group: str, user: str) -> None:
        with self.db.write_session() as session:
            group_row = get(session, models.IamGroup, account_id, group)
            user_row = get(session, models.IamUser, account_id, user)
            session.execute(
                delete(models.IamGroupMember).where(
                    models.IamGroupMember.group_id == group_row.id,
                    models.IamGroupMember.user_id == user_row.id,
                )
            )
        self.changed()

    def delete_group(self, account_id: str, name: str) -> None:
        with self.db.write_session() as session:
            row = get(session, models.IamGroup, account_id, name)
            refuse_if_used(
                session,
                row.id,
                (
                    (models.IamGroupMember.group_id, "users"),
                    (models.IamAttachment.entity_id, "attached policies"),
                    (models.IamInlinePolicy.entity_id, "policies"),
                ),
            )
            session.delete(row)
        self.changed()
