"""Managed policies (customer managed, with versions, and AWS's built-ins), their
attachments to users, groups and roles, and inline policies."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from karri import policy
from karri.db.base import utcnow
from karri.db.engine import Database
from karri.errors import CloudError

from . import models
from .builtin import BUILTIN, CREATED
from .errors import delete_conflict, invalid_input, limit_exceeded, no_such_entity
from .names import arn, check_name
from .store import KINDS, create, find, get
from .users import check_tags
from .views import AttachedPolicy, PolicyView, VersionView

MAX_VERSIONS = 5
MAX_ATTACHED = 10
INLINE_LIMITS = {
    "user": policy.USER_POLICY_SIZE,
    "group": policy.GROUP_POLICY_SIZE,
    "role": policy.ROLE_POLICY_SIZE,
}
ENTITY = {"user": models.IamUser, "group": models.IamGroup, "role": models.IamRole}


def check_managed(document: str) -> None:
    policy.parse(document, policy.MANAGED, limit=policy.MANAGED_POLICY_SIZE)


class Policies:
    def __init__(self, db: Database, changed: Callable[[], None]) -> None:
        self.db = db
        self.changed = changed

    # ---- managed policies

    def create_policy(
        self,
        account_id: str,
        name: str,
        document: str,
        path: str | None,
        description: str,
        tags: Mapping[str, str] | None = None,
    ) -> PolicyView:
        check_managed(document)
        tags = check_tags(tags or {})
        with self.db.write_session() as session:
            row = create(
                session,
                models.IamManagedPolicy,
                account_id,
                name,
                path,
                description=description,
                tags=json.dumps(tags),
            )
            session.add(
                models.IamPolicyVersion(policy_id=row.id, version_id="v1", document=document)
            )
            return self._view(session, row)

    def get_policy(self, account_id: str, policy_arn: str) -> PolicyView:
        with self.db.session() as session:
            builtin = BUILTIN.get(policy_arn)
            if builtin is not None:
                return self._builtin_view(session, account_id, policy_arn)
            return self._view(session, self._row(session, account_id, policy_arn))

    def list_policies(self, account_id: str, scope: str = "All") -> list[PolicyView]:
        with self.db.session() as session:
            views: list[PolicyView] = []
            if scope in ("All", "AWS"):
                views += [self._builtin_view(session, account_id, a) for a in BUILTIN]
            if scope in ("All", "Local"):
                rows = session.scalars(
                    select(models.IamManagedPolicy)
                    .where(models.IamManagedPolicy.account_id == account_id)
                    .order_by(models.IamManagedPolicy.name_key)
                )
                views += [self._view(session, r) for r in rows]
            return views

    def delete_policy(self, account_id: str, policy_arn: str) -> None:
        with self.db.write_session() as session:
            row = self._row(session, account_id, policy_arn)
            if _attachments(session, account_id, policy_arn):
                raise delete_conflict("Cannot delete a policy attached to entities.")
            if (
                session.scalar(
                    select(func.count()).where(models.IamPolicyVersion.policy_id == row.id)
                )
                > 1
            ):
                raise delete_conflict(
                    "This policy has more than one version. Before you delete a policy, you "
                    "must delete the policy's versions. The default version is deleted with "
                    "the policy."
                )
            session.execute(
                delete(models.IamPolicyVersion).where(models.IamPolicyVersion.policy_id == row.id)
            )
            session.delete(row)

    def create_version(
        self, account_id: str, policy_arn: str, document: str, set_default: bool
    ) -> VersionView:
        check_managed(document)
        with self.db.write_session() as session:
            row = self._row(session, account_id, policy_arn)
            count = session.scalar(
                select(func.count()).where(models.IamPolicyVersion.policy_id == row.id)
            )
            if count >= MAX_VERSIONS:
                raise limit_exceeded(
                    f"A managed policy can have up to {MAX_VERSIONS} versions. Before you create "
                    "a new version, you must delete an existing version."
                )
            version_id = f"v{row.next_version}"
            row.next_version += 1
            row.updated_at = utcnow()
            version = models.IamPolicyVersion(
                policy_id=row.id, version_id=version_id, document=document
            )
            session.add(version)
            if set_default:
                row.default_version = version_id
            session.flush()
            result = VersionView(version_id, document, set_default, version.created_at)
        self.changed()
        return result

    def get_version(self, account_id: str, policy_arn: str, version_id: str) -> VersionView:
        with self.db.session() as session:
            builtin = BUILTIN.get(policy_arn)
            if builtin is not None:
                if version_id != "v1":
                    raise _no_version(policy_arn, version_id)
                return VersionView("v1", builtin.document, True, CREATED)
            row = self._row(session, account_id, policy_arn)
            version = session.get(models.IamPolicyVersion, (row.id, version_id))
            if version is None:
                raise _no_version(policy_arn, version_id)
            return VersionView(
                version_id, version.document, version_id == row.default_version, version.created_at
            )

    def list_versions(self, account_id: str, policy_arn: str) -> list[VersionView]:
        with self.db.session() as session:
            if policy_arn in BUILTIN:
                return [VersionView("v1", BUILTIN[policy_arn].document, True, CREATED)]
            row = self._row(session, account_id, policy_arn)
            versions = session.scalars(
                select(models.IamPolicyVersion).where(models.IamPolicyVersion.policy_id == row.id)
            )
            return sorted(
                (
                    VersionView(
                        v.version_id, v.document, v.version_id == row.default_version, v.created_at
                    )
                    for v in versions
                ),
                key=lambda v: -int(v.version_id[1:]),
            )

    def set_default_version(self, account_id: str, policy_arn: str, version_id: str) -> None:
        with self.db.write_session() as session:
            row = self._row(session, account_id, policy_arn)
            if session.get(models.IamPolicyVersion, (row.id, version_id)) is None:
                raise _no_version(policy_arn, version_id)
            row.default_version = version_id
            row.updated_at = utcnow()
        self.changed()

    def delete_version(self, account_id: str, policy_arn: str, version_id: str) -> None:
        with self.db.write_session() as session:
            row = self._row(session, account_id, policy_arn)
            version = session.get(models.IamPolicyVersion, (row.id, version_id))
            if version is None:
                raise _no_version(policy_arn, version_id)
            if version_id == row.default_version:
                raise delete_conflict("Cannot delete the default version of a policy.")
            session.delete(version)

    # ---- attachments

    def attach(self, account_id: str, kind: str, name: str, policy_arn: str) -> None:
        with self.db.write_session() as session:
            entity = get(session, ENTITY[kind], account_id, name)
            if policy_arn not in BUILTIN:
                self._row(session, account_id, policy_arn)
            attached = session.scalar(
                select(func.count()).where(models.IamAttachment.entity_id == entity.id)
            )
            if session.get(models.IamAttachment, (entity.id, policy_arn)) is None:
                if attached >= MAX_ATTACHED:
                    raise limit_exceeded(f"Cannot exceed quota for PoliciesPerUser: {MAX_ATTACHED}")
                session.add(
                    models.IamAttachment(
                        entity_id=entity.id,
                        policy_arn=policy_arn,
                        account_id=account_id,
                        entity_kind=kind,
                    )
                )
        self.changed()

    def detach(self, account_id: str, kind: str, name: str, policy_arn: str) -> None:
        with self.db.write_session() as session:
            entity = get(session, ENTITY[kind], account_id, name)
            row = session.get(models.IamAttachment, (entity.id, policy_arn))
            if row is None:
                raise no_such_entity(f"Policy {policy_arn} was not found.")
            session.delete(row)
        self.changed()

    def attached(self, account_id: str, kind: str, name: str) -> list[AttachedPolicy]:
        with self.db.session() as session:
            entity = get(session, ENTITY[kind], account_id, name)
            arns = session.scalars(
                select(models.IamAttachment.policy_arn)
                .where(models.IamAttachment.entity_id == entity.id)
                .order_by(models.IamAttachment.policy_arn)
            )
            return [AttachedPolicy(a.rsplit("/", 1)[-1], a) for a in arns]

    def entities_for_policy(
        self, account_id: str, policy_arn: str
    ) -> dict[str, list[tuple[str, str]]]:
        """``{"user": [(name, id)…], "group": …, "role": …}``."""
        with self.db.session() as session:
            if policy_arn not in BUILTIN:
                self._row(session, account_id, policy_arn)
            found: dict[str, list[tuple[str, str]]] = {"user": [], "group": [], "role": []}
            for attachment in _attachments(session, account_id, policy_arn):
                entity = session.get(ENTITY[attachment.entity_kind], attachment.entity_id)
                if entity is not None:
                    found[attachment.entity_kind].append((entity.name, entity.id))
            return found

    # ---- inline policies

    def put_inline(
        self, account_id: str, kind: str, name: str, policy_name: str, document: str
    ) -> None:
        check_name("policy", policy_name, "policyName")
        policy.parse(document, policy.IDENTITY, limit=INLINE_LIMITS[kind], entity=name)
        with self.db.write_session() as session:
            entity = get(session, ENTITY[kind], account_id, name)
            others = session.scalars(
                select(models.IamInlinePolicy.document).where(
                    models.IamInlinePolicy.entity_id == entity.id,
                    models.IamInlinePolicy.name != policy_name,
                )
            )
            INLINE_LIMITS[kind].check("".join([*others, document]), name)
            row = session.get(models.IamInlinePolicy, (entity.id, policy_name))
            if row is None:
                session.add(
                    models.IamInlinePolicy(
                        entity_id=entity.id,
                        name=policy_name,
                        account_id=account_id,
                        document=document,
                    )
                )
            else:
                row.document = document
        self.changed()

    def get_inline(self, account_id: str, kind: str, name: str, policy_name: str) -> str:
        with self.db.session() as session:
            return _inline(session, account_id, kind, name, policy_name).document

    def list_inline(self, account_id: str, kind: str, name: str) -> list[str]:
        with self.db.session() as session:
            entity = get(session, ENTITY[kind], account_id, name)
            return list(
                session.scalars(
                    select(models.IamInlinePolicy.name)
                    .where(models.IamInlinePolicy.entity_id == entity.id)
                    .order_by(models.IamInlinePolicy.name)
                )
            )

    def delete_inline(self, account_id: str, kind: str, name: str, policy_name: str) -> None:
        with self.db.write_session() as session:
            session.delete(_inline(session, account_id, kind, name, policy_name))
        self.changed()

    # ----

    def _row(self, session: Session, account_id: str, policy_arn: str) -> models.IamManagedPolicy:
        return customer_policy(session, account_id, policy_arn)

    def _view(self, session: Session, row: models.IamManagedPolicy) -> PolicyView:
        policy_arn = arn(row.account_id, "policy", row.name, row.path)
        return PolicyView(
            policy_arn,
            row.name,
            row.id,
            row.path,
            row.default_version,
            len(_attachments(session, row.account_id, policy_arn)),
            row.created_at,
            row.updated_at,
            row.description,
            tags=json.loads(row.tags),
        )

    def _builtin_view(self, session: Session, account_id: str, policy_arn: str) -> PolicyView:
        builtin = BUILTIN[policy_arn]
        return PolicyView(
            policy_arn,
            builtin.name,
            builtin.policy_id,
            "/",
            "v1",
            len(_attachments(session, account_id, policy_arn)),
            CREATED,
            CREATED,
            builtin.description,
        )


def customer_policy(session: Session, account_id: str, policy_arn: str) -> models.IamManagedPolicy:
    """The account's own managed policy of this ARN: AWS's built-ins are ``InvalidInput``
    (they cannot be changed, nor tagged), any other ARN not found ``NoSuchEntity``."""
    if policy_arn in BUILTIN or policy_arn.startswith("arn:aws:iam::aws:"):
        if policy_arn in BUILTIN:
            raise invalid_input(f"Policy {policy_arn} is an AWS managed policy.")
        raise no_such_entity(f"Policy {policy_arn} does not exist or is not attachable.")
    if not policy_arn.startswith("arn:"):
        raise invalid_input(f"ARN {policy_arn} is not valid.")
    row = find(session, models.IamManagedPolicy, account_id, policy_arn.rsplit("/", 1)[-1])
    if row is not None and arn(account_id, "policy", row.name, row.path) == policy_arn:
        return row
    raise no_such_entity(f"Policy {policy_arn} does not exist or is not attachable.")


def _inline(
    session: Session, account_id: str, kind: str, name: str, policy_name: str
) -> models.IamInlinePolicy:
    entity = get(session, ENTITY[kind], account_id, name)
    row = session.get(models.IamInlinePolicy, (entity.id, policy_name))
    if row is None:
        raise no_such_entity(f"The {kind} policy with name {policy_name} cannot be found.")
    return row


def _no_version(policy_arn: str, version_id: str) -> CloudError:
    return no_such_entity(
        f"Policy {policy_arn} version {version_id} does not exist or is not attachable."
    )


def _attachments(session: Session, account_id: str, policy_arn: str) -> list[models.IamAttachment]:
    return list(
        session.scalars(
            select(models.IamAttachment).where(
                models.IamAttachment.account_id == account_id,
                models.IamAttachment.policy_arn == policy_arn,
            )
        )
    )


__all__ = ["KINDS", "Policies"]
