"""Looking up the secret behind an access key id, with a short-lived cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from karri import policy
from karri.api.auth.errors import ExpiredToken, InvalidToken
from karri.cloud.iam.keys import FoundKey


@dataclass(frozen=True)
class Principal:
    """Who signed a request: the access key and the account it belongs to.

    ``caller`` is who that is for the policy engine: the account's root unless the key
    belongs to an IAM user or a role session. ``session_policies`` narrow a session's
    rights (AssumeRole's ``Policy``/``PolicyArns``, GetFederationToken); empty otherwise.
    """

    access_key_id: str
    account_id: str
    account_name: str
    identity: policy.Principal | None = None
    session_policies: tuple[policy.Policy, ...] = field(default=())

    @property
    def caller(self) -> policy.Principal:
        return self.identity or _root(self.account_id)

    @property
    def is_root(self) -> bool:
        """The account's own keys: every right in the account, nothing to evaluate."""
        return self.identity is None or self.identity.type is policy.PrincipalType.ACCOUNT


@lru_cache(maxsize=4096)
def _root(account_id: str) -> policy.Principal:
    """One root principal per account: the same object each call, so the decisions cached
    for it (``authorizer.decide``, keyed by the caller's identity) are found again."""
    return policy.Principal.root(account_id)


@dataclass(frozen=True)
class SigningKey:
    secret: str
    principal: Principal
    token: str | None = None  # temporary credentials: the session token they need
    expires_at: datetime | None = None

    def check_token(self, presented: str | None, now: datetime) -> None:
        """A session's key works only with its token and until it expires; a long-term
        key takes no token."""
        if self.token is None:
            if presented:
                raise InvalidToken("The security token included in the request is invalid.")
            return
        if presented != self.token:
            raise InvalidToken("The security token included in the request is invalid.")
        if self.expires_at is not None and now >= self.expires_at:
            raise ExpiredToken("The security token included in the request is expired")


class KeyStore:
    """Caches access key lookups for a few seconds so the hot path skips the database.

    New keys are found at once (a miss always asks the database); a disabled key
    stops working within ``ttl`` seconds.
    """

    def __init__(
        self,
        load: Callable[[str], SigningKey | None],
        ttl: float = 5.0,
        generation: Callable[[], int] = lambda: 0,
        on_use: Callable[[str, str, str], None] | None = None,
    ) -> None:
        """``generation`` moves whenever a key may have stopped working (IAM's change
        counter, shared by every process): the cache is dropped when it does.
        ``on_use(access_key_id, service, region)`` hears of every IAM user key's use."""
        self._on_use = on_use
        self._load = load
        self._ttl = ttl
        self._generation = generation
        self._seen = generation()
        self._cache: dict[str, tuple[float, SigningKey]] = {}

    def used(self, principal: Principal, service: str, region: str) -> None:
        """A request signed by ``principal`` was authenticated (GetAccessKeyLastUsed)."""
        if (
            self._on_use is not None
            and principal.identity is not None
            and principal.access_key_id.startswith("AKIA")
        ):
            self._on_use(principal.access_key_id, service, region)

    def forget(self, access_key_id: str) -> None:
        self._cache.pop(access_key_id, None)

    def get(self, access_key_id: str) -> SigningKey | None:
        now = time.monotonic()
        generation = self._generation()
        if generation != self._seen:
            self._cache.clear()
            self._seen = generation
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


class KeyFinder(Protocol):
    def find(self, access_key_id: str) -> FoundKey | None: ...


def account_keys(
    finder: KeyFinder,
    generation: Callable[[], int] = lambda: 0,
    on_use: Callable[[str, str, str], None] | None = None,
) -> KeyStore:
    """The key store over every access key the cloud issued: accounts' root keys, IAM
    users' keys and STS sessions' keys."""

    def load(access_key_id: str) -> SigningKey | None:
        found = finder.find(access_key_id)
        if found is None:
            return None
        return SigningKey(
            found.secret,
            Principal(
                access_key_id,
                found.account_id,
                found.account_name,
                found.identity,
                tuple(policy.parse(text, policy.SESSION) for text in found.session_policies),
            ),
            found.token,
            found.expires_at,
        )

    return KeyStore(load, generation=generation, on_use=on_use)
