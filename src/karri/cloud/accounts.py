"""Accounts and their access keys; the built-in admin account ``eucalyptus``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from karri.config import ADMIN_ACCOUNT
from karri.db.engine import Database
from karri.db.models import AccessKey, Account
from karri.errors import CloudError, invalid_value
from karri.ids import new_access_key_id, new_account_id, new_secret_key

ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ACCOUNT_ID = re.compile(r"^\d{12}$")  # what grants, launch and volume permissions name


@dataclass(frozen=True)
class Credentials:
    account_id: str
    account_name: str
    access_key_id: str
    secret_access_key: str


class Accounts:
    def __init__(
        self, db: Database, on_created: Callable[[str], object] = lambda _account_id: None
    ) -> None:
        """``on_created`` is told each new account's id once it is committed (the network
        makes its default VPC)."""
        self.db = db
        self.on_created = on_created

    def create(self, name: str) -> Credentials:
        if not ACCOUNT_NAME.match(name):
            raise invalid_value(
                "Account names are 1-63 lower-case letters, digits and hyphens, "
                "starting with a letter or digit"
            )
        with self.db.write_session() as session:
            if session.scalar(select(Account).where(Account.name == name)):
                raise CloudError("EntityAlreadyExists", f"Account {name} already exists", 409)
            account_id = new_account_id()
            while session.get(Account, account_id):
                account_id = new_account_id()
            session.add(Account(id=account_id, name=name))
            session.flush()
            key = AccessKey(id=new_access_key_id(), secret=new_secret_key(), account_id=account_id)
            session.add(key)
            credentials = Credentials(account_id, name, key.id, key.secret)
        self.on_created(account_id)
        return credentials

    def ensure_admin(self) -> Credentials:
        """The ``eucalyptus`` account, created on first start."""
        try:
            return self.credentials(ADMIN_ACCOUNT)
        except CloudError:
            return self.create(ADMIN_ACCOUNT)

    def list(self) -> list[Account]:
        with self.db.session() as session:
            return list(session.scalars(select(Account).order_by(Account.name)))

    def get(self, name: str) -> Account:
        with self.db.session() as session:
            account = session.scalar(select(Account).where(Account.name == name))
            if account is None:
                raise CloudError("NoSuchEntity", f"Account {name} does not exist", 404)
            return account

    def credentials(self, name: str) -> Credentials:
        with self.db.session() as session:
            row = session.execute(
                select(Account, AccessKey)
                .join(AccessKey, AccessKey.account_id == Account.id)
                .where(Account.name == name, AccessKey.active.is_(True))
                .order_by(AccessKey.created_at)
            ).first()
            if row is None:
                self.get(name)  # NoSuchEntity when there is no such account
                raise CloudError("NoSuchEntity", f"Account {name} has no active access key", 404)
            account, key = row
            return Credentials(account.id, account.name, key.id, key.secret)
