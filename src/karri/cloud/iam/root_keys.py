"""An account's root access keys (``karri account``'s keys) through IAM's key calls made
with root credentials and no ``UserName``, as AWS lets the root user manage its own.

As on AWS an account may hold two, deactivate or delete them, even the last one (it then
has no way in until the cloud's admin makes it a key). One exception: the admin account
``eucalyptus`` keeps an active key, since `karri up` and `karri account` find the admin
by it.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from karri.config import ADMIN_ACCOUNT
from karri.db.base import utcnow
from karri.db.engine import Database
from karri.db.models import AccessKey, Account
from karri.ids import new_access_key_id, new_secret_key

from .errors import delete_conflict, limit_exceeded, no_such_entity
from .views import KeyView

MAX_ROOT_KEYS = 2


class RootKeys:
    def __init__(self, db: Database, changed: Callable[[str], None]) -> None:
        """``changed(access_key_id)``: the key was deactivated or deleted (committed)."""
        self.db = db
        self.changed = changed

    def list(self, account_id: str) -> list[KeyView]:
        with self.db.session() as session:
            rows = session.scalars(
                select(AccessKey)
                .where(AccessKey.account_id == account_id)
                .order_by(AccessKey.created_at)
            )
            return [KeyView("", k.id, k.active, k.created_at) for k in rows]

    def create(self, account_id: str) -> KeyView:
        with self.db.write_session() as session:
            count = session.scalar(select(func.count()).where(AccessKey.account_id == account_id))
            if count >= MAX_ROOT_KEYS:
                raise limit_exceeded(f"Cannot exceed quota for AccessKeysPerUser: {MAX_ROOT_KEYS}")
            key = AccessKey(
                id=new_access_key_id(),
                secret=new_secret_key(),
                account_id=account_id,
                created_at=utcnow(),
            )
            session.add(key)
            return KeyView("", key.id, True, key.created_at, secret=key.secret)

    def set_active(self, account_id: str, key_id: str, active: bool) -> None:
        with self.db.write_session() as session:
            key = self._key(session, account_id, key_id)
            if not active and key.active:
                self._keep_admin_way_in(session, account_id, key_id)
            key.active = active
        self.changed(key_id)

    def delete(self, account_id: str, key_id: str) -> None:
        with self.db.write_session() as session:
            key = self._key(session, account_id, key_id)
            if key.active:
                self._keep_admin_way_in(session, account_id, key_id)
            session.delete(key)
        self.changed(key_id)

    @staticmethod
    def _key(session, account_id: str, key_id: str) -> AccessKey:
        key = session.get(AccessKey, key_id)
        if key is None or key.account_id != account_id:
            raise no_such_entity(f"The Access Key with id {key_id} cannot be found")
        return key

    @staticmethod
    def _keep_admin_way_in(session, account_id: str, key_id: str) -> None:
        account = session.get(Account, account_id)
        if account is None or account.name != ADMIN_ACCOUNT:
            return
        others = session.scalar(
            select(func.count()).where(
                AccessKey.account_id == account_id,
                AccessKey.active.is_(True),
                AccessKey.id != key_id,
            )
        )
        if not others:
            raise delete_conflict(
                f"The account {ADMIN_ACCOUNT} keeps an active access key: karri finds its "
                "admin by it"
            )
