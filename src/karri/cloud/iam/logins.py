"""Users' console passwords (login profiles), kept as scrypt hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime

from karri.db.engine import Database
from karri.errors import CloudError

from . import models
from .errors import already_exists, no_such_entity
from .store import get

MIN_LENGTH, MAX_LENGTH = 8, 128


def _hash(password: str, salt: bytes) -> str:
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def password_matches(stored: str, password: str) -> bool:
    _, salt, _ = stored.split("$")
    return hmac.compare_digest(_hash(password, base64.b64decode(salt)), stored)


def check_password(password: str) -> None:
    """AWS's default password policy: 8 to 128 characters of at least three kinds."""
    kinds = sum(
        any(test(c) for c in password)
        for test in (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())
    )
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH or kinds < 3:
        raise CloudError(
            "PasswordPolicyViolation",
            "Password should have a minimum length of 8 and use at least three of: upper "
            "case, lower case, digits, other characters",
            400,
        )


class LoginProfiles:
    def __init__(self, db: Database, changed: Callable[[], None]) -> None:
        self.db = db
        self.changed = changed

    def create(self, account_id: str, user: str, password: str, reset: bool) -> datetime:
        check_password(password)
        with self.db.write_session() as session:
            row = get(session, models.IamUser, account_id, user)
            if session.get(models.IamLoginProfile, row.id) is not None:
                raise already_exists(f"Login Profile for user {user} already exists.")
            profile = models.IamLoginProfile(
                user_id=row.id,
                password_hash=_hash(password, secrets.token_bytes(16)),
                reset_required=reset,
            )
            session.add(profile)
            session.flush()
            return profile.created_at

    def get(self, account_id: str, user: str) -> tuple[datetime, bool]:
        with self.db.session() as session:
            profile = self._profile(session, account_id, user)
            return profile.created_at, profile.reset_required

    def update(self, account_id: str, user: str, password: str | None, reset: bool | None) -> None:
        if password is not None:
            check_password(password)
        with self.db.write_session() as session:
            profile = self._profile(session, account_id, user)
            if password is not None:
                profile.password_hash = _hash(password, secrets.token_bytes(16))
            if reset is not None:
                profile.reset_required = reset

    def delete(self, account_id: str, user: str) -> None:
        with self.db.write_session() as session:
            session.delete(self._profile(session, account_id, user))

    @staticmethod
    def _profile(session, account_id: str, user: str) -> models.IamLoginProfile:
        row = get(session, models.IamUser, account_id, user)
        profile = session.get(models.IamLoginProfile, row.id)
        if profile is None:
            raise no_such_entity(f"Login Profile for User {user} cannot be found.")
        return profile
