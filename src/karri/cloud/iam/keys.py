"""Users' access keys (at most two each, Active or Inactive) and finding whose any key is:
the account's root keys, a user's, or a session's (STS)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from karri import policy
from karri.db.base import utcnow
from karri.db.engine import Database
from karri.db.models import AccessKey, Account

from . import models
from .errors import limit_exceeded, no_such_entity
from .names import new_secret, new_unique_id
from .store import get
from .views import KeyView

log = logging.getLogger("karri.iam")

MAX_KEYS = 2
NOTE_EVERY = timedelta(minutes=1)  # GetAccessKeyLastUsed is not to the second on AWS either


@dataclass(frozen=True)
class FoundKey:
    """What authentication needs to know about any access key."""

    secret: str
    account_id: str
    account_name: str
    identity: policy.Principal | None = None  # None: the account's root
    session_policies: tuple[str, ...] = ()  # documents, as the caller gave them
    token: str | None = None  # temporary credentials only
    expires_at: datetime | None = None


class AccessKeys:
    def __init__(self, db: Database, changed: Callable[[str], None]) -> None:
        """``changed(access_key_id)``: the key was deactivated or deleted (committed)."""
        self.db = db
        self.changed = changed
        self._noted: dict[str, datetime] = {}
        self._pending: dict[str, tuple[datetime, str, str]] = {}
        self._lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None

    def create(self, account_id: str, user: str) -> KeyView:
        with self.db.write_session() as session:
            row = get(session, models.IamUser, account_id, user)
            count = session.scalar(
                select(func.count()).where(models.IamAccessKey.user_id == row.id)
            )
            if count >= MAX_KEYS:
                raise limit_exceeded(f"Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS}")
            key = models.IamAccessKey(
                id=new_unique_id("access-key"),
                account_id=account_id,
                user_id=row.id,
                secret=new_secret(),
                created_at=utcnow(),
            )
            session.add(key)
            return KeyView(row.name, key.id, True, key.created_at, secret=key.secret)

    def list(self, account_id: str, user: str) -> list[KeyView]:
        with self.db.session() as session:
            row = get(session, models.IamUser, account_id, user)
            keys = session.scalars(
                select(models.IamAccessKey)
                .where(models.IamAccessKey.user_id == row.id)
                .order_by(models.IamAccessKey.created_at)
            )
            return [KeyView(row.name, k.id, k.active, k.created_at) for k in keys]

    def set_active(self, account_id: str, user: str, key_id: str, active: bool) -> None:
        with self.db.write_session() as session:
            self._key(session, account_id, user, key_id).active = active
        self.changed(key_id)

    def delete(self, account_id: str, user: str, key_id: str) -> None:
        with self.db.write_session() as session:
            session.delete(self._key(session, account_id, user, key_id))
        self.changed(key_id)

    def last_used(self, account_id: str, key_id: str) -> KeyView:
        with self.db.session() as session:
            key = session.get(models.IamAccessKey, key_id)
            if key is None or key.account_id != account_id:
                raise no_such_entity(f"The Access Key with id {key_id} cannot be found")
            user = session.get(models.IamUser, key.user_id)
            return KeyView(
                user.name if user else "",
                key.id,
                key.active,
                key.created_at,
                last_used=key.last_used_at,
                last_service=key.last_used_service,
                last_region=key.last_used_region,
            )

    def note_use(self, key_id: str, service: str, region: str) -> None:
        """Remember a user key's use for GetAccessKeyLastUsed, at most once a minute per
        key and process. Cheap enough for every request (EC2, S3, IAM, STS): a dictionary
        look-up; the write happens on a thread of its own, batched, off the request."""
        now = utcnow()
        last = self._noted.get(key_id)
        if last is not None and now - last < NOTE_EVERY:
            return
        with self._lock:
            if len(self._noted) > 10_000:
                self._noted.clear()
            self._noted[key_id] = now
            start = not self._pending
            self._pending[key_id] = (now, service, region)
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="iam-key-use")
        if start:
            self._writer.submit(self._write_uses)

    def _write_uses(self) -> None:
        with self._lock:
            uses, self._pending = self._pending, {}
        try:
            with self.db.write_session() as session:
                for key_id, (when, service, region) in uses.items():
                    key = session.get(models.IamAccessKey, key_id)
                    if key is not None:
                        key.last_used_at = when
                        key.last_used_service, key.last_used_region = service, region
        except Exception:  # a lost note is not worth failing anything for
            log.exception("could not record the use of %d access keys", len(uses))

    def _key(self, session, account_id: str, user: str, key_id: str) -> models.IamAccessKey:
        row = get(session, models.IamUser, account_id, user)
        key = session.get(models.IamAccessKey, key_id)
        if key is None or key.user_id != row.id:
            raise no_such_entity(f"The Access Key with id {key_id} cannot be found")
        return key


def user_principal(user: models.IamUser) -> policy.Principal:
    return policy.Principal.user(
        user.account_id, user.name, user.id, user.path, json.loads(user.tags)
    )


def role_principal(
    role: models.IamRole, session_name: str, tags: dict[str, str]
) -> policy.Principal:
    return policy.Principal.role_session(
        role.account_id, role.name, session_name, role.id, role.path, tags
    )


class KeyFinder:
    """Any access key's secret and owner: root keys, users' keys, sessions' keys."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def find(self, access_key_id: str) -> FoundKey | None:
        with self.db.session() as session:
            root = session.execute(
                select(AccessKey.secret, Account.id, Account.name)
                .join(Account, AccessKey.account_id == Account.id)
                .where(AccessKey.id == access_key_id, AccessKey.active.is_(True))
            ).first()
            if root is not None:
                return FoundKey(*root)
            user_key = session.execute(
                select(models.IamAccessKey, models.IamUser, Account.name)
                .join(models.IamUser, models.IamUser.id == models.IamAccessKey.user_id)
                .join(Account, Account.id == models.IamAccessKey.account_id)
                .where(
                    models.IamAccessKey.id == access_key_id, models.IamAccessKey.active.is_(True)
                )
            ).first()
            if user_key is not None:
                key, user, name = user_key
                return FoundKey(key.secret, key.account_id, name, user_principal(user))
            temporary = session.get(models.IamSession, access_key_id)
            if temporary is None:
                return None
            return self._session_key(session, temporary)

    def _session_key(self, session, row: models.IamSession) -> FoundKey | None:
        account = session.get(Account, row.account_id)
        if account is None:
            return None
        identity: policy.Principal | None = None
        if row.role_id is not None:
            role = session.get(models.IamRole, row.role_id)
            if role is None:  # the role is gone: so are its sessions
                return None
            identity = role_principal(role, row.session_name, json.loads(row.tags))
        elif row.user_id is not None:
            user = session.get(models.IamUser, row.user_id)
            if user is None:
                return None
            identity = user_principal(user)
        return FoundKey(
            row.secret,
            row.account_id,
            account.name,
            identity,
            tuple(json.loads(row.session_policies)),
            row.token,
            row.expires_at,
        )
