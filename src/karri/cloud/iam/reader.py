"""The identity policies of a caller, parsed and cached for the policy engine.

A user's inline and attached policies and those of its groups; a role session's role's;
nothing for an account's root. The cache is keyed by the entity and dropped whenever the
change counter moves: every IAM write bumps it (a counter shared by every process serving
requests), so a change is in force from the next request on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from karri import policy
from karri.db.engine import Database

from . import models
from .builtin import BUILTIN

MAX_CACHED = 10_000


class IdentityPolicies:
    def __init__(self, db: Database, generation: Callable[[], int]) -> None:
        self.db = db
        self.generation = generation
        self._cache: dict[str, tuple[policy.Policy, ...]] = {}
        self._seen = -1
        self._lock = threading.Lock()

    def __call__(self, caller: policy.Principal) -> tuple[policy.Policy, ...]:
        if caller.type is policy.PrincipalType.USER:
            entity = caller.userid
        elif caller.type is policy.PrincipalType.ASSUMED_ROLE:
            entity = caller.userid.split(":", 1)[0]
        else:
            return ()
        generation = self.generation()
        with self._lock:
            if generation != self._seen:
                self._cache.clear()
                self._seen = generation
            found = self._cache.get(entity)
        if found is None:
            found = self._load(entity, caller.account)
            with self._lock:
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
                if self._seen == generation:
                    self._cache[entity] = found
        return found

    def of_entity(self, entity_id: str, account_id: str) -> tuple[policy.Policy, ...]:
        """A user's (with its groups'), group's or role's policies, uncached (the
        simulator's)."""
        return self._load(entity_id, account_id)

    def _load(self, entity_id: str, account_id: str) -> tuple[policy.Policy, ...]:
        with self.db.session() as session:
            entities = [entity_id]
            if entity_id.startswith("AIDA"):
                entities += session.scalars(
                    select(models.IamGroupMember.group_id).where(
                        models.IamGroupMember.user_id == entity_id
                    )
                )
            found: list[policy.Policy] = []
            for entity in entities:
                found += _inline(session, entity, account_id)
                found += _attached(session, entity, account_id)
            return tuple(found)


def _inline(session: Session, entity_id: str, account_id: str) -> list[policy.Policy]:
    rows = session.execute(
        select(models.IamInlinePolicy.name, models.IamInlinePolicy.document).where(
            models.IamInlinePolicy.entity_id == entity_id,
            models.IamInlinePolicy.account_id == account_id,
        )
    )
    return [_parse(document, policy.IDENTITY, f"{entity_id}/{name}") for name, document in rows]


def _attached(session: Session, entity_id: str, account_id: str) -> list[policy.Policy]:
    found: list[policy.Policy] = []
    arns = session.scalars(
        select(models.IamAttachment.policy_arn).where(
            models.IamAttachment.entity_id == entity_id,
            models.IamAttachment.account_id == account_id,
        )
    )
    for arn in arns:
        builtin = BUILTIN.get(arn)
        if builtin is not None:
            found.append(_parse(builtin.document, policy.MANAGED, arn))
            continue
        name = arn.rsplit("/", 1)[-1]
        document = session.scalar(
            select(models.IamPolicyVersion.document)
            .join(
                models.IamManagedPolicy,
                models.IamManagedPolicy.id == models.IamPolicyVersion.policy_id,
            )
            .where(
                models.IamManagedPolicy.account_id == account_id,
                models.IamManagedPolicy.name_key == name.lower(),
                models.IamPolicyVersion.version_id == models.IamManagedPolicy.default_version,
            )
        )
        if document is not None:
            found.append(_parse(document, policy.MANAGED, arn))
    return found


def _parse(document: str, kind: policy.Kind, name: str) -> policy.Policy:
    """Stored documents were checked when written; one that no longer parses (the
    engine grew stricter) grants nothing rather than failing every call."""
    try:
        return policy.parse(document, kind, name=name)
    except policy.MalformedPolicy:
        return policy.Policy((), name=name)
