"""``cloud.iam``: Euare's parts, built together around one change counter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from karri import policy
from karri.db.engine import Database
from karri.walrus.shared import SharedCounter

from .account import AccountInfo
from .keys import AccessKeys, KeyFinder
from .logins import LoginProfiles
from .policies import Policies
from .reader import IdentityPolicies
from .roles import Roles
from .root_keys import RootKeys
from .sessions import Sessions
from .simulation import Simulator
from .tagging import EntityTags
from .users import Users


class ChangeCounter(Protocol):
    """Bumped after every IAM write; shared by the processes that serve requests."""

    def value(self) -> int: ...

    def bump(self) -> None: ...


class LocalCounter:
    """A `ChangeCounter` for one process (unit tests, tools)."""

    def __init__(self) -> None:
        self._value = 0

    def value(self) -> int:
        return self._value

    def bump(self) -> None:
        self._value += 1


def iam_counter(data_dir: Path) -> SharedCounter:
    """The change counter every process serving this data dir shares."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return SharedCounter(data_dir / "iam.changes")


class Iam:
    """Users and groups, roles and instance profiles, policies, keys, STS sessions.

    ``identity_policies(caller)`` is what the policy engine needs; ``keys.find`` what
    authentication needs; ``key_listeners`` are told a key stopped working (the API's key
    cache forgets it), ``generation()`` moves at every change.
    """

    def __init__(self, db: Database, counter: ChangeCounter | None = None) -> None:
        self.counter = counter or LocalCounter()
        self.key_listeners: list[Callable[[str], None]] = []
        changed = self.counter.bump
        self.users = Users(db, changed)
        self.roles = Roles(db, changed)
        self.policies = Policies(db, changed)
        self.access_keys = AccessKeys(db, self._key_changed)
        self.root_keys = RootKeys(db, self._key_changed)
        self.tags = EntityTags(db, changed)
        self.logins = LoginProfiles(db, changed)
        self.account = AccountInfo(db)
        self.keys = KeyFinder(db)
        self.identity_policies_of = IdentityPolicies(db, self.counter.value)
        self.sessions = Sessions(db, self.policies, self.identity_policies_of)
        self.simulator = Simulator(db, self.identity_policies_of)

    def identity_policies(self, caller: policy.Principal) -> tuple[policy.Policy, ...]:
        """A user's inline and attached policies and its groups'; a role session's role's;
        () for an account's root. Parsed and cached; a change holds from the next call."""
        return self.identity_policies_of(caller)

    def generation(self) -> int:
        return self.counter.value()

    def _key_changed(self, access_key_id: str) -> None:
        self.counter.bump()
        for listener in self.key_listeners:
            listener(access_key_id)
