"""Looking up the secret behind an access key id, with a short-lived cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from karri.cloud.accounts import Accounts


@dataclass(frozen=True)
class Principal:
    """Who signed a request: the access key and the account it belongs to."""

    access_key_id: str
    account_id: str
    account_name: str


@dataclass(frozen=True)
class SigningKey:
    secret: str
    principal: Principal


class KeyStore:
    """Caches access key lookups for a few seconds so the hot path skips the database.

    New keys are found at once (a miss always asks the database); a disabled key
    stops working within ``ttl`` seconds.
    """

    def __init__(self, load: Callable[[str], SigningKey | None], ttl: float = 5.0) -> None:
        self._load = load
        self._ttl = ttl
        self._cache: dict[str, tuple[float, SigningKey]] = {}

    def get(self, access_key_id: str) -> SigningKey | None:
        now = time.monotonic()
        hit = self._cache.get(access_key_id)
        if hit and hit[0] > now:
            return hit[1]
        key = self._load(access_key_id)
        if key is None:
            self._cache.pop(access_key_id, None)
            return None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[access_key_id] = (now + self._ttl, key)
        return key


def account_keys(accounts: Accounts) -> KeyStore:
    """The key store over the cloud's accounts and access keys."""

    def load(access_key_id: str) -> SigningKey | None:
        record = accounts.find_key(access_key_id)
        if record is None:
            return None
        return SigningKey(
            record.secret, Principal(access_key_id, record.account_id, record.account_name)
        )

    return KeyStore(load)
