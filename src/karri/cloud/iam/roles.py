"""Roles (with their trust policies) and instance profiles."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from sqlalchemy import select

from karri import policy
from karri.db.engine import Database

from . import models
from .errors import delete_conflict, limit_exceeded, no_such_entity, validation_error
from .store import create, get, listed, refuse_if_used, view
from .users import check_tags
from .views import EntityView

MIN_SESSION, MAX_SESSION = 3600, 43200


def check_trust_policy(document: str) -> str:
    policy.parse(document, policy.TRUST, limit=policy.TRUST_POLICY_SIZE)
    return document


class Roles:
    def __init__(self, db: Database, changed: Callable[[], None]) -> None:
        self.db = db
        self.changed = changed

    def create_role(
        self,
        account_id: str,
        name: str,
        trust_policy: str,
        *,
        path: str | None = None,
        description: str = "",
        max_session_duration: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> EntityView:
        duration = _duration(max_session_duration)
        check_trust_policy(trust_policy)
        with self.db.write_session() as session:
            row = create(
                session,
                models.IamRole,
                account_id,
                name,
                path,
                trust_policy=trust_policy,
                description=description,
                max_session_duration=duration,
                tags=json.dumps(check_tags(tags or {})),
            )
            return view(row)

    def get_role(self, account_id: str, name: str) -> EntityView:
        with self.db.session() as session:
            return view(get(session, models.IamRole, account_id, name))

    def list_roles(self, account_id: str, path_prefix: str = "/") -> list[EntityView]:
        with self.db.session() as session:
            return [view(r) for r in listed(session, models.IamRole, account_id, path_prefix)]

    def update_trust_policy(self, account_id: str, name: str, document: str) -> None:
        check_trust_policy(document)
        with self.db.write_session() as session:
            get(session, models.IamRole, account_id, name).trust_policy = document
        self.changed()

    def update_role(
        self, account_id: str, name: str, description: str | None, max_duration: int | None
    ) -> None:
        with self.db.write_session() as session:
            row = get(session, models.IamRole, account_id, name)
            if description is not None:
                row.description = description
            if max_duration is not None:
                row.max_session_duration = _duration(max_duration)
        self.changed()

    def delete_role(self, account_id: str, name: str) -> None:
        with self.db.write_session() as session:
            row = get(session, models.IamRole, account_id, name)
            refuse_if_used(
                session,
                row.id,
                (
                    (models.IamInstanceProfile.role_id, "instance profiles"),
                    (models.IamAttachment.entity_id, "attached policies"),
                    (models.IamInlinePolicy.entity_id, "policies"),
                ),
            )
            session.delete(row)
        self.changed()

    # ---- instance profiles

    def create_instance_profile(
        self,
        account_id: str,
        name: str,
        path: str | None,
        tags: Mapping[str, str] | None = None,
    ) -> EntityView:
        tags = check_tags(tags or {})
        with self.db.write_session() as session:
            row = create(
                session, models.IamInstanceProfile, account_id, name, path, tags=json.dumps(tags)
            )
            return self._profile(session, row)

    def get_instance_profile(self, account_id: str, name: str) -> EntityView:
        with self.db.session() as session:
            return self._profile(session, get(session, models.IamInstanceProfile, account_id, name))

    def list_instance_profiles(
        self, account_id: str, path_prefix: str = "/", role: str | None = None
    ) -> list[EntityView]:
        with self.db.session() as session:
            query = select(models.IamInstanceProfile).where(
                models.IamInstanceProfile.account_id == account_id
            )
            if role is not None:
                role_id = get(session, models.IamRole, account_id, role).id
                query = query.where(models.IamInstanceProfile.role_id == role_id)
            rows = session.scalars(query.order_by(models.IamInstanceProfile.name_key))
            return [self._profile(session, r) for r in rows if r.path.startswith(path_prefix)]

    def add_role_to_instance_profile(self, account_id: str, profile: str, role: str) -> None:
        with self.db.write_session() as session:
            row = get(session, models.IamInstanceProfile, account_id, profile)
            role_row = get(session, models.IamRole, account_id, role)
            if row.role_id is not None:
                raise limit_exceeded(
                    "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1"
                )
            row.role_id = role_row.id

    def remove_role_from_instance_profile(self, account_id: str, profile: str, role: str) -> None:
        with self.db.write_session() as session:
            row = get(session, models.IamInstanceProfile, account_id, profile)
            role_row = get(session, models.IamRole, account_id, role)
            if row.role_id != role_row.id:
                raise no_such_entity(
                    f"The role with name {role} cannot be found in the instance profile."
                )
            row.role_id = None

    def delete_instance_profile(self, account_id: str, name: str) -> None:
        with self.db.write_session() as session:
            row = get(session, models.IamInstanceProfile, account_id, name)
            if row.role_id is not None:
                raise delete_conflict(
                    "Cannot delete entity, must remove roles from instance profile first."
                )
            session.delete(row)

    @staticmethod
    def _profile(session, row: models.IamInstanceProfile) -> EntityView:
        base = view(row)
        role = session.get(models.IamRole, row.role_id) if row.role_id else None
        roles = (view(role),) if role is not None else ()
        return EntityView(
            base.kind, base.id, base.name, base.path, base.arn, base.created, base.tags, roles=roles
        )


def _duration(value: int | None) -> int:
    if value is None:
        return MIN_SESSION
    if not MIN_SESSION <= value <= MAX_SESSION:
        raise validation_error(
            f"1 validation error detected: Value '{value}' at 'maxSessionDuration' failed to "
            f"satisfy constraint: Member must have value between {MIN_SESSION} and {MAX_SESSION}"
        )
    return value
